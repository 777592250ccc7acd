package floor

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/rpc"
	"sync"
)

// The bare push path: PushWeb (an HTTP handler) → one gob net/rpc call →
// PushComet (a Hub), which writes one frame to the key's subscriber. It is
// what gopush's push/private expire 0 does, less everything else.

// PushArgs is the one RPC's argument.
type PushArgs struct {
	Key string
	Msg []byte
}

// rpcName is the service PushComet registers.
const rpcName = "Floor"

// PushComet serves the RPC Floor.Push on its own listener and writes each
// pushed message to the key's connections of its Hub, in the RPC's
// goroutine.
type PushComet struct {
	hub *Hub
	ln  net.Listener
	srv *rpc.Server
	log *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
	wg    sync.WaitGroup
}

// pushService is the RPC receiver.
type pushService struct{ hub *Hub }

// Push writes a.Msg to the connections of a.Key.
func (s *pushService) Push(a *PushArgs, reply *int) error {
	s.hub.Push([]string{a.Key}, a.Msg, 0)
	*reply = 0
	return nil
}

// NewPushComet serves Floor.Push on rpcAddr for hub.
func NewPushComet(hub *Hub, rpcAddr string, log *slog.Logger) (*PushComet, error) {
	srv := rpc.NewServer()
	if err := srv.RegisterName(rpcName, &pushService{hub: hub}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", rpcAddr)
	if err != nil {
		return nil, err
	}
	c := &PushComet{hub: hub, ln: ln, srv: srv, log: log, conns: make(map[net.Conn]struct{})}
	c.wg.Add(1)
	go c.accept()
	return c, nil
}

// Addr is the RPC address.
func (c *PushComet) Addr() string { return c.ln.Addr().String() }

func (c *PushComet) accept() {
	defer c.wg.Done()
	for {
		nc, err := c.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.log.Error("accept rpc", "err", err)
			}
			return
		}
		c.mu.Lock()
		if c.done {
			c.mu.Unlock()
			nc.Close()
			return
		}
		c.conns[nc] = struct{}{}
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			c.srv.ServeConn(nc) // closes nc when it returns
			c.mu.Lock()
			delete(c.conns, nc)
			c.mu.Unlock()
		}()
	}
}

// Close stops the RPC server (not the Hub) and waits for its goroutines.
func (c *PushComet) Close() {
	c.ln.Close()
	c.mu.Lock()
	c.done = true
	for nc := range c.conns {
		nc.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// PushWeb is the HTTP side: /1/admin/push/private checks the body is JSON
// and makes one Floor.Push call; /1/server/get answers the comet's TCP
// address.
type PushWeb struct {
	client   *rpc.Client
	cometTCP string
}

// NewPushWeb dials PushComet's RPC address; cometTCP is where subscribers
// connect.
func NewPushWeb(rpcAddr, cometTCP string) (*PushWeb, error) {
	c, err := rpc.Dial("tcp", rpcAddr)
	if err != nil {
		return nil, err
	}
	return &PushWeb{client: c, cometTCP: cometTCP}, nil
}

// Handler is the HTTP API.
func (w *PushWeb) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/1/server/get", serverGet(w.cometTCP))
	mux.HandleFunc("/1/admin/push/private", w.pushPrivate)
	return mux
}

var answerInternal = []byte(`{"ret":65535}`)

func (w *PushWeb) pushPrivate(rw http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	msg, ok := message(r)
	if !ok || key == "" || !expireOK(r) {
		answer(rw, answerParam)
		return
	}
	var reply int
	if err := w.client.Call(rpcName+".Push", &PushArgs{Key: key, Msg: msg}, &reply); err != nil {
		answer(rw, answerInternal)
		return
	}
	answer(rw, answerOK)
}

// Close closes the RPC connection.
func (w *PushWeb) Close() error { return w.client.Close() }
