// Package e2e tests a whole gopush cluster: the real comet, web and message
// binaries, started by testenv.Cluster against the shared private ZooKeeper
// and Redis. Every test has its own ZooKeeper root, its own ports and its
// own keys, so the tests run in parallel with each other and with the rest
// of the suite.
//
// A test starts its cluster with internal/testenv (see its cluster.go):
//
//	c := testenv.NewCluster(t)
//	c.StartMessage()
//	n1 := c.StartComet("node1", 1)          // n1.TCP, n1.WS, n1.RPC, n1.Stat
//	n2 := c.StartComet("node2", 1, func(cfg *conf.Comet) { cfg.Channel.Auth = true })
//	w := c.StartWeb()                       // w.HTTP, w.Admin
//	w2 := c.StartWeb(func(cfg *conf.Web) { cfg.Prune.Enable = false })
//
// and talks to it with the helpers of this file: subscribeTCP,
// subscribeWS, mustSubscribe, subscribeWhenReady (push_test.go) give
// subscribers whose next returns the next pushed message; serverGet, push,
// mpush, offline call web; httpGet, httpPost return an answer whose ret
// decodes web's envelope. Requests, frames and answers are encoded and
// parsed by package api, the project's one home of the protocol.
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"gopush/api"
	"gopush/internal/testenv"
)

// waitFor polls cond with a deadline generous enough for a slow machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, what, cond)
}

// --- HTTP ---

type answer struct {
	Status int
	Body   string
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func httpDo(t *testing.T, method, u, ctype string, body io.Reader) answer {
	t.Helper()
	a := testenv.HTTPDo(t, method, u, ctype, body)
	return answer{a.Status, a.Body}
}

func httpGet(t *testing.T, u string) answer { return httpDo(t, http.MethodGet, u, "", nil) }

func httpPost(t *testing.T, u, body string) answer {
	return httpDo(t, http.MethodPost, u, "application/x-www-form-urlencoded", strings.NewReader(body))
}

// ret decodes the ret code of an answer (failing on a body that is not
// web's envelope).
func (a answer) ret(t *testing.T) int {
	t.Helper()
	_, err := api.DecodeReply([]byte(a.Body))
	ret := api.RetOf(err)
	if ret < 0 {
		t.Fatalf("answer %d %q is not {\"ret\":..}: %v", a.Status, a.Body, err)
	}
	return ret
}

// serverGet returns the address /1/server/get gives key for proto (1 ws,
// 2 tcp) and the ret code.
func serverGet(t *testing.T, w *testenv.WebNode, key string, proto int) (string, int) {
	t.Helper()
	a := httpGet(t, fmt.Sprintf("http://%s/1/server/get?k=%s&p=%d", w.HTTP, url.QueryEscape(key), proto))
	data, err := api.DecodeReply([]byte(a.Body))
	ret := api.RetOf(err)
	if ret != api.CodeOK {
		if ret < 0 {
			t.Fatalf("server/get %s: %q: %v", key, a.Body, err)
		}
		return "", ret
	}
	var d api.ServerData
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("server/get %s: %q: %v", key, a.Body, err)
	}
	return d.Server, ret
}

// push pushes msg to key through w's admin push/private.
func push(t *testing.T, w *testenv.WebNode, key string, expire int, msg string) answer {
	t.Helper()
	return httpPost(t, fmt.Sprintf("http://%s/1/admin/push/private?key=%s&expire=%d", w.Admin, url.QueryEscape(key), expire), msg)
}

// mpush pushes msg to keys through w's admin push/mprivate.
func mpush(t *testing.T, w *testenv.WebNode, keys []string, expire int, msg string) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"m": msg, "k": strings.Join(keys, ",")})
	return httpPost(t, fmt.Sprintf("http://%s/1/admin/push/mprivate?expire=%d", w.Admin, expire), string(body))
}

// offline returns the messages /1/msg/get gives for key after mid.
func offline(t *testing.T, w *testenv.WebNode, key string, mid int64) ([]api.Message, answer) {
	t.Helper()
	a := httpGet(t, fmt.Sprintf("http://%s/1/msg/get?k=%s&m=%d", w.HTTP, url.QueryEscape(key), mid))
	data, err := api.DecodeReply([]byte(a.Body))
	if err != nil {
		t.Fatalf("msg/get %s: %q (%v)", key, a.Body, err)
	}
	var d api.MsgsData
	if data != nil {
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("msg/get %s: %q (%v)", key, a.Body, err)
		}
	}
	return d.Msgs, a
}

// --- subscribers ---

// subscriber is a raw TCP or WebSocket connection to a comet.
type subscriber interface {
	// next returns the next pushed message, skipping heartbeat answers.
	next(t *testing.T) api.Message
	close()
}

// ver is the client version subscribers send, so comet answers with new-form
// messages.
const ver = "1.0.5"

// reply is how a subscribe answer reads in failure messages: "+h", "-n"...
func reply(kind api.FrameKind, body []byte) string {
	switch kind {
	case api.FrameOK:
		return "+h"
	case api.FrameError:
		return "-" + string(body)
	}
	return fmt.Sprintf("message %s", body)
}

type tcpSub struct {
	conn    net.Conn
	r       *bufio.Reader
	scratch []byte
}

// subscribeTCP subscribes key on a comet's TCP address and returns the
// connection once comet answered +h, or the error reply ("-a", "-n", ...).
func subscribeTCP(t *testing.T, addr, key, token string) (*tcpSub, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial comet %s: %v", addr, err)
	}
	req := api.Subscribe{Key: key, Heartbeat: 30, Token: token, Version: ver}.AppendTCP(nil)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(req); err != nil {
		t.Fatalf("subscribe %s on %s: %v", key, addr, err)
	}
	s := &tcpSub{conn: conn, r: bufio.NewReader(conn)}
	kind, body, err := api.ReadTCPFrame(s.r, nil)
	if err != nil {
		conn.Close()
		t.Fatalf("subscribe %s on %s: %v", key, addr, err)
	}
	if kind != api.FrameOK {
		conn.Close()
		return nil, reply(kind, body)
	}
	return s, "+h"
}

func (s *tcpSub) next(t *testing.T) api.Message {
	t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		kind, body, err := api.ReadTCPFrame(s.r, s.scratch)
		if err != nil {
			t.Fatalf("tcp subscriber: %v", err)
		}
		switch kind {
		case api.FrameOK:
			continue
		case api.FrameError:
			t.Fatalf("tcp subscriber: comet answered -%s", body)
		}
		s.scratch = body[:0]
		m, err := api.DecodeMessage(body, false)
		if err != nil {
			t.Fatalf("tcp subscriber: %q: %v", body, err)
		}
		return m
	}
}

func (s *tcpSub) close() { s.conn.Close() }

type wsSub struct{ conn *websocket.Conn }

// subscribeWS subscribes key on a comet's WebSocket address; like
// subscribeTCP it returns the error reply when comet refuses.
func subscribeWS(t *testing.T, addr, key, token string) (*wsSub, string) {
	t.Helper()
	q := api.Subscribe{Key: key, Heartbeat: 30, Token: token, Version: ver}.Query()
	u := "ws://" + addr + "/sub?" + q.Encode()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial(u, nil)
	if err != nil {
		t.Fatalf("websocket %s: %v", u, err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		t.Fatalf("websocket subscribe %s: %v", key, err)
	}
	if kind, body := api.ParseWSText(b); kind != api.FrameOK {
		conn.Close()
		return nil, reply(kind, body)
	}
	return &wsSub{conn: conn}, "+h"
}

func (s *wsSub) next(t *testing.T) api.Message {
	t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, b, err := s.conn.ReadMessage()
		if err != nil {
			t.Fatalf("websocket subscriber: %v", err)
		}
		kind, body := api.ParseWSText(b)
		switch kind {
		case api.FrameOK:
			continue
		case api.FrameError:
			t.Fatalf("websocket subscriber: comet answered -%s", body)
		}
		m, err := api.DecodeMessage(body, false)
		if err != nil {
			t.Fatalf("websocket subscriber: %q: %v", body, err)
		}
		return m
	}
}

func (s *wsSub) close() { s.conn.Close() }

// mustSubscribe subscribes over TCP (proto 2) or WebSocket (proto 1) and
// fails the test unless comet answers +h.
func mustSubscribe(t *testing.T, proto int, addr, key, token string) subscriber {
	t.Helper()
	if proto == 1 {
		s, reply := subscribeWS(t, addr, key, token)
		if s == nil {
			t.Fatalf("websocket subscribe %s on %s: %q", key, addr, reply)
		}
		return s
	}
	s, reply := subscribeTCP(t, addr, key, token)
	if s == nil {
		t.Fatalf("tcp subscribe %s on %s: %q", key, addr, reply)
	}
	return s
}
