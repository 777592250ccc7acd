package client

// A fake web and a fake comet, speaking just enough of docs/protocol.md §2 and §3 for
// the client's tests.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"gopush/api"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeWeb serves /1/server/get and /1/msg/get.
type fakeWeb struct {
	srv *httptest.Server

	mu       sync.Mutex
	servers  []string // answers of /1/server/get, the last one repeats
	served   int
	stored   []api.Message // answer of /1/msg/get (ignores m unless filter)
	filter   bool          // answer only messages with mid > m
	gets     []string      // m of each /1/msg/get
	pms      []string      // pm of each /1/msg/get
	public   []api.Message // pmsgs of /1/msg/get (all of them, whatever pm)
	protos   []string      // p of each /1/server/get
	rawMsg   string        // if set, the raw answer of /1/msg/get
	rawSrv   []string      // if set, raw answers of /1/server/get served first
	msgBlock chan struct{} // if set, /1/msg/get waits for it
}

func newFakeWeb(t *testing.T) *fakeWeb {
	w := &fakeWeb{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /1/server/get", w.serverGet)
	mux.HandleFunc("GET /1/msg/get", w.msgGet)
	w.srv = httptest.NewServer(mux)
	t.Cleanup(w.srv.Close)
	return w
}

func (w *fakeWeb) setServers(s ...string) {
	w.mu.Lock()
	w.servers = s
	w.served = 0
	w.mu.Unlock()
}

func (w *fakeWeb) store(msgs ...api.Message) {
	w.mu.Lock()
	w.stored = append(w.stored, msgs...)
	w.mu.Unlock()
}

func (w *fakeWeb) msgGets() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.gets...)
}

func (w *fakeWeb) serverGet(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	w.protos = append(w.protos, r.FormValue("p"))
	if len(w.rawSrv) > 0 {
		raw := w.rawSrv[0]
		w.rawSrv = w.rawSrv[1:]
		w.mu.Unlock()
		io.WriteString(rw, raw)
		return
	}
	if len(w.servers) == 0 {
		w.mu.Unlock()
		io.WriteString(rw, `{"ret":1001}`)
		return
	}
	s := w.servers[min(w.served, len(w.servers)-1)]
	w.served++
	w.mu.Unlock()
	if s == "" {
		io.WriteString(rw, `{"ret":1001}`)
		return
	}
	fmt.Fprintf(rw, `{"ret":0,"data":{"server":%q}}`, s)
}

func (w *fakeWeb) msgGet(rw http.ResponseWriter, r *http.Request) {
	m, err := strconv.ParseInt(r.FormValue("m"), 10, 64)
	if err != nil || r.FormValue("k") == "" {
		io.WriteString(rw, `{"ret":65534}`)
		return
	}
	w.mu.Lock()
	w.gets = append(w.gets, r.FormValue("m"))
	w.pms = append(w.pms, r.FormValue("pm"))
	public := w.public
	block := w.msgBlock
	raw := w.rawMsg
	var out []api.Message
	for _, s := range w.stored {
		if !w.filter || s.MsgId > m {
			out = append(out, s)
		}
	}
	w.mu.Unlock()
	if block != nil {
		<-block
	}
	if raw != "" {
		io.WriteString(rw, raw)
		return
	}
	if len(out) == 0 && len(public) == 0 {
		io.WriteString(rw, `{"ret":0}`)
		return
	}
	data := map[string]any{"msgs": out}
	if len(public) > 0 {
		data["pmsgs"] = public
	}
	b, _ := json.Marshal(map[string]any{"ret": 0, "data": data})
	rw.Write(b)
}

// fakeComet accepts subscriptions over TCP or WebSocket.
type fakeComet struct {
	t     *testing.T
	proto string
	addr  string
	subs  chan *fakeSub

	mu      sync.Mutex
	reply   string // answer to sub: "+h" (default) or "-n" ...
	silent  bool   // do not answer heartbeats
	closers []func()
}

// fakeSub is one subscribed connection.
type fakeSub struct {
	sub        api.Subscribe // the subscribe request it got
	heartbeats chan struct{}
	gone       chan struct{}            // closed when the client hung up
	write      func(frame string) error // a message, framed for the protocol
	raw        func(b string) error     // bytes as they are (TCP) or one text frame
	close      func()
}

// write2 sends b without framing it.
func (s *fakeSub) write2(t *testing.T, b string) {
	t.Helper()
	if err := s.raw(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// push sends a message frame (already JSON).
func (s *fakeSub) push(t *testing.T, json string) {
	t.Helper()
	if err := s.write(json); err != nil {
		t.Fatalf("push: %v", err)
	}
}

func newFakeComet(t *testing.T, proto string) *fakeComet {
	c := &fakeComet{t: t, proto: proto, subs: make(chan *fakeSub, 16), reply: "+h"}
	if proto == WebSocket {
		srv := httptest.NewServer(http.HandlerFunc(c.serveWS))
		c.addr = strings.TrimPrefix(srv.URL, "http://")
		t.Cleanup(func() { c.closeAll(); srv.Close() })
		return c
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = l.Addr().String()
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { c.serveTCP(conn) })
		}
	})
	t.Cleanup(func() { l.Close(); c.closeAll(); wg.Wait() })
	return c
}

func (c *fakeComet) set(f func(c *fakeComet)) {
	c.mu.Lock()
	f(c)
	c.mu.Unlock()
}

func (c *fakeComet) closeAll() {
	c.mu.Lock()
	cl := c.closers
	c.closers = nil
	c.mu.Unlock()
	for _, f := range cl {
		f()
	}
}

// next waits for the next subscription.
func (c *fakeComet) next(t *testing.T) *fakeSub {
	t.Helper()
	select {
	case s := <-c.subs:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("comet %s: no subscription within 10s", c.proto)
		return nil
	}
}

func (c *fakeComet) serveTCP(conn net.Conn) {
	r := bufio.NewReader(conn)
	sub, err := api.ReadSubscribe(r)
	if err != nil {
		conn.Write([]byte(api.ReplyParam))
		conn.Close()
		return
	}
	c.mu.Lock()
	reply, silent := c.reply, c.silent
	c.closers = append(c.closers, func() { conn.Close() })
	c.mu.Unlock()
	var wmu sync.Mutex
	write := func(s string) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := io.WriteString(conn, s)
		return err
	}
	write(reply + "\r\n")
	if reply != "+h" {
		conn.Close()
		return
	}
	s := &fakeSub{
		sub:        sub,
		heartbeats: make(chan struct{}, 1000),
		gone:       make(chan struct{}),
		write:      func(msg string) error { return write(string(api.AppendBulk(nil, []byte(msg)))) },
		raw:        write,
		close:      func() { conn.Close() },
	}
	c.subs <- s
	defer close(s.gone)
	for {
		b, err := r.ReadByte()
		if err != nil {
			conn.Close()
			return
		}
		if b != 'h' {
			conn.Close()
			return
		}
		s.heartbeats <- struct{}{}
		if !silent {
			write(api.ReplyOK)
		}
	}
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (c *fakeComet) serveWS(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/sub" {
		http.NotFound(w, r)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	q := r.URL.Query()
	sub, err := api.CheckSubscribe(q.Get("key"), q.Get("heartbeat"), q.Get("token"), q.Get("ver"))
	if err != nil {
		conn.WriteMessage(websocket.TextMessage, []byte(api.ReplyParam))
		conn.Close()
		return
	}
	c.mu.Lock()
	reply, silent := c.reply, c.silent
	c.closers = append(c.closers, func() { conn.Close() })
	c.mu.Unlock()
	var wmu sync.Mutex
	write := func(s string) error {
		wmu.Lock()
		defer wmu.Unlock()
		return conn.WriteMessage(websocket.TextMessage, []byte(s))
	}
	write(reply + "\r\n")
	if reply != "+h" {
		conn.Close()
		return
	}
	s := &fakeSub{
		sub:        sub,
		heartbeats: make(chan struct{}, 1000),
		gone:       make(chan struct{}),
		write:      write,
		raw:        write,
		close:      func() { conn.Close() },
	}
	c.subs <- s
	defer close(s.gone)
	for {
		_, b, err := conn.ReadMessage()
		if err != nil || string(b) != "h" {
			conn.Close()
			return
		}
		s.heartbeats <- struct{}{}
		if !silent {
			write(api.ReplyOK)
		}
	}
}

// msgJSON is the frame comet pushes for mid with payload msg.
func msgJSON(mid int64, msg string) string {
	return string(api.AppendMessage(nil, json.RawMessage(msg), mid, api.PrivateGroupId, false))
}

func wm(mid int64, msg string) api.Message {
	return api.Message{Msg: json.RawMessage(msg), MsgId: mid}
}
