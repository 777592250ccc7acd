package bench

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeComet speaks the subscriber side of docs/protocol.md §2 well enough to test the
// pool: it answers sub with +h (or -n for keys starting with "other"),
// answers every h with +h, and pushes on demand.
type fakeComet struct {
	t    *testing.T
	ln   net.Listener
	mu   sync.Mutex
	tcp  map[string]net.Conn
	ws   map[string]*websocket.Conn
	sse  map[string]net.Conn
	wg   sync.WaitGroup
	subs chan string
}

func newFakeComet(t *testing.T, proto string) *fakeComet {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeComet{t: t, ln: ln, tcp: map[string]net.Conn{}, ws: map[string]*websocket.Conn{}, sse: map[string]net.Conn{}, subs: make(chan string, 100)}
	if proto == "sse" {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.URL.Query().Get("key")
			if strings.HasPrefix(key, "other") {
				http.Error(w, "-n\r\n", http.StatusMisdirectedRequest)
				return
			}
			c, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.sse[key] = c
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n:+h\n\n"))
			f.mu.Unlock()
			f.subs <- key
			go func() { // heartbeat comments
				for {
					time.Sleep(300 * time.Millisecond)
					f.mu.Lock()
					_, err := c.Write([]byte(":h\n\n"))
					f.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		})}
		go srv.Serve(ln)
		t.Cleanup(func() {
			srv.Close()
			f.mu.Lock()
			for _, c := range f.sse {
				c.Close()
			}
			f.mu.Unlock()
		})
		return f
	}
	if proto == "ws" {
		up := websocket.Upgrader{}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			key := r.URL.Query().Get("key")
			if strings.HasPrefix(key, "other") {
				c.WriteMessage(websocket.TextMessage, []byte("-n\r\n"))
				c.Close()
				return
			}
			f.mu.Lock()
			f.ws[key] = c
			f.mu.Unlock()
			c.WriteMessage(websocket.TextMessage, []byte("+h\r\n"))
			f.subs <- key
			for {
				_, m, err := c.ReadMessage()
				if err != nil {
					return
				}
				if string(m) == "h" {
					f.mu.Lock()
					c.WriteMessage(websocket.TextMessage, []byte("+h\r\n"))
					f.mu.Unlock()
				}
			}
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return f
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				line, _ := r.ReadString('\n') // *5
				n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
				var args []string
				for i := 0; i < n; i++ {
					r.ReadString('\n')
					a, _ := r.ReadString('\n')
					args = append(args, strings.TrimSpace(a))
				}
				if len(args) < 2 || strings.HasPrefix(args[1], "other") {
					c.Write([]byte("-n\r\n"))
					return
				}
				f.mu.Lock()
				f.tcp[args[1]] = c
				f.mu.Unlock()
				f.mu.Lock()
				c.Write([]byte("+h\r\n"))
				f.mu.Unlock()
				f.subs <- args[1]
				for {
					b, err := r.ReadByte()
					if err != nil || b != 'h' {
						return
					}
					f.mu.Lock()
					c.Write([]byte("+h\r\n"))
					f.mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.tcp {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

// push sends msg to key's connection in the new message form.
func (f *fakeComet) push(key string, p Payload) {
	js := `{"msg":` + string(AppendPayload(nil, p)) + `,"mid":1,"gid":0}`
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.tcp[key]; c != nil {
		c.Write([]byte("$" + strconv.Itoa(len(js)) + "\r\n" + js + "\r\n"))
	}
	if c := f.ws[key]; c != nil {
		c.WriteMessage(websocket.TextMessage, []byte(js))
	}
	if c := f.sse[key]; c != nil {
		c.Write([]byte("id: 1\ndata: " + js + "\n\n"))
	}
}

func (f *fakeComet) kill(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.tcp[key]; c != nil {
		c.Close()
	}
	if c := f.ws[key]; c != nil {
		c.NetConn().Close()
	}
	if c := f.sse[key]; c != nil {
		c.Close()
	}
}

func TestPoolDeliversCountsRefusalsAndDrops(t *testing.T) {
	for _, proto := range []string{"tcp", "ws", "sse"} {
		t.Run(proto, func(t *testing.T) {
			f := newFakeComet(t, proto)
			tr := NewTracker()
			pool := NewPool(SubConfig{Proto: proto, Heartbeat: 3, Version: "1.0", SourceAddrs: 3, Parallel: 4}, tr)
			defer pool.Close()
			addr := f.ln.Addr().String()
			targets := []Target{{"k0", addr}, {"k1", addr}, {"k2", addr}, {"other", addr}}
			pool.Connect(context.Background(), targets)
			pool.Start()
			st := pool.Stats()
			if st.Connected != 3 || st.Failed["refused -n"] != 1 {
				t.Fatalf("stats %+v: want 3 connected, 1 refused -n", st)
			}
			if len(st.Dead) != 1 || st.Dead[0] != 3 {
				t.Errorf("dead %v, want [3]", st.Dead)
			}
			for i := 0; i < 3; i++ {
				<-f.subs
			}
			sent := time.Now().Add(-5 * time.Millisecond)
			f.push("k0", Payload{T: sent.UnixNano(), S: 1})
			f.push("k1", Payload{T: sent.UnixNano(), S: 1})
			f.push("k1", Payload{T: sent.UnixNano(), S: 2})
			waitFor(t, func() bool { return tr.Delivered() == 3 })
			snap := tr.Snapshot()
			if snap.Seqs[1].N != 2 || snap.Seqs[2].N != 1 {
				t.Errorf("per-seq counts %+v %+v, want 2 and 1", snap.Seqs[1], snap.Seqs[2])
			}
			if snap.Hist.N != 3 || snap.Hist.Max() < 5*time.Millisecond {
				t.Errorf("latency n=%d max=%v, want 3 samples of at least 5ms", snap.Hist.N, snap.Hist.Max())
			}
			// Heartbeats go out once a second per connection here.
			waitFor(t, func() bool { return pool.Stats().Heartbeats >= 3 })
			f.kill("k2")
			waitFor(t, func() bool { return pool.Stats().Dropped == 1 })
			if st := pool.Stats(); st.Connected != 2 || st.FirstDrop == "" {
				t.Errorf("after a drop: %+v", st)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
