package comet

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/gorilla/websocket"

	"gopush/api"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/testenv"
	"gopush/membership"
)

// testLog is a slog writer that goes to t.Log while the test runs and is
// silent afterwards (goroutines may still log while Close runs).
type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func newTestLogger(t testing.TB) *slog.Logger {
	w := &testLog{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testConfig is a comet configuration on loopback port 0 with its own
// ZooKeeper paths under root.
func testConfig(t testing.TB, root, node string) *conf.Comet {
	cfg := conf.DefaultComet()
	cfg.TCP.Bind = conf.AddrList{"127.0.0.1:0"}
	cfg.WebSocket.Bind = conf.AddrList{"127.0.0.1:0"}
	cfg.Stat.Bind = conf.AddrList{"127.0.0.1:0"}
	cfg.RPC.Bind = conf.AddrList{"127.0.0.1:0"}
	cfg.Pprof.Bind = nil
	cfg.ZooKeeper.Addr = conf.AddrList{testenv.ZK(t)}
	cfg.ZooKeeper.Timeout = conf.Duration(4 * time.Second)
	cfg.ZooKeeper.Comet.Path = root + "/comet"
	cfg.ZooKeeper.Comet.Node = node
	cfg.ZooKeeper.Message.Path = root + "/message"
	cfg.RPC.Ping = conf.Duration(200 * time.Millisecond)
	cfg.RPC.Retry = conf.Duration(300 * time.Millisecond)
	cfg.RPC.Timeout = conf.Duration(2 * time.Second)
	return cfg
}

// startComet starts a comet and closes it when the test ends, checking
// that Close ends every goroutine it started.
func startComet(t testing.TB, cfg *conf.Comet) *Comet {
	t.Helper()
	c := New(cfg, newTestLogger(t))
	if err := c.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

// ---- TCP client ----

// subBytes builds a TCP subscribe request from its arguments.
func subBytes(args ...string) []byte { return api.AppendSubArgs(nil, args...) }

type tcpClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialTCP(t testing.TB, addr string) *tcpClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &tcpClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *tcpClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// readN reads exactly n bytes within 10 s.
func (c *tcpClient) readN(n int) string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, n)
	if _, err := io.ReadFull(c.br, buf); err != nil {
		c.t.Fatalf("read %d bytes: %v (got %q)", n, err, buf)
	}
	return string(buf)
}

// expect reads len(want) bytes and compares them.
func (c *tcpClient) expect(want string) {
	c.t.Helper()
	if got := c.readN(len(want)); got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

// expectClosed checks that the server closes the connection within wait,
// with nothing more to read.
func (c *tcpClient) expectClosed(wait time.Duration) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
	b, err := c.br.ReadByte()
	if err == nil {
		c.t.Fatalf("read %q, want the connection closed", b)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatalf("connection still open after %v", wait)
	}
}

// readFrame reads one pushed message "$<len>\r\n<json>\r\n" and returns
// the JSON.
func (c *tcpClient) readFrame() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	kind, body, err := api.ReadTCPFrame(c.br, nil)
	if err != nil || kind != api.FrameMessage {
		c.t.Fatalf("read a message frame: kind %d %q, %v", kind, body, err)
	}
	return string(body)
}

// subscribeTCP opens a TCP subscriber of key that got "+h".
func subscribeTCP(t testing.TB, c *Comet, key, token, version string) *tcpClient {
	t.Helper()
	cl := dialTCP(t, c.TCPAddrs()[0])
	cl.write(subBytes("sub", key, "30", token, version))
	cl.expect("+h\r\n")
	return cl
}

// ---- WebSocket client ----

type wsClient struct {
	t  testing.TB
	ws *websocket.Conn
}

func dialWS(t testing.TB, addr string, q url.Values) *wsClient {
	t.Helper()
	u := "ws://" + addr + "/sub?" + q.Encode()
	ws, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", u, err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return &wsClient{t: t, ws: ws}
}

// dialRawWS upgrades a plain TCP connection by hand, so that the test can
// read the exact bytes of the frames that follow.
func dialRawWS(t testing.TB, addr string, q url.Values) *tcpClient {
	t.Helper()
	cl := dialTCP(t, addr)
	cl.write([]byte("GET /sub?" + q.Encode() + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
	_ = cl.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := cl.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101 ") {
		t.Fatalf("upgrade answer %q, %v", status, err)
	}
	for {
		line, err := cl.br.ReadString('\n')
		if err != nil {
			t.Fatalf("upgrade headers: %v", err)
		}
		if line == "\r\n" {
			return cl
		}
	}
}

func wsQuery(key, hb, token, ver string) url.Values {
	return url.Values{"key": {key}, "heartbeat": {hb}, "token": {token}, "ver": {ver}}
}

// read returns the next frame, which must be a text frame.
func (c *wsClient) read() string {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, p, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	if typ != websocket.TextMessage {
		c.t.Fatalf("frame type %d, want text", typ)
	}
	return string(p)
}

func (c *wsClient) expectClosed(wait time.Duration) {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(wait))
	typ, p, err := c.ws.ReadMessage()
	if err == nil {
		c.t.Fatalf("read frame %d %q, want the connection closed", typ, p)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatalf("connection still open after %v", wait)
	}
}

func subscribeWS(t testing.TB, c *Comet, key, token, version string) *wsClient {
	t.Helper()
	cl := dialWS(t, c.WSAddrs()[0], wsQuery(key, "30", token, version))
	if got := cl.read(); got != "+h\r\n" {
		t.Fatalf("got %q, want +h", got)
	}
	return cl
}

// ---- RPC ----

func rpcClient(t testing.TB, c *Comet) *gobrpc.Client {
	cl := gobrpc.NewClient(c.RPCAddrs()[0], 10*time.Second)
	t.Cleanup(func() { cl.Close() })
	return cl
}

func call(t testing.TB, cl *gobrpc.Client, method string, args, reply any) {
	t.Helper()
	if err := cl.Call(context.Background(), method, args, reply); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

func push(t testing.TB, cl *gobrpc.Client, key, msg string, expire uint) {
	t.Helper()
	var r int
	call(t, cl, api.CometPushPrivate, &api.CometPushPrivateArgs{Key: key, Msg: json.RawMessage(msg), Expire: expire}, &r)
}

// ---- stat ----

func stat(t testing.TB, c *Comet, query string) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + c.StatAddrs()[0] + "/stat?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stat %s: status %d", query, resp.StatusCode)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// keyConns is the connection count of key, from /stat?type=channel&key=.
func keyConns(t testing.TB, c *Comet, key string) int {
	t.Helper()
	ch, _ := stat(t, c, "type=channel&key="+url.QueryEscape(key))["channel"].(map[string]any)
	n, ok := ch["conn"].(float64)
	if !ok {
		t.Fatalf("stat channel of %q: no channel.conn", key)
	}
	return int(n)
}

func statInt(t testing.TB, c *Comet, query, field string) int {
	t.Helper()
	v, ok := stat(t, c, query)[field].(float64)
	if !ok {
		t.Fatalf("stat %s has no number %q", query, field)
	}
	return int(v)
}

// waitIdle waits until comet has no client connection and no channel left.
func waitIdle(t testing.TB, c *Comet) {
	t.Helper()
	testenv.WaitFor(t, 15*time.Second, "no connection and no channel left", func() bool {
		return c.stats.tcpConns.Load() == 0 && c.stats.wsConns.Load() == 0 && c.stats.sseConns.Load() == 0 &&
			c.stats.channels() == 0 && c.hub.numChannels() == 0 && c.stats.subscribed() == 0
	})
}

func httpGetJSON(u string) (map[string]any, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out, err
}

// zkRoot returns a fresh ZooKeeper prefix for the test, deleted when the
// test ends (after the comets it started are closed).
func zkRoot(t testing.TB) string {
	t.Helper()
	root := testenv.ZKRoot(t)
	conn := testenv.ZKConn(t)
	t.Cleanup(func() { testenv.ZKDeleteAll(t, conn, root) })
	return root
}

// registerComet registers a fake instance of node with weight in c's
// ZooKeeper comet path (what a real comet of that name would do), so that
// a Migrate naming it matches ZooKeeper. It is removed at cleanup.
func registerComet(t testing.TB, c *Comet, node string, weight int) {
	t.Helper()
	dir := c.cfg.ZooKeeper.Comet.Path + "/" + node
	if err := membership.EnsurePath(c.zk.Conn(), dir); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(api.CometNodeData{RPC: []string{"127.0.0.1:1"}, Weight: weight})
	p, err := c.zk.Conn().Create(dir+"/fake", data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.zk.Conn().Delete(p, -1); c.zk.Conn().Delete(dir, -1) })
}

// setRegisteredWeight changes the weight c published in ZooKeeper.
func setRegisteredWeight(t testing.TB, c *Comet, weight int) {
	t.Helper()
	conn := c.zk.Conn()
	raw, st, err := conn.Get(c.reg.Path())
	if err != nil {
		t.Fatal(err)
	}
	var d api.CometNodeData
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	d.Weight = weight
	raw, _ = json.Marshal(d)
	if _, err := conn.Set(c.reg.Path(), raw, st.Version); err != nil {
		t.Fatal(err)
	}
}
