package gobrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/rpc"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gopush/internal/connlimit"
)

// maxIdleWorkers bounds how many handler goroutines of one connection wait
// for work between requests. More run while more calls are in flight; the
// extra ones end when their call is answered, the others when the
// connection ends.
const maxIdleWorkers = 32

// Server serves one receiver over net/rpc's gob protocol on several
// listeners. It speaks exactly what net/rpc's server speaks (a stock
// net/rpc client or a 1.0.5 peer works against it) but runs handlers on
// worker goroutines that live as long as the connection instead of
// starting one per request:
// a fresh goroutine's small stack grows (and is copied) through gob, the
// storage clients and the push path on every call, which cost 10–12 % of
// comet and message under load. A handler that panics answers its caller
// with an error; the daemon goes on.
type Server struct {
	name    string
	log     *slog.Logger
	rcvr    reflect.Value
	methods map[string]*method
	lns     []net.Listener
	opts    Options
	limiter *connlimit.Limiter // Options.Allow and MaxConns
	wg      sync.WaitGroup     // accept loops, connection readers and workers

	oversized    atomic.Int64 // connections closed for a message over MaxMsg
	idleClosed   atomic.Int64 // connections closed for silence (Idle)
	badHandshake atomic.Int64 // connections that failed the node handshake

	mu      sync.Mutex
	conns   map[net.Conn]*connState
	closing bool // set by Close: no new connection or request is taken
}

// Serve registers rcvr under the service name (e.g. api.CometService) and
// serves it on every address of binds, with the zero Options. It fails,
// listening on nothing, if any address cannot be listened on or rcvr has
// no RPC method.
func Serve(name string, rcvr any, binds []string, log *slog.Logger) (*Server, error) {
	return ServeWith(name, rcvr, binds, Options{}, log)
}

// ServeWith is Serve with hardening options: connections from outside
// o.Allow or beyond o.MaxConns are closed at once, peers outside o.Legacy
// must pass the node handshake when o.Secret is set, messages over
// o.MaxMsg and silences over o.Idle close the connection. Each refusal is
// logged (give a rate-limited logger) and counted (Counts).
func ServeWith(name string, rcvr any, binds []string, o Options, log *slog.Logger) (*Server, error) {
	if len(binds) == 0 {
		return nil, fmt.Errorf("gobrpc: serve %s: no bind address", name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	methods, err := rpcMethods(rcvr)
	if err != nil {
		return nil, fmt.Errorf("gobrpc: serve %s: %w", name, err)
	}
	s := &Server{
		name:    name,
		log:     log.With("rpc", name),
		rcvr:    reflect.ValueOf(rcvr),
		methods: methods,
		opts:    o,
		conns:   make(map[net.Conn]*connState),
	}
	s.limiter = connlimit.New("rpc "+name, connlimit.Rules{Max: o.MaxConns, Allow: o.Allow}, s.log)
	for _, addr := range binds {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range s.lns {
				l.Close()
			}
			return nil, fmt.Errorf("gobrpc: serve %s on %s: %w", name, addr, err)
		}
		s.lns = append(s.lns, s.limiter.Wrap(ln))
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
		cs := &connState{codec: newServerCodec(conn, s.opts.MaxMsg), work: make(chan *call), quit: make(chan struct{})}
		s.conns[conn] = cs
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(conn, cs)
	}
}

// call is one request read from a connection, waiting for a worker.
type call struct {
	conn   *connState
	m      *method
	req    rpc.Request
	argv   reflect.Value
	replyv reflect.Value
}

// connState is what the calls of one connection share.
type connState struct {
	codec   *serverCodec
	sending sync.Mutex     // one response written at a time
	queued  atomic.Int32   // responses waiting for sending or being written
	calls   sync.WaitGroup // requests read and not yet answered
	work    chan *call     // unbuffered: a send succeeds only to a waiting worker
	quit    chan struct{}  // closed when the connection ends: waiting workers end
	parked  atomic.Int32   // workers waiting on work
}

// invalidRequest is the body of an error response, as in net/rpc.
var invalidRequest = struct{}{}

// serveConn reads requests off conn and hands each to a worker. It
// returns once the connection ends (or the server closes) and every request
// read on it has been answered; it closes the connection.
func (s *Server) serveConn(conn net.Conn, cs *connState) {
	defer s.wg.Done()
	if s.opts.needsHandshake(connlimit.PeerIP(conn.RemoteAddr())) {
		if err := serverHandshake(conn, s.opts.Secret, s.opts.handshakeTimeout()); err != nil {
			s.badHandshake.Add(1)
			s.log.Warn("rpc: peer refused: node handshake failed", "remote", conn.RemoteAddr().String(), "err", err)
			s.endConn(conn, cs)
			return
		}
	}
	for {
		c := &call{conn: cs}
		s.readDeadline(conn, s.opts.Idle)
		err := cs.codec.readRequestHeader(&c.req)
		if err == nil {
			// The body follows its header at once.
			s.readDeadline(conn, s.bodyWait())
		}
		if err != nil {
			s.readFailed(conn, err)
			break
		}
		// Closing: this request will not run. Dropping the connection
		// tells the client so (it may retry elsewhere).
		s.mu.Lock()
		closing := s.closing
		if !closing {
			cs.calls.Add(1) // answered exactly once, by run or below
		}
		s.mu.Unlock()
		if closing {
			break
		}
		if err := s.readBody(c); err != nil {
			if isStreamError(err) {
				// The stream is broken (too large, silent, closed): no
				// answer can follow it.
				s.readFailed(conn, err)
				cs.calls.Done()
				break
			}
			s.respond(c, invalidRequest, err.Error())
			cs.calls.Done()
			continue
		}
		s.dispatch(c)
	}
	s.endConn(conn, cs)
}

// endConn waits for the connection's calls, then closes it and forgets it.
func (s *Server) endConn(conn net.Conn, cs *connState) {
	cs.calls.Wait()
	close(cs.quit)
	cs.codec.close()
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

// bodyWait bounds the wait for a request's body once its header is read.
const bodyWait = 30 * time.Second

// bodyWait is bodyWait, or Options.Idle when that is shorter.
func (s *Server) bodyWait() time.Duration {
	if s.opts.Idle > 0 && s.opts.Idle < bodyWait {
		return s.opts.Idle
	}
	return bodyWait
}

// readDeadline sets conn's read deadline d from now (none when d is 0).
func (s *Server) readDeadline(conn net.Conn, d time.Duration) {
	if d <= 0 {
		conn.SetReadDeadline(time.Time{})
		return
	}
	conn.SetReadDeadline(time.Now().Add(d))
}

// readFailed logs and counts why reading a connection ended.
func (s *Server) readFailed(conn net.Conn, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, ErrTooLarge):
		s.oversized.Add(1)
		s.log.Warn("rpc: connection closed: message over rpc.maxmsg", "remote", conn.RemoteAddr().String(), "err", err)
	case errors.As(err, &ne) && ne.Timeout():
		s.idleClosed.Add(1)
		s.log.Info("rpc: connection closed: silent for rpc.idle", "remote", conn.RemoteAddr().String())
	default:
		s.log.Debug("rpc: cannot decode request", "remote", conn.RemoteAddr().String(), "err", err)
	}
}

// isStreamError reports whether err leaves the connection's gob stream
// unusable (as opposed to a body that decoded but does not fit).
func isStreamError(err error) bool {
	var ne net.Error
	return errors.Is(err, ErrTooLarge) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

// Counts are a Server's refusals since it started.
type Counts struct {
	connlimit.Counts       // allow-list and cap
	Oversized        int64 // closed for a message over MaxMsg
	IdleClosed       int64 // closed for silence
	BadHandshake     int64 // failed the node handshake
}

// Counts returns the Server's counters.
func (s *Server) Counts() Counts {
	return Counts{
		Counts:       s.limiter.Counts(),
		Oversized:    s.oversized.Load(),
		IdleClosed:   s.idleClosed.Load(),
		BadHandshake: s.badHandshake.Load(),
	}
}

// readBody finds the method of c's header and decodes its argument; on
// an error the body has been read (and discarded) when that was possible.
// The errors are net/rpc's, word for word.
func (s *Server) readBody(c *call) error {
	codec := c.conn.codec
	sm := c.req.ServiceMethod
	dot := strings.LastIndex(sm, ".")
	if dot < 0 {
		codec.readRequestBody(nil)
		return errors.New("rpc: service/method request ill-formed: " + sm)
	}
	if sm[:dot] != s.name {
		codec.readRequestBody(nil)
		return errors.New("rpc: can't find service " + sm)
	}
	m := s.methods[sm[dot+1:]]
	if m == nil {
		codec.readRequestBody(nil)
		return errors.New("rpc: can't find method " + sm)
	}
	c.m = m
	var argp reflect.Value
	if m.argType.Kind() == reflect.Pointer {
		argp = reflect.New(m.argType.Elem())
		c.argv = argp
	} else {
		argp = reflect.New(m.argType)
		c.argv = argp.Elem()
	}
	if err := codec.readRequestBody(argp.Interface()); err != nil {
		return err
	}
	c.replyv = reflect.New(m.replyType.Elem())
	switch m.replyType.Elem().Kind() {
	case reflect.Map:
		c.replyv.Elem().Set(reflect.MakeMap(m.replyType.Elem()))
	case reflect.Slice:
		c.replyv.Elem().Set(reflect.MakeSlice(m.replyType.Elem(), 0, 0))
	}
	return nil
}

// dispatch gives c to a waiting worker, or starts one when none waits, so
// that a call blocked on storage never holds up the others.
func (s *Server) dispatch(c *call) {
	select {
	case c.conn.work <- c:
		return
	default:
	}
	s.wg.Add(1) // the connection reader holds a count, so Wait is not at 0
	go s.worker(c)
}

// worker runs c, then waits for more calls of its connection until the
// connection ends, unless enough workers wait already.
func (s *Server) worker(c *call) {
	defer s.wg.Done()
	cs := c.conn
	for {
		s.run(c)
		if cs.parked.Add(1) > maxIdleWorkers {
			cs.parked.Add(-1)
			return
		}
		select {
		case c = <-cs.work:
			cs.parked.Add(-1)
		case <-cs.quit:
			cs.parked.Add(-1)
			return
		}
	}
}

// run calls c's method and answers it. A panic in the method is logged
// with its stack and answered as an error.
func (s *Server) run(c *call) {
	defer c.conn.calls.Done()
	errmsg := s.invoke(c)
	reply := c.replyv.Interface()
	if errmsg != "" {
		reply = invalidRequest
	}
	s.respond(c, reply, errmsg)
}

func (s *Server) invoke(c *call) (errmsg string) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("rpc handler panicked", "method", c.req.ServiceMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			errmsg = fmt.Sprintf("gobrpc: %s panicked: %v", c.req.ServiceMethod, r)
		}
	}()
	out := c.m.fn.Call([]reflect.Value{s.rcvr, c.argv, c.replyv})
	if err, _ := out[0].Interface().(error); err != nil {
		errmsg = err.Error()
		if errmsg == "" {
			// net/rpc would send no error; the caller would then decode
			// an empty body as its reply. Say something instead.
			errmsg = "gobrpc: " + c.req.ServiceMethod + " failed"
		}
	}
	return errmsg
}

// respond writes the answer to c's request. When other answers of the
// connection wait behind it, it leaves its bytes in the buffer and the last
// of them flushes: concurrent calls share one write.
func (s *Server) respond(c *call, reply any, errmsg string) {
	resp := rpc.Response{ServiceMethod: c.req.ServiceMethod, Seq: c.req.Seq, Error: errmsg}
	cs := c.conn
	cs.queued.Add(1)
	cs.sending.Lock()
	last := cs.queued.Add(-1) == 0
	err := cs.codec.writeResponse(&resp, reply, last)
	cs.sending.Unlock()
	if err != nil {
		s.log.Debug("rpc: writing response", "method", c.req.ServiceMethod, "err", err)
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
	states := make([]*connState, 0, len(s.conns))
	for _, cs := range s.conns {
		states = append(states, cs)
	}
	s.mu.Unlock()

	for _, ln := range s.lns {
		ln.Close()
	}
	// No request is counted in after closing is set, so these waits end.
	answered := make(chan struct{})
	go func() {
		for _, cs := range states {
			cs.calls.Wait()
		}
		close(answered)
	}()
	var err error
	select {
	case <-answered:
	case <-ctx.Done():
		err = ctx.Err()
		s.log.Warn("rpc close: requests still running", "err", err)
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
