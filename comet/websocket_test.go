package comet

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"gopush/api"
	"gopush/internal/testenv"
)

func TestWebSocketSubscribeAndHeartbeat(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	cl := subscribeWS(t, c, "wskey", "", "1.0.5")
	for range 3 {
		if err := cl.ws.WriteMessage(websocket.TextMessage, []byte("h")); err != nil {
			t.Fatal(err)
		}
		if got := cl.read(); got != "+h\r\n" {
			t.Fatalf("heartbeat answer %q", got)
		}
	}
	if n := statInt(t, c, "type=connection", "websocket"); n != 1 {
		t.Fatalf("stat: %d websocket connections, want 1", n)
	}
	cl.ws.Close()
	waitIdle(t, c)
}

func TestWebSocketErrorReplies(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	addr := c.WSAddrs()[0]
	for name, q := range map[string][3]string{
		"empty key":      {"", "30", ""},
		"heartbeat < 30": {"k", "10", ""},
		"no heartbeat":   {"k", "", ""},
		"long key":       {strings.Repeat("k", 65), "30", ""},
	} {
		cl := dialWS(t, addr, wsQuery(q[0], q[1], q[2], "1"))
		if got := cl.read(); got != "-p\r\n" {
			t.Errorf("%s: got %q, want -p", name, got)
		}
		cl.expectClosed(5 * time.Second)
	}
	// -n: the ring gives the key to another node (set directly: a
	// Migrate must match ZooKeeper, where this comet is registered).
	if err := c.migrate(map[string]int{"other": 1}); err != nil {
		t.Fatal(err)
	}
	cl := dialWS(t, addr, wsQuery("k", "30", "", "1"))
	if got := cl.read(); got != "-n\r\n" {
		t.Errorf("key of another node: got %q, want -n", got)
	}
	cl.expectClosed(5 * time.Second)
	if err := c.migrate(map[string]int{"node1": 1}); err != nil {
		t.Fatal(err)
	}

	// Raw bytes of an error reply: one unmasked text frame "-p\r\n".
	raw := dialRawWS(t, addr, wsQuery("", "30", "", "1"))
	raw.expect("\x81\x04-p\r\n")
	raw.expectClosed(5 * time.Second)
	waitIdle(t, c)
}

func TestWebSocketBadFramesCloseTheConnection(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	other := subscribeWS(t, c, "bystander", "", "1")

	bin := subscribeWS(t, c, "binary", "", "1")
	if err := bin.ws.WriteMessage(websocket.BinaryMessage, []byte("h")); err != nil {
		t.Fatal(err)
	}
	bin.expectClosed(5 * time.Second)

	big := subscribeWS(t, c, "big", "", "1")
	// The write may fail half-way once comet has closed the connection.
	_ = big.ws.WriteMessage(websocket.TextMessage, make([]byte, 1<<20))
	big.expectClosed(5 * time.Second)

	text := subscribeWS(t, c, "text", "", "1")
	_ = text.ws.WriteMessage(websocket.TextMessage, []byte("hello"))
	text.expectClosed(5 * time.Second)

	// The daemon and the other client are fine.
	if err := other.ws.WriteMessage(websocket.TextMessage, []byte("h")); err != nil {
		t.Fatal(err)
	}
	if got := other.read(); got != "+h\r\n" {
		t.Fatalf("bystander got %q", got)
	}
	testenv.WaitFor(t, 10*time.Second, "only the bystander left", func() bool {
		return c.stats.wsConns.Load() == 1 && c.hub.numChannels() == 1
	})
}

func TestWebSocketOriginAllowList(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Origins = []string{"https://good.example"}
	c := startComet(t, cfg)
	u := "ws://" + c.WSAddrs()[0] + "/sub?" + wsQuery("k", "30", "", "1").Encode()
	_, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err %v, resp %v; want 403", err, resp)
	}
	ws, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {"https://good.example"}})
	if err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := ws.ReadMessage(); err != nil || string(p) != "+h\r\n" {
		t.Fatalf("got %q, %v", p, err)
	}
}

func TestWebSocketPlainHTTPIsRefused(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	resp, err := http.Get("http://" + c.WSAddrs()[0] + "/sub?key=k&heartbeat=30")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	// A client that opens the TCP connection and sends nothing is closed
	// by the header timeout.
	nc, err := net.Dial("tcp", c.WSAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Log("server answered something before closing (fine)")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("silent HTTP connection not closed")
	}
}

func TestWebSocketControlAndMalformedFrames(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	addr := c.WSAddrs()[0]

	// A ping gets a pong with the same payload; the connection stays.
	cl := subscribeWS(t, c, "pinger", "", "1")
	pong := make(chan string, 1)
	cl.ws.SetPongHandler(func(s string) error { pong <- s; return nil })
	if err := cl.ws.WriteControl(websocket.PingMessage, []byte("abc"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := cl.ws.WriteMessage(websocket.TextMessage, []byte("h")); err != nil {
		t.Fatal(err)
	}
	if got := cl.read(); got != "+h\r\n" { // the pong is handled inside read
		t.Fatalf("got %q", got)
	}
	select {
	case p := <-pong:
		if p != "abc" {
			t.Fatalf("pong payload %q", p)
		}
	default:
		t.Fatal("no pong")
	}

	// Raw frames a client must not send: each closes the connection.
	mask := "\x01\x02\x03\x04"
	hMasked := string([]byte{'h' ^ 1})
	for name, frame := range map[string]string{
		"unmasked":      "\x81\x01h",
		"fragmented":    "\x01\x81" + mask + hMasked,
		"rsv bits":      "\xc1\x81" + mask + hMasked,
		"16-bit length": "\x81\xfe\x01\x00" + mask,
		"64-bit length": "\x81\xff\x00\x00\x00\x00\x00\x10\x00\x00" + mask,
		"close":         "\x88\x80" + mask,
	} {
		t.Log("frame:", name)
		raw := dialRawWS(t, addr, wsQuery("raw", "30", "", "1"))
		raw.expect("\x81\x04+h\r\n")
		raw.write([]byte(frame))
		raw.expectClosed(5 * time.Second)
	}
	// A correct masked heartbeat, sent in two pieces, is answered.
	raw := dialRawWS(t, addr, wsQuery("raw", "30", "", "1"))
	raw.expect("\x81\x04+h\r\n")
	raw.write([]byte("\x81\x81\x01"))
	time.Sleep(50 * time.Millisecond)
	raw.write([]byte("\x02\x03\x04" + hMasked))
	raw.expect("\x81\x04+h\r\n")
}

func TestProtoWebSocketOnly(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Proto = []string{"websocket"}
	c := startComet(t, cfg)
	if len(c.TCPAddrs()) != 0 {
		t.Fatalf("tcp listening on %v with proto websocket", c.TCPAddrs())
	}
	subscribeWS(t, c, "k", "", "1")
	zc := testenv.ZKConn(t)
	node := cfg.ZooKeeper.Comet.Path + "/node1"
	kids, _, err := zc.Children(node)
	if err != nil || len(kids) != 1 {
		t.Fatalf("children %v, %v", kids, err)
	}
	data, _, err := zc.Get(node + "/" + kids[0])
	if err != nil {
		t.Fatal(err)
	}
	var nd api.CometNodeData
	if err := json.Unmarshal(data, &nd); err != nil || len(nd.TCP) != 0 || len(nd.WS) != 1 {
		t.Fatalf("published %s", data)
	}
}
