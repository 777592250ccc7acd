package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"gopush/conf"
	"gopush/internal/certs/certtest"
	"gopush/internal/testenv"
)

// peerName returns the common name of the certificate served at addr.
func peerName(t *testing.T, addr string, ca *certtest.CA) string {
	t.Helper()
	cfg := ca.ClientConfig()
	cfg.ServerName = "localhost"
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("tls to %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// SIGHUP with a new certificate while 1 000 wss connections are open: new
// handshakes present the new certificate and every one of the 1 000 still
// gets a push; a pair that does not match is refused (logged) and the new
// certificate keeps serving; SIGHUP to web (https) and message stops
// nothing.
func TestTLSSIGHUPReloadKeepsConnections(t *testing.T) {
	t.Parallel()
	ca := certtest.NewCA(t, "e2e CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, "first", certtest.Options{}).Write(t, dir)
	c := testenv.NewCluster(t)
	msg := c.StartMessage()
	cm := c.StartComet("node1", 1, testenv.CometTLS(t, certFile, keyFile))
	wss := cm.WSS
	w := c.StartWeb(testenv.WebTLS(t, certFile, keyFile))
	https := w.HTTPS
	waitFor(t, "web to hand out the wss address", func() bool {
		s, ret := serverGet(t, w, "k-0", 3)
		return ret == 0 && s == wss
	})

	const n = 1000
	d := websocket.Dialer{TLSClientConfig: ca.ClientConfig(), HandshakeTimeout: 10 * time.Second}
	conns := make([]*websocket.Conn, n)
	keys := make([]string, n)
	for i := range n {
		keys[i] = fmt.Sprintf("k-%d", i)
		ws, _, err := d.Dial("wss://"+wss+"/sub?"+url.Values{"key": {keys[i]}, "heartbeat": {"60"}, "ver": {ver}}.Encode(), nil)
		if err != nil {
			t.Fatalf("wss connection %d: %v", i, err)
		}
		defer ws.Close()
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, b, err := ws.ReadMessage(); err != nil || string(b) != "+h\r\n" {
			t.Fatalf("wss connection %d: %q %v", i, b, err)
		}
		conns[i] = ws
	}
	if got := peerName(t, wss, ca); got != "first" {
		t.Fatalf("certificate %q before the reload", got)
	}

	ca.Issue(t, "second", certtest.Options{}).Write(t, dir)
	for _, p := range []*testenv.Daemon{cm.Daemon, w.Daemon, msg.Daemon} {
		if err := syscall.Kill(p.Pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "comet and web to log the reload", func() bool {
		return strings.Contains(cm.Log(), "tls certificate reloaded") && strings.Contains(w.Log(), "tls certificate reloaded")
	})
	for _, addr := range []string{wss, https} {
		if got := peerName(t, addr, ca); got != "second" {
			t.Fatalf("%s: certificate %q after SIGHUP, want second", addr, got)
		}
	}

	// A key that does not match the certificate: refused, logged, the
	// second pair keeps serving.
	if err := os.WriteFile(keyFile, ca.Issue(t, "third", certtest.Options{}).KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(cm.Pid(), syscall.SIGHUP)
	waitFor(t, "comet to refuse the bad pair", func() bool { return strings.Contains(cm.Log(), "reload refused") })
	if got := peerName(t, wss, ca); got != "second" {
		t.Fatalf("certificate %q after a refused reload, want second", got)
	}
	for _, p := range []*testenv.Daemon{cm.Daemon, w.Daemon, msg.Daemon} {
		if p.Exited() {
			t.Fatalf("pid %d exited after SIGHUP:\n%s", p.Pid(), p.Log())
		}
	}

	// None of the 1 000 was dropped: each gets a push.
	body, _ := json.Marshal(map[string]string{"m": `{"after":"reload"}`, "k": strings.Join(keys, ",")})
	if a := httpPost(t, "http://"+w.Admin+"/1/admin/push/mprivate?expire=0", string(body)); a.ret(t) != 0 {
		t.Fatalf("mprivate: %s", a.Body)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lost []int
	for i, ws := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, b, err := ws.ReadMessage()
			if err != nil || !strings.Contains(string(b), "reload") {
				mu.Lock()
				lost = append(lost, i)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(lost) > 0 {
		t.Fatalf("%d of %d wss connections lost after SIGHUP (first: %d)", len(lost), n, lost[0])
	}
}

// A comet bound to 0.0.0.0 with advertised addresses: web hands out the
// advertised ones, for p=1 and p=2 as for the TLS p=3.
func TestAdvertisedAddressFromServerGet(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage()
	var tcpPort, wsPort string
	c.StartComet("node1", 1, func(cfg *conf.Comet) {
		_, tcpPort, _ = net.SplitHostPort(cfg.TCP.Bind[0])
		_, wsPort, _ = net.SplitHostPort(cfg.WebSocket.Bind[0])
		cfg.TCP.Bind = conf.AddrList{"0.0.0.0:" + tcpPort}
		cfg.TCP.Advertise = conf.AddrList{"push1.example.test:" + tcpPort}
		cfg.WebSocket.Bind = conf.AddrList{"0.0.0.0:" + wsPort}
		cfg.WebSocket.Advertise = conf.AddrList{"push1.example.test:" + wsPort}
		cfg.WebSocket.TLS.Advertise = conf.AddrList{"wss://push.example.test/c/node1/sub"}
	})
	w := c.StartWeb()
	waitFor(t, "web to route to the comet", func() bool {
		s, ret := serverGet(t, w, "alice", 2)
		return ret == 0 && s == "push1.example.test:"+tcpPort
	})
	if s, _ := serverGet(t, w, "alice", 1); s != "push1.example.test:"+wsPort {
		t.Errorf("p=1 answers %q", s)
	}
	if s, _ := serverGet(t, w, "alice", 3); s != "wss://push.example.test/c/node1/sub" {
		t.Errorf("p=3 answers %q", s)
	}
	if _, ret := serverGet(t, w, "alice", 4); ret != 1001 {
		t.Errorf("p=4 without a TLS-TCP address: ret %d, want 1001", ret)
	}
	// The bind is 0.0.0.0: subscribing on loopback works.
	sub, reply := subscribeTCP(t, "127.0.0.1:"+tcpPort, "alice", "")
	if sub == nil {
		t.Fatalf("subscribe: %s", reply)
	}
	sub.close()
}

// A missing, unreadable, expired or mismatched certificate at start: comet
// and web exit 2 with one line naming the file and the problem.
func TestTLSBadCertificateAtStartExits2(t *testing.T) {
	t.Parallel()
	ca := certtest.NewCA(t, "e2e CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, "good", certtest.Options{}).Write(t, dir)
	expired := ca.Issue(t, "old", certtest.Options{NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	expCert, expKey := filepath.Join(dir, "expired.pem"), filepath.Join(dir, "expired-key.pem")
	os.WriteFile(expCert, expired.CertPEM, 0o644)
	os.WriteFile(expKey, expired.KeyPEM, 0o600)
	otherKey := filepath.Join(dir, "other-key.pem")
	os.WriteFile(otherKey, ca.Issue(t, "other", certtest.Options{}).KeyPEM, 0o600)
	missing := filepath.Join(dir, "missing.pem")
	c := testenv.NewCluster(t)

	for _, tc := range []struct{ cert, key, want string }{
		{missing, keyFile, "tls.cert: " + missing + ": no such file"},
		{expCert, expKey, "tls.cert: " + expCert + ": certificate expired at "},
		{certFile, otherKey, "tls.key: " + otherKey + ": private key does not match the certificate in " + certFile},
	} {
		for _, daemon := range []string{"comet", "web"} {
			var cfg any
			if daemon == "comet" {
				cm := c.CometConfig("node1", 1)
				testenv.CometTLS(t, tc.cert, tc.key)(cm)
				cfg = cm
			} else {
				w := c.WebConfig()
				testenv.WebTLS(t, tc.cert, tc.key)(w)
				cfg = w
			}
			d := testenv.StartConfigured(t, daemon, cfg)
			code := make(chan int, 1)
			go func() { code <- d.Wait() }()
			select {
			case got := <-code:
				log := strings.TrimRight(d.Log(), "\n")
				if got != 2 || strings.Contains(log, "\n") || !strings.HasPrefix(log, daemon+": "+tc.want) {
					t.Errorf("%s with %s: exit %d, output %q; want 2 and one line %q", daemon, tc.want, got, log, daemon+": "+tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s with a bad pair still running after 20 s", daemon)
			}
		}
	}
}
