package comet

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/certs/certtest"
	"gopush/internal/daemon"
	"gopush/internal/testenv"
)

// tlsConfig is testConfig with a TLS listener for each protocol and a
// certificate of a fresh CA, written into dir.
func tlsConfig(t testing.TB, root, node string) (*conf.Comet, *certtest.CA, string) {
	cfg := testConfig(t, root, node)
	ca := certtest.NewCA(t, "comet test CA")
	dir := t.TempDir()
	cfg.TLS.Cert, cfg.TLS.Key = ca.Issue(t, "comet", certtest.Options{}).Write(t, dir)
	cfg.TCP.TLS.Bind = conf.AddrList{"127.0.0.1:0"}
	cfg.WebSocket.TLS.Bind = conf.AddrList{"127.0.0.1:0"}
	return cfg, ca, dir
}

func dialTLS(t testing.TB, addr string, ca *certtest.CA) *tcpClient {
	t.Helper()
	cfg := ca.ClientConfig()
	cfg.ServerName = "localhost"
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	cl := dialTCP(t, addr) // only for its helpers; replaced below
	cl.nc.Close()
	cl.nc = nc
	cl.br.Reset(nc)
	return cl
}

func dialWSS(t testing.TB, addr string, ca *certtest.CA, q url.Values) (*wsClient, *tls.ConnectionState) {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: ca.ClientConfig(), HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("wss://"+addr+"/sub?"+q.Encode(), nil)
	if err != nil {
		t.Fatalf("dial wss %s: %v (%v)", addr, err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	state := ws.NetConn().(*tls.Conn).ConnectionState()
	return &wsClient{t: t, ws: ws}, &state
}

// A client subscribes over TLS-TCP and over wss, and receives pushes on
// both; the node data in ZooKeeper lists the TLS addresses beside the
// plain ones, and the connections are named tcp+tls and wss.
func TestTLSSubscribeAndPush(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	cfg, ca, _ := tlsConfig(t, root, "node1")
	cfg.Metrics.Bind = conf.AddrList{"127.0.0.1:0"}
	c := startComet(t, cfg)

	tc := dialTLS(t, c.TCPTLSAddrs()[0], ca)
	tc.write(subBytes("sub", "alice", "30", "", "1"))
	tc.expect("+h\r\n")
	wc, _ := dialWSS(t, c.WSSAddrs()[0], ca, wsQuery("alice", "30", "", "1"))
	if got := wc.read(); got != "+h\r\n" {
		t.Fatalf("wss subscribe: %q", got)
	}
	tc.write([]byte("h"))
	tc.expect("+h\r\n")

	rpc := rpcClient(t, c)
	push(t, rpc, "alice", `{"n":1}`, 0)
	if got := tc.readFrame(); !strings.Contains(got, `{"n":1}`) {
		t.Fatalf("tcp+tls got %q", got)
	}
	if got := wc.read(); !strings.Contains(got, `{"n":1}`) {
		t.Fatalf("wss got %q", got)
	}

	names := map[string]int{}
	for _, cn := range c.hub.connsWhere(func(string) bool { return true }) {
		names[cn.protoName()]++
	}
	if names["tcp+tls"] != 1 || names["wss"] != 1 {
		t.Fatalf("connections by protocol %v, want one tcp+tls and one wss", names)
	}
	// The open-connections gauge has the TLS variants apart.
	metrics := httpGetBody(t, "http://"+c.MetricsAddrs()[0]+"/metrics")
	for _, want := range []string{
		`gopush_comet_connections{proto="tcp+tls"} 1`,
		`gopush_comet_connections{proto="websocket+tls"} 1`,
		`gopush_comet_connections{proto="tcp"} 0`,
		`gopush_comet_connections{proto="websocket"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	var nd api.CometNodeData
	data := nodeDataOf(t, root+"/comet/node1")
	if err := json.Unmarshal(data, &nd); err != nil {
		t.Fatal(err)
	}
	if len(nd.TCPTLS) != 1 || nd.TCPTLS[0] != c.TCPTLSAddrs()[0] || len(nd.WSS) != 1 || nd.WSS[0] != c.WSSAddrs()[0] ||
		len(nd.TCP) != 1 || nd.TCP[0] != c.TCPAddrs()[0] {
		t.Fatalf("node data %s; listeners tcp %v tcp+tls %v wss %v", data, c.TCPAddrs(), c.TCPTLSAddrs(), c.WSSAddrs())
	}
}

// nodeDataOf returns the data of the only child of a comet node.
func nodeDataOf(t testing.TB, node string) []byte {
	t.Helper()
	conn := testenv.ZKConn(t)
	var data []byte
	testenv.WaitFor(t, 10*time.Second, "the comet registered under "+node, func() bool {
		kids, _, err := conn.Children(node)
		if err != nil || len(kids) != 1 {
			return false
		}
		data, _, err = conn.Get(node + "/" + kids[0])
		return err == nil
	})
	return data
}

// Without TLS listeners the node data is byte for byte what it was before
// (no wss or tcptls field); advertise lists replace the binds, and a wss
// URL can be advertised with no TLS listener at all (nginx terminates).
func TestAdvertiseLists(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	cfg := testConfig(t, root, "plain")
	c := startComet(t, cfg)
	data := string(nodeDataOf(t, root+"/comet/plain"))
	if strings.Contains(data, "wss") || strings.Contains(data, "tcptls") {
		t.Errorf("node data without TLS %s, want no TLS fields", data)
	}

	cfg = testConfig(t, root, "adv")
	cfg.TCP.Bind = conf.AddrList{"0.0.0.0:0"}
	cfg.WebSocket.Bind = conf.AddrList{"0.0.0.0:0"}
	cfg.TCP.Advertise = conf.AddrList{"push1.example.com:6969"}
	cfg.WebSocket.Advertise = conf.AddrList{"push1.example.com:6968"}
	cfg.WebSocket.TLS.Advertise = conf.AddrList{"wss://push.example.com/c/adv/sub"}
	cfg.RPC.Advertise = conf.AddrList{c.RPCAddrs()[0]}
	startComet(t, cfg)
	var nd api.CometNodeData
	if err := json.Unmarshal(nodeDataOf(t, root+"/comet/adv"), &nd); err != nil {
		t.Fatal(err)
	}
	if strings.Join(nd.TCP, ",") != "push1.example.com:6969" || strings.Join(nd.WS, ",") != "push1.example.com:6968" ||
		strings.Join(nd.WSS, ",") != "wss://push.example.com/c/adv/sub" || len(nd.TCPTLS) != 0 ||
		strings.Join(nd.RPC, ",") != c.RPCAddrs()[0] {
		t.Fatalf("node data %+v", nd)
	}
}

// Plain text sent to a TLS port, and a TLS ClientHello sent to a plain
// port, are closed within the handshake timeout, and comet is left with
// no connection.
func TestTLSWrongProtocolIsClosed(t *testing.T) {
	t.Parallel()
	cfg, _, _ := tlsConfig(t, zkRoot(t), "node1")
	cfg.Channel.Handshake.Timeout = conf.Duration(time.Second)
	c := startComet(t, cfg)

	hello := clientHello(t)
	for _, tc := range []struct {
		name, addr string
		send       []byte
	}{
		{"plain request to tcp+tls", c.TCPTLSAddrs()[0], subBytes("sub", "k", "30", "", "1")},
		{"plain HTTP to wss", c.WSSAddrs()[0], []byte("GET /sub?key=k&heartbeat=30 HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"ClientHello to tcp", c.TCPAddrs()[0], hello},
		{"ClientHello to ws", c.WSAddrs()[0], hello},
	} {
		start := time.Now()
		cl := dialTCP(t, tc.addr)
		cl.write(tc.send)
		_ = cl.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		var err error
		for err == nil { // whatever comes back (an alert, -p, a 400), then EOF
			_, err = cl.br.ReadByte()
		}
		// The 1 s handshake timeout, plus slack for a loaded machine.
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%s: still open after 5 s", tc.name)
		} else if d := time.Since(start); d > 2500*time.Millisecond {
			t.Errorf("%s: closed after %v, want within the 1 s handshake timeout", tc.name, d)
		}
	}
	waitIdle(t, c)
}

// clientHello returns the first bytes a TLS client sends.
func clientHello(t testing.TB) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}).Handshake()
	buf := make([]byte, 4096)
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := b.Read(buf)
	if err != nil || n < 5 || buf[0] != 0x16 {
		t.Fatalf("no ClientHello: %v %x", err, buf[:n])
	}
	return buf[:n]
}

// 2000 connections that stop in the middle of the TLS handshake (half a
// ClientHello) are timed out like a slow subscribe, on both TLS ports.
func TestTLSStalledHandshakesAreTimedOut(t *testing.T) {
	t.Parallel()
	cfg, _, _ := tlsConfig(t, zkRoot(t), "node1")
	cfg.Channel.Handshake.Timeout = conf.Duration(time.Second)
	c := startComet(t, cfg)
	hello := clientHello(t)
	half := hello[:len(hello)/2]

	const n = 2000
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	start := time.Now()
	for i := range n {
		addr := c.TCPTLSAddrs()[0]
		if i%2 == 1 {
			addr = c.WSSAddrs()[0]
		}
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, nc)
		if _, err := nc.Write(half); err != nil {
			t.Fatal(err)
		}
	}
	opened := time.Since(start)
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = nc.SetReadDeadline(time.Now().Add(opened + 10*time.Second))
			buf := make([]byte, 512)
			for {
				if _, err := nc.Read(buf); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						mu.Lock()
						open++
						mu.Unlock()
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	if open > 0 {
		t.Fatalf("%d of %d stalled handshakes still open %v after the last was opened", open, n, 10*time.Second)
	}
	waitIdle(t, c)
}

// Reload: new handshakes present the new certificate while connections
// opened before stay subscribed; a mismatched pair is refused and the
// previous one keeps serving.
func TestTLSReloadKeepsConnections(t *testing.T) {
	t.Parallel()
	cfg, ca, dir := tlsConfig(t, zkRoot(t), "node1")
	c := startComet(t, cfg)
	old, state := dialWSS(t, c.WSSAddrs()[0], ca, wsQuery("bob", "30", "", "1"))
	old.read()
	if cn := state.PeerCertificates[0].Subject.CommonName; cn != "comet" {
		t.Fatalf("first certificate %q", cn)
	}
	ca.Issue(t, "comet-2", certtest.Options{}).Write(t, dir)
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	_, state = dialWSS(t, c.WSSAddrs()[0], ca, wsQuery("carol", "30", "", "1"))
	if cn := state.PeerCertificates[0].Subject.CommonName; cn != "comet-2" {
		t.Fatalf("after reload %q, want comet-2", cn)
	}
	push(t, rpcClient(t, c), "bob", `"still here"`, 0)
	if got := old.read(); !strings.Contains(got, "still here") {
		t.Fatalf("old connection got %q", got)
	}

	// A key that does not match: refused, comet-2 keeps serving.
	_, keyFile := cfg.TLS.Cert, cfg.TLS.Key
	other := ca.Issue(t, "other", certtest.Options{})
	if err := writeFile(keyFile, other.KeyPEM); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("reload with a mismatched key: %v", err)
	}
	tcl := dialTLS(t, c.TCPTLSAddrs()[0], ca)
	if cn := tcl.nc.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "comet-2" {
		t.Fatalf("after a refused reload %q, want comet-2", cn)
	}
}

func writeFile(name string, b []byte) error { return os.WriteFile(name, b, 0o600) }

// A missing, expired or mismatched pair stops Start with a usage error (the
// daemon exits 2) naming the key and the file, before anything listens.
func TestTLSBadPairAtStart(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	cfg, ca, dir := tlsConfig(t, root, "node1")
	expired := ca.Issue(t, "old", certtest.Options{NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	expCert, expKey := filepath.Join(dir, "expired.pem"), filepath.Join(dir, "expired-key.pem")
	if err := writeFile(expCert, expired.CertPEM); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(expKey, expired.KeyPEM); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cert, key, want string
	}{
		{filepath.Join(dir, "missing.pem"), cfg.TLS.Key, "tls.cert: " + filepath.Join(dir, "missing.pem") + ": no such file"},
		{expCert, expKey, "tls.cert: " + expCert + ": certificate expired"},
		{cfg.TLS.Cert, expKey, "tls.key: " + expKey + ": private key does not match"},
		{cfg.TLS.Cert, expCert, "tls.key: " + expCert + ": holds a certificate, not a PEM private key"},
	} {
		bad := *cfg
		bad.TLS.Cert, bad.TLS.Key = tc.cert, tc.key
		err := New(&bad, newTestLogger(t)).Start()
		var usage *daemon.UsageError
		if !errors.As(err, &usage) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("start with %s / %s: %v, want a usage error %q", tc.cert, tc.key, err, tc.want)
		}
	}
}

// Server-Sent Events come over TLS for free: the wss listener serves the
// same handler, so https://host:port/sse streams pushes, named sse+tls.
func TestTLSServesSSE(t *testing.T) {
	t.Parallel()
	cfg, ca, _ := tlsConfig(t, zkRoot(t), "node1")
	c := startComet(t, cfg)
	cl := dialTLS(t, c.WSSAddrs()[0], ca)
	cl.write([]byte("GET /sse?" + url.Values{"key": {"sse-tls"}, "heartbeat": {"30"}, "ver": {"1"}}.Encode() +
		" HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"))
	_ = cl.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("answer %d %v", resp.StatusCode, resp.Header)
	}
	testenv.WaitFor(t, 10*time.Second, "the stream to be subscribed", func() bool {
		for _, cn := range c.hub.connsWhere(func(string) bool { return true }) {
			if cn.protoName() == "sse+tls" {
				return true
			}
		}
		return false
	})
	push(t, rpcClient(t, c), "sse-tls", `{"over":"https"}`, 0)
	for {
		line, err := cl.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		if strings.HasPrefix(line, "data:") {
			if !strings.Contains(line, `{"over":"https"}`) {
				t.Fatalf("event %q", line)
			}
			return
		}
	}
}

// httpGetBody fetches u and returns its body.
func httpGetBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
