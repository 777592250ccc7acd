package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
	"gopush/ketama"
)

// sseSub is a raw Server-Sent Events subscriber (docs/protocol.md §2.5).
type sseSub struct {
	conn net.Conn
	r    *bufio.Reader
}

// subscribeSSE opens GET /sse on a comet's WebSocket address. It returns
// the stream once comet answered 200 and ":+h", or the HTTP status and
// body of the refusal.
func subscribeSSE(t *testing.T, addr, key, token string) (*sseSub, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial comet %s: %v", addr, err)
	}
	q := api.Subscribe{Key: key, Heartbeat: 30, Token: token, Version: ver}.Query()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s?%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", api.SSEPath, q.Encode(), addr)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		conn.Close()
		t.Fatalf("sse subscribe %s: %v", key, err)
	}
	if resp.StatusCode != http.StatusOK {
		b := make([]byte, resp.ContentLength)
		r.Read(b)
		conn.Close()
		return nil, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	s := &sseSub{conn: conn, r: r}
	if ev := s.event(t); ev != api.SSESubscribed {
		t.Fatalf("sse subscribe %s: first event %q", key, ev)
	}
	return s, "+h"
}

func (s *sseSub) event(t *testing.T) string {
	t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	var b strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("sse subscriber: %v", err)
		}
		b.WriteString(line)
		if line == "\n" {
			return b.String()
		}
	}
}

func (s *sseSub) next(t *testing.T) api.Message {
	t.Helper()
	for {
		ev := s.event(t)
		if strings.HasPrefix(ev, ":") {
			continue
		}
		_, data, ok := strings.Cut(ev, "data: ")
		if !ok {
			t.Fatalf("sse event without data: %q", ev)
		}
		m, err := api.DecodeMessage([]byte(strings.TrimSpace(data)), false)
		if err != nil {
			t.Fatalf("sse message %q: %v", data, err)
		}
		if m.GroupId == api.PrivateGroupId && !strings.HasPrefix(ev, fmt.Sprintf("id: %d\n", m.MsgId)) {
			t.Fatalf("sse event %q does not carry its mid as id", ev)
		}
		return m
	}
}

func (s *sseSub) close() { s.conn.Close() }

// subscribeAny subscribes key over proto ("tcp", "ws", "sse"), retrying
// while comet does not own the key yet.
func subscribeAny(t *testing.T, proto string, cm *testenv.CometNode, key string) subscriber {
	t.Helper()
	var sub subscriber
	waitFor(t, fmt.Sprintf("comet %s to accept %s over %s", cm.Node, key, proto), func() bool {
		var reply string
		switch proto {
		case "tcp":
			s, r := subscribeTCP(t, cm.TCP, key, "")
			if s != nil {
				sub = s
			}
			reply = r
		case "ws":
			s, r := subscribeWS(t, cm.WS, key, "")
			if s != nil {
				sub = s
			}
			reply = r
		case "sse":
			s, r := subscribeSSE(t, cm.WS, key, "")
			if s != nil {
				sub = s
			}
			reply = r
		}
		if sub != nil {
			return true
		}
		if reply != "-n" && reply != "421 -n" {
			t.Fatalf("%s subscribe %s: %q", proto, key, reply)
		}
		return false
	})
	t.Cleanup(sub.close)
	return sub
}

// presenceAnswer is the data of the presence endpoints.
type presenceAnswer struct {
	Ret  int
	Data struct {
		Keys    map[string]int
		Unknown []string
		Down    []string
		Partial bool
		// online/room
		Total, Offset, Count, Online int
		Next                         *int
		// online/total
		Comets map[string]int
	}
}

func presence(t *testing.T, w *testenv.WebNode, pathQuery string) presenceAnswer {
	t.Helper()
	a := httpGet(t, "http://"+w.Admin+pathQuery)
	var p presenceAnswer
	if err := json.Unmarshal([]byte(a.Body), &p); err != nil || p.Ret != 0 {
		t.Fatalf("%s: %d %s", pathQuery, a.Status, a.Body)
	}
	return p
}

// With subscribers on two comets over TCP, WebSocket and SSE, presence
// reports exact counts per key, per room and in total; once a comet is
// killed, its keys are unknown and the comet is named, never counted 0.
func TestClusterPresence(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage()
	n1 := c.StartComet("node1", 1)
	n2 := c.StartComet("node2", 1)
	w := c.StartWeb(func(cfg *conf.Web) { cfg.Prune.Enable = false }) // the killed comet stays on the ring
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 1})
	prefix := testenv.Unique(t) + "-"
	a1, a2 := keyOn(ring, "node1", prefix+"a"), keyOn(ring, "node1", prefix+"b") // a2: nobody
	b1, b2, b3 := keyOn(ring, "node2", prefix+"c"), keyOn(ring, "node2", prefix+"d"), keyOn(ring, "node2", prefix+"e")
	waitRouted(t, w, a1, n1.TCP)
	waitRouted(t, w, b1, n2.TCP)

	subscribeAny(t, "tcp", n1, a1)
	subscribeAny(t, "ws", n1, a1)
	subscribeAny(t, "sse", n1, a1)
	sse := subscribeAny(t, "sse", n2, b1)
	subscribeAny(t, "sse", n2, b1)
	subscribeAny(t, "ws", n2, b2)
	subscribeAny(t, "tcp", n2, b2)
	// A push reaches the SSE subscriber through web.
	if a := push(t, w, b1, 0, `{"sse":1}`); a.Body != `{"ret":0}` {
		t.Fatalf("push: %s", a.Body)
	}
	if m := sse.next(t); string(m.Msg) != `{"sse":1}` {
		t.Fatalf("sse got %+v", m)
	}

	keys := strings.Join([]string{a1, a2, b1, b2, b3}, ",")
	want := map[string]int{a1: 3, a2: 0, b1: 2, b2: 2, b3: 0}
	p := presence(t, w, "/1/admin/online?k="+url.QueryEscape(keys))
	if fmt.Sprint(p.Data.Keys) != fmt.Sprint(want) || p.Data.Partial || len(p.Data.Down)+len(p.Data.Unknown) != 0 {
		t.Fatalf("online: %+v, want %v", p.Data, want)
	}
	rid := testenv.Unique(t)
	if a := adminPost(t, w, "/1/admin/room/join?rid="+rid, keysBody([]string{a1, a2, b1, b2, b3})); a.ret(t) != 0 {
		t.Fatalf("room join: %s", a.Body)
	}
	p = presence(t, w, "/1/admin/online/room?rid="+rid)
	if p.Data.Total != 5 || p.Data.Count != 5 || p.Data.Online != 3 || p.Data.Next != nil ||
		fmt.Sprint(p.Data.Keys) != fmt.Sprint(map[string]int{a1: 3, b1: 2, b2: 2}) {
		t.Fatalf("online/room: %+v", p.Data)
	}
	// Paged by two: 3 pages cover the room once.
	online := map[string]int{}
	for off, pages := 0, 0; ; pages++ {
		p = presence(t, w, fmt.Sprintf("/1/admin/online/room?rid=%s&limit=2&offset=%d", rid, off))
		for k, n := range p.Data.Keys {
			online[k] += n
		}
		if p.Data.Next == nil {
			if pages != 2 {
				t.Fatalf("%d pages of 2 for 5 keys", pages+1)
			}
			break
		}
		off = *p.Data.Next
	}
	if fmt.Sprint(online) != fmt.Sprint(map[string]int{a1: 3, b1: 2, b2: 2}) {
		t.Fatalf("paged online/room: %v", online)
	}
	p = presence(t, w, "/1/admin/online/total")
	if p.Data.Total != 7 || fmt.Sprint(p.Data.Comets) != fmt.Sprint(map[string]int{"node1": 3, "node2": 4}) || p.Data.Partial {
		t.Fatalf("online/total: %+v", p.Data)
	}

	// node2 dies without a word: first its registration is still there but
	// it does not answer, then (after the session timeout) it has no
	// instance. Either way its keys are unknown and node2 is named.
	n2.Kill()
	check := func(when string) {
		t.Helper()
		p := presence(t, w, "/1/admin/online?k="+url.QueryEscape(keys))
		if fmt.Sprint(p.Data.Keys) != fmt.Sprint(map[string]int{a1: 3, a2: 0}) || !p.Data.Partial ||
			fmt.Sprint(p.Data.Down) != "[node2]" || fmt.Sprint(p.Data.Unknown) != fmt.Sprint([]string{b1, b2, b3}) {
			t.Fatalf("online %s: %+v", when, p.Data)
		}
		p = presence(t, w, "/1/admin/online/room?rid="+rid)
		if p.Data.Online != 1 || fmt.Sprint(p.Data.Keys) != fmt.Sprint(map[string]int{a1: 3}) || !p.Data.Partial ||
			fmt.Sprint(p.Data.Down) != "[node2]" || len(p.Data.Unknown) != 3 {
			t.Fatalf("online/room %s: %+v", when, p.Data)
		}
		p = presence(t, w, "/1/admin/online/total")
		if p.Data.Total != 3 || fmt.Sprint(p.Data.Comets) != "map[node1:3]" || !p.Data.Partial || fmt.Sprint(p.Data.Down) != "[node2]" {
			t.Fatalf("online/total %s: %+v", when, p.Data)
		}
	}
	check("right after the kill")
	waitFor(t, "node2's registration to expire", func() bool {
		children, _, err := c.ZKConn.Children(c.CometPath + "/node2")
		return err == nil && len(children) == 0
	})
	time.Sleep(500 * time.Millisecond) // web's watcher sees it
	check("after the session timeout")
}
