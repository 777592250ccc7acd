package myrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/rpc"
	"sync"
	"time"
)

var errServerClosing = errors.New("myrpc: server closing")

// Server serves one net/rpc receiver (gob) on several listeners.
type Server struct {
	name string
	log  *slog.Logger
	rpcs *rpc.Server
	lns  []net.Listener
	wg   sync.WaitGroup // accept loops and connection goroutines

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closing  bool
	inflight int           // requests read and not yet answered
	idle     chan struct{} // closed when inflight drops to 0 during Close
}

// Serve registers rcvr under the service name (e.g. CometService) and
// serves it on every address of binds. It fails, listening on nothing, if
// any address cannot be listened on or rcvr has no RPC method.
func Serve(name string, rcvr any, binds []string, log *slog.Logger) (*Server, error) {
	if len(binds) == 0 {
		return nil, fmt.Errorf("myrpc: serve %s: no bind address", name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rpcs := rpc.NewServer()
	if err := rpcs.RegisterName(name, rcvr); err != nil {
		return nil, fmt.Errorf("myrpc: serve %s: %w", name, err)
	}
	s := &Server{name: name, log: log.With("rpc", name), rpcs: rpcs, conns: make(map[net.Conn]struct{})}
	for _, addr := range binds {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range s.lns {
				l.Close()
			}
			return nil, fmt.Errorf("myrpc: serve %s on %s: %w", name, addr, err)
		}
		s.lns = append(s.lns, ln)
	}
	for _, ln := range s.lns {
		s.log.Info("rpc listening", "addr", ln.Addr().String())
		s.wg.Add(1)
		go s.accept(ln)
	}
	return s, nil
}

// Addrs returns the actual listen addresses, in the order of binds.
func (s *Server) Addrs() []string {
	out := make([]string, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr().String()
	}
	return out
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and try again.
			s.log.Warn("rpc accept failed", "addr", ln.Addr().String(), "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(conn)
	}
}

func (s *Server) serveConn(conn net.Conn) {
	defer s.wg.Done()
	// ServeCodec returns once the connection ends and every request read on
	// it has been answered; it closes the codec.
	s.rpcs.ServeCodec(newServerCodec(s, conn))
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

// begin counts one request in; false when the server is closing.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.inflight++
	return true
}

// end counts one request out.
func (s *Server) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if s.inflight == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// Close stops accepting connections and new requests, waits until the
// requests in flight are answered or ctx ends, then closes every connection
// and waits for its goroutines (again bounded by ctx). It returns ctx's
// error when ctx ended first.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	var idle chan struct{}
	if s.inflight > 0 {
		idle = make(chan struct{})
		s.idle = idle
	}
	s.mu.Unlock()

	for _, ln := range s.lns {
		ln.Close()
	}
	var err error
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			err = ctx.Err()
			s.log.Warn("rpc close: requests still running", "err", err)
		}
	}

	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	s.log.Info("rpc server closed")
	return err
}
