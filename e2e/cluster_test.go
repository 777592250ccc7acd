// Package e2e tests a whole gopush cluster: the real comet, web and message
// binaries, started with testenv.StartDaemon against the shared private
// ZooKeeper and Redis. Every test has its own ZooKeeper root, its own ports
// and its own keys, so the tests run in parallel with each other and with
// the rest of the suite.
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/gorilla/websocket"

	"gopush/internal/testenv"
)

// startTimeout bounds how long a daemon may take to listen.
const startTimeout = 30 * time.Second

// cluster is one test's cluster: its ZooKeeper paths and the daemons it
// started.
type cluster struct {
	t         testing.TB
	zkAddr    string
	root      string
	cometPath string
	msgPath   string
	lockPath  string
	zc        *zk.Conn
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	root := testenv.ZKRoot(t)
	c := &cluster{
		t:         t,
		zkAddr:    testenv.ZK(t),
		root:      root,
		cometPath: root + "/comet",
		msgPath:   root + "/message",
		lockPath:  root + "/migrate-lock",
		zc:        testenv.ZKConn(t),
	}
	t.Cleanup(func() { testenv.ZKDeleteAll(t, c.zc, root) })
	return c
}

// zkTOML is the [zookeeper] table shared by every daemon of the cluster.
// The session timeout is ZooKeeper's minimum (2 × tickTime), so that a
// killed comet's child goes away soon.
func (c *cluster) zkTOML() string {
	return fmt.Sprintf(`
[zookeeper]
addr = [%q]
timeout = "4s"
comet.path = %q
message.path = %q
migrate.path = %q
`, c.zkAddr, c.cometPath, c.msgPath, c.lockPath)
}

// startMessage starts a message daemon storing in the shared Redis.
func (c *cluster) startMessage() *testenv.Daemon {
	c.t.Helper()
	rpc := testenv.FreeAddr(c.t)
	cfg := fmt.Sprintf(`
pprof.bind = []
[log]
level = "debug"
[rpc]
bind = [%q]
[storage]
type = "redis"
[redis.source]
"node1:1" = "tcp@%s"
`, rpc, testenv.Redis(c.t)) + c.zkTOML()
	d := testenv.StartDaemon(c.t, testenv.Binary(c.t, "message"), cfg)
	c.checkRaces(d)
	testenv.WaitListening(c.t, rpc, startTimeout)
	return d
}

// comet is a started comet daemon and its addresses.
type comet struct {
	*testenv.Daemon
	node         string
	tcp, ws, rpc string
}

// startComet starts a comet registering as node with weight.
func (c *cluster) startComet(node string, weight int, auth bool) *comet {
	c.t.Helper()
	return c.launchComet(node, func(cm *comet) string {
		return fmt.Sprintf(`
tcp.bind = [%q]
websocket.bind = [%q]
stat.bind = []
pprof.bind = []
[log]
level = "debug"
[channel]
auth = %v
[rpc]
bind = [%q]
ping = "200ms"
retry = "200ms"
timeout = "2s"
`, cm.tcp, cm.ws, auth, cm.rpc) + c.zkTOML() + fmt.Sprintf("comet.node = %q\ncomet.weight = %d\n", node, weight)
	})
}

// launchComet takes free addresses for a comet, starts it with the
// configuration config writes for them, and returns once it listens.
func (c *cluster) launchComet(node string, config func(cm *comet) string) *comet {
	c.t.Helper()
	cm := &comet{node: node, tcp: testenv.FreeAddr(c.t), ws: testenv.FreeAddr(c.t), rpc: testenv.FreeAddr(c.t)}
	cm.Daemon = testenv.StartDaemon(c.t, testenv.Binary(c.t, "comet"), config(cm))
	c.checkRaces(cm.Daemon)
	for _, a := range []string{cm.rpc, cm.tcp, cm.ws} {
		testenv.WaitListening(c.t, a, startTimeout)
	}
	return cm
}

// web is a started web daemon and its addresses.
type web struct {
	*testenv.Daemon
	http, admin string
}

// Pruning in the tests: 3 failed pings 300 ms apart.
const (
	pruneInterval = 300 * time.Millisecond
	pruneFailures = 3
)

func (c *cluster) startWeb(extra string) *web {
	c.t.Helper()
	w := &web{http: testenv.FreeAddr(c.t), admin: testenv.FreeAddr(c.t)}
	cfg := fmt.Sprintf(`
http.bind = [%q]
admin.bind = [%q]
pprof.bind = []
prune.interval = %q
prune.failures = %d
prune.path = %q
%s
[log]
level = "debug"
[rpc]
ping = "200ms"
retry = "200ms"
timeout = "2s"
`, w.http, w.admin, pruneInterval.String(), pruneFailures, c.root+"/prune", extra) + c.zkTOML()
	w.Daemon = testenv.StartDaemon(c.t, testenv.Binary(c.t, "web"), cfg)
	c.checkRaces(w.Daemon)
	testenv.WaitListening(c.t, w.http, startTimeout)
	testenv.WaitListening(c.t, w.admin, startTimeout)
	return w
}

// checkRaces fails the test at its end if d, built with -race
// (GOPUSH_E2E_RACE=1), reported a data race.
func (c *cluster) checkRaces(d *testenv.Daemon) {
	c.t.Cleanup(func() {
		if log := d.Log(); strings.Contains(log, "WARNING: DATA RACE") {
			c.t.Errorf("pid %d reported a data race:\n%s", d.Pid(), log)
		}
	})
}

// startWebRaw starts web with exactly cfg (no waiting).
func (c *cluster) startWebRaw(cfg string) *testenv.Daemon {
	c.t.Helper()
	return testenv.StartDaemon(c.t, testenv.Binary(c.t, "web"), cfg)
}

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

// ret decodes the ret code of an answer (failing on a body that is not JSON).
func (a answer) ret(t *testing.T) int {
	t.Helper()
	var r struct{ Ret *int }
	if err := json.Unmarshal([]byte(a.Body), &r); err != nil || r.Ret == nil {
		t.Fatalf("answer %d %q is not {\"ret\":..}: %v", a.Status, a.Body, err)
	}
	return *r.Ret
}

// serverGet returns the address /1/server/get gives key for proto (1 ws,
// 2 tcp) and the ret code.
func (w *web) serverGet(t *testing.T, key string, proto int) (string, int) {
	t.Helper()
	a := httpGet(t, fmt.Sprintf("http://%s/1/server/get?k=%s&p=%d", w.http, url.QueryEscape(key), proto))
	var r struct {
		Ret  int
		Data struct{ Server string }
	}
	if err := json.Unmarshal([]byte(a.Body), &r); err != nil {
		t.Fatalf("server/get %s: %q: %v", key, a.Body, err)
	}
	return r.Data.Server, r.Ret
}

func (w *web) push(t *testing.T, key string, expire int, msg string) answer {
	t.Helper()
	return httpPost(t, fmt.Sprintf("http://%s/1/admin/push/private?key=%s&expire=%d", w.admin, url.QueryEscape(key), expire), msg)
}

func (w *web) mpush(t *testing.T, keys []string, expire int, msg string) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"m": msg, "k": strings.Join(keys, ",")})
	return httpPost(t, fmt.Sprintf("http://%s/1/admin/push/mprivate?expire=%d", w.admin, expire), string(body))
}

// offline returns the messages /1/msg/get gives for key after mid.
func (w *web) offline(t *testing.T, key string, mid int64) ([]message, answer) {
	t.Helper()
	a := httpGet(t, fmt.Sprintf("http://%s/1/msg/get?k=%s&m=%d", w.http, url.QueryEscape(key), mid))
	var r struct {
		Ret  int
		Data struct{ Msgs []message }
	}
	if err := json.Unmarshal([]byte(a.Body), &r); err != nil || r.Ret != 0 {
		t.Fatalf("msg/get %s: %q (%v)", key, a.Body, err)
	}
	return r.Data.Msgs, a
}

// --- subscribers ---

// message is a pushed message in the new form.
type message struct {
	Msg json.RawMessage `json:"msg"`
	Mid int64           `json:"mid"`
	Gid int             `json:"gid"`
}

// subscriber is a raw TCP or WebSocket connection to a comet.
type subscriber interface {
	next(t *testing.T) message
	close()
}

// ver is the client version subscribers send, so comet answers with new-form
// messages.
const ver = "1.0.5"

type tcpSub struct {
	conn net.Conn
	r    *bufio.Reader
}

// subscribeTCP subscribes key on a comet's TCP address and returns the
// connection once comet answered +h, or the error reply ("-a", "-n", ...).
func subscribeTCP(t *testing.T, addr, key, token string) (*tcpSub, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial comet %s: %v", addr, err)
	}
	args := []string{"sub", key, "30", token, ver}
	req := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		req += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatalf("subscribe %s on %s: %v", key, addr, err)
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		conn.Close()
		t.Fatalf("subscribe %s on %s: %v", key, addr, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line != "+h" {
		conn.Close()
		return nil, line
	}
	return &tcpSub{conn: conn, r: r}, line
}

func (s *tcpSub) next(t *testing.T) message {
	t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("tcp subscriber: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "+h" {
			continue
		}
		if !strings.HasPrefix(line, "$") {
			t.Fatalf("tcp subscriber: unexpected line %q", line)
		}
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			t.Fatalf("tcp subscriber: bad length %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(s.r, buf); err != nil {
			t.Fatalf("tcp subscriber: %v", err)
		}
		var m message
		if err := json.Unmarshal(buf[:n], &m); err != nil {
			t.Fatalf("tcp subscriber: message %q: %v", buf[:n], err)
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
	u := fmt.Sprintf("ws://%s/sub?key=%s&heartbeat=30&token=%s&ver=%s", addr, url.QueryEscape(key), url.QueryEscape(token), ver)
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
	reply := strings.TrimRight(string(b), "\r\n")
	if reply != "+h" {
		conn.Close()
		return nil, reply
	}
	return &wsSub{conn: conn}, reply
}

func (s *wsSub) next(t *testing.T) message {
	t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, b, err := s.conn.ReadMessage()
		if err != nil {
			t.Fatalf("websocket subscriber: %v", err)
		}
		if strings.TrimRight(string(b), "\r\n") == "+h" {
			continue
		}
		var m message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("websocket subscriber: message %q: %v", b, err)
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
