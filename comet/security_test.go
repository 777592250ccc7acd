package comet

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/rpc"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"gopush/api"
	"gopush/client"
	"gopush/conf"
	"gopush/gobrpc"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

// subscribeReply sends a TCP subscribe for key with token and returns the
// first reply.
func subscribeReply(t *testing.T, c *Comet, key, token string) string {
	t.Helper()
	cl := dialTCP(t, c.TCPAddrs()[0])
	cl.write(subBytes("sub", key, "30", token, "1"))
	return cl.readN(4)
}

// A Migrate whose node map is not the comets registered in ZooKeeper is
// refused: the comet closes nobody, keeps answering for its keys, and
// counts it.
func TestForgedMigrateIsRefusedAndCometKeepsServing(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	rc := rpcClient(t, c)
	subs := make([]*tcpClient, 0, 20)
	for i := range 20 {
		subs = append(subs, subscribeTCP(t, c, fmt.Sprintf("user-%d", i), "", "1"))
	}
	for _, nodes := range []map[string]int{{"evil": 1}, {"node1": 1, "evil": 1}, {"node1": 2}, {}} {
		var r int
		err := rc.Call(t.Context(), api.CometMigrate, &api.CometMigrateArgs{Nodes: nodes}, &r)
		if err == nil || !strings.Contains(err.Error(), "not the comets registered") {
			t.Fatalf("Migrate %v: %v, want a refusal", nodes, err)
		}
	}
	for i, s := range subs {
		push(t, rc, fmt.Sprintf("user-%d", i), `"still here"`, 0)
		if got := s.readFrame(); !strings.Contains(got, "still here") {
			t.Fatalf("user-%d after the forged Migrate: %q", i, got)
		}
	}
	if got := subscribeReply(t, c, "user-new", ""); got != "+h\r\n" {
		t.Fatalf("a new subscriber after the forged Migrate: %q", got)
	}
	if n := c.stats.migrateRefused.Load(); n != 4 {
		t.Fatalf("migrateRefused = %d, want 4", n)
	}
	// The genuine map (what web sends) is still taken.
	var r int
	call(t, rc, api.CometMigrate, &api.CometMigrateArgs{Nodes: map[string]int{"node1": 1}}, &r)
}

// With rpc.secret, a process that does not know it cannot call New (or
// anything): its token is not accepted, while a node with the secret adds
// tokens and the comet serves on.
func TestForgedNewFromUnauthenticatedPeerIsRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Auth = true
	cfg.RPC.Secret = testSecret
	c := startComet(t, cfg)

	// A plain net/rpc client, as any local process could run.
	if stock, err := rpc.Dial("tcp", c.RPCAddrs()[0]); err == nil {
		var r int
		err := stock.Call(api.CometNew, &api.CometNewArgs{Key: "victim", Token: "forged", Expire: 600}, &r)
		stock.Close()
		if err == nil {
			t.Fatal("New from a peer without the handshake was served")
		}
	}
	// A gobrpc client with another secret.
	bad := gobrpc.NewClientWith(c.RPCAddrs()[0], 2*time.Second, gobrpc.Options{Secret: []byte("not the cluster's secret!")})
	defer bad.Close()
	var r int
	if err := bad.Call(t.Context(), api.CometNew, &api.CometNewArgs{Key: "victim", Token: "forged", Expire: 600}, &r); err == nil {
		t.Fatal("New with a wrong secret was served")
	}
	if got := subscribeReply(t, c, "victim", "forged"); got != "-a\r\n" {
		t.Fatalf("subscribe with the forged token: %q, want -a", got)
	}
	waitFor(t, "two failed handshakes counted", func() bool { return c.RPCCounts().BadHandshake >= 2 })
	good := gobrpc.NewClientWith(c.RPCAddrs()[0], 2*time.Second, gobrpc.Options{Secret: []byte(testSecret)})
	defer good.Close()
	call(t, good, api.CometNew, &api.CometNewArgs{Key: "victim", Token: "real", Expire: 600}, &r)
	if got := subscribeReply(t, c, "victim", "real"); got != "+h\r\n" {
		t.Fatalf("subscribe with the real token: %q", got)
	}
}

// jwtConfig is a comet in signed-token mode with HS256.
func jwtConfig(t *testing.T, root, node string) *conf.Comet {
	cfg := testConfig(t, root, node)
	cfg.Channel.Auth = true
	cfg.Channel.Token.Mode = "jwt"
	cfg.Channel.Token.Alg = "HS256"
	cfg.Channel.Token.Secret = testSecret
	return cfg
}

func mint(t *testing.T, key string, ttl time.Duration, signingKey any) string {
	t.Helper()
	tok, err := client.MintToken(key, ttl, signingKey)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A signed token is accepted by any comet with the key: after its comet
// restarts, and after its key moves to another comet.
func TestSignedTokenSurvivesRestartAndMigration(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	cfg1 := jwtConfig(t, root, "node1")
	c1 := New(cfg1, newTestLogger(t))
	if err := c1.Start(); err != nil {
		t.Fatal(err)
	}
	tok := map[string]string{}
	for i := range 40 {
		k := fmt.Sprintf("user-%d", i)
		tok[k] = mint(t, k, time.Hour, []byte(testSecret))
		if got := subscribeReply(t, c1, k, tok[k]); got != "+h\r\n" {
			t.Fatalf("%s: %q", k, got)
		}
	}
	// Restart: a new process knows nothing of the old one.
	if err := c1.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg1.TCP.Bind = conf.AddrList{c1.TCPAddrs()[0]}
	c1 = startComet(t, cfg1)
	if got := subscribeReply(t, c1, "user-0", tok["user-0"]); got != "+h\r\n" {
		t.Fatalf("after the restart: %q", got)
	}
	// A second comet joins; keys that move subscribe there with the same
	// token.
	c2 := startComet(t, jwtConfig(t, root, "node2"))
	nodes := map[string]int{"node1": 1, "node2": 1}
	var r int
	call(t, rpcClient(t, c1), api.CometMigrate, &api.CometMigrateArgs{Nodes: nodes}, &r)
	call(t, rpcClient(t, c2), api.CometMigrate, &api.CometMigrateArgs{Nodes: nodes}, &r)
	moved := 0
	for k, tk := range tok {
		if c2.ring.owns(k) {
			moved++
			if got := subscribeReply(t, c2, k, tk); got != "+h\r\n" {
				t.Fatalf("%s on its new comet: %q", k, got)
			}
		}
	}
	if moved == 0 {
		t.Fatal("no key moved to node2")
	}
}

// Every bad token is -a, on TCP and WebSocket.
func TestSignedTokenBadInput(t *testing.T) {
	t.Parallel()
	c := startComet(t, jwtConfig(t, zkRoot(t), "node1"))
	key := "alice"
	hs := func(claims jwt.Claims, method jwt.SigningMethod, k any) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d}`, key, now.Add(time.Hour).Unix())))
	cases := map[string]string{
		"expired":          hs(jwt.RegisteredClaims{Subject: key, ExpiresAt: jwt.NewNumericDate(now.Add(-time.Minute))}, jwt.SigningMethodHS256, []byte(testSecret)),
		"no expiry":        hs(jwt.RegisteredClaims{Subject: key}, jwt.SigningMethodHS256, []byte(testSecret)),
		"another secret":   mint(t, key, time.Hour, []byte("another secret that is long enough!!")),
		"another key":      mint(t, "bob", time.Hour, []byte(testSecret)),
		"another alg":      mint(t, key, time.Hour, edPriv),
		"alg none":         header + "." + body + ".",
		"malformed":        "not.a.jwt",
		"garbage":          "%%%%",
		"tampered payload": tamper(mint(t, key, time.Hour, []byte(testSecret))),
		"1025 bytes":       strings.Repeat("a", 1025),
	}
	for name, tk := range cases {
		if got := subscribeReply(t, c, key, tk); got != "-a\r\n" {
			t.Errorf("TCP, %s: %q, want -a", name, got)
		}
		cl := dialWS(t, c.WSAddrs()[0], wsQuery(key, "30", tk, "1"))
		if got := cl.read(); got != "-a\r\n" {
			t.Errorf("WebSocket, %s: %q, want -a", name, got)
		}
	}
	// 64 KB: TCP refuses the length (-a, never read); WebSocket's request
	// line is over the 16 KB header limit and net/http answers 431 before
	// comet looks at it.
	big := strings.Repeat("A", 64<<10)
	if got := subscribeReply(t, c, key, big); got != "-a\r\n" {
		t.Errorf("TCP, 64 KB token: %q, want -a", got)
	}
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+c.WSAddrs()[0]+"/sub?"+wsQuery(key, "30", big, "1").Encode(), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("WebSocket, 64 KB token: %v, %v; want HTTP 431", err, resp)
	}
	// The real one still works, and CometRPC.New is refused in this mode.
	if got := subscribeReply(t, c, key, mint(t, key, time.Hour, []byte(testSecret))); got != "+h\r\n" {
		t.Fatalf("a good token: %q", got)
	}
	var r int
	if err := rpcClient(t, c).Call(t.Context(), api.CometNew, &api.CometNewArgs{Key: key, Token: "x"}, &r); err == nil {
		t.Fatal("CometRPC.New accepted in jwt mode")
	}
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"alice","exp":99999999999}`))
	return strings.Join(parts, ".")
}

// EdDSA: the comet holds only the public key; tokens signed with the
// backend's private key work, HS256 ones made with anything do not.
func TestSignedTokenEdDSA(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ed25519.pub.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := jwtConfig(t, zkRoot(t), "node1")
	cfg.Channel.Token.Alg, cfg.Channel.Token.Secret, cfg.Channel.Token.KeyFile = "EdDSA", "", file
	c := startComet(t, cfg)
	if got := subscribeReply(t, c, "k1", mint(t, "k1", time.Hour, priv)); got != "+h\r\n" {
		t.Fatalf("EdDSA token: %q", got)
	}
	// HS256 with the public key's bytes as the secret (the old algorithm
	// confusion attack) is refused.
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: "k1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}).SignedString([]byte(pub))
	if got := subscribeReply(t, c, "k1", hs); got != "-a\r\n" {
		t.Fatalf("HS256 token signed with the public key: %q", got)
	}
	// A key file that is not a key stops the start.
	cfg2 := jwtConfig(t, zkRoot(t), "node1")
	cfg2.Channel.Token.Alg, cfg2.Channel.Token.KeyFile = "EdDSA", filepath.Join(t.TempDir(), "missing.pem")
	if err := New(cfg2, newTestLogger(t)).Start(); err == nil || !strings.Contains(err.Error(), "channel.token.keyfile") {
		t.Fatalf("start with a missing key file: %v", err)
	}
}

// Client connections beyond limit.conns are closed at once, while stat and
// RPC (their own listeners, within the reserve) answer; per-address limits
// close TCP and answer WebSocket with 429 before the upgrade.
func TestClientCapsKeepStatAndRPCAnswering(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Limit.Conns = 30
	c := startComet(t, cfg)
	var held []net.Conn
	for range 30 {
		nc, err := net.Dial("tcp", c.TCPAddrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, nc)
	}
	waitFor(t, "30 connections open", func() bool { return c.ClientCounts().Open == 30 })
	over := dialTCP(t, c.TCPAddrs()[0])
	over.expectClosed(3 * time.Second)
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+c.WSAddrs()[0]+"/sub?"+wsQuery("k", "30", "", "1").Encode(), nil)
	if err == nil {
		t.Fatal("a WebSocket over the cap was upgraded")
	}
	_ = resp
	start := time.Now()
	if n := statInt(t, c, "type=server", "pid"); n != os.Getpid() {
		t.Fatalf("stat pid %d", n)
	}
	var r int
	call(t, rpcClient(t, c), api.CometPing, 0, &r)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("stat and RPC took %v at the cap", d)
	}
	if c.ClientCounts().RefusedCap < 2 {
		t.Fatalf("counts %+v", c.ClientCounts())
	}
	for _, nc := range held {
		nc.Close()
	}
}

func TestPerAddressLimits(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Limit.PerAddr = 3
	c := startComet(t, cfg)
	for i := range 3 {
		subscribeTCP(t, c, fmt.Sprintf("k%d", i), "", "1")
	}
	dialTCP(t, c.TCPAddrs()[0]).expectClosed(3 * time.Second)
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+c.WSAddrs()[0]+"/sub?"+wsQuery("k9", "30", "", "1").Encode(), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("WebSocket over the per-address limit: %v, %v; want 429", err, resp)
	}
	if sse := dialSSE(t, c.WSAddrs()[0], sseQuery("k8", "30", "", "1")); sse.status != http.StatusTooManyRequests {
		t.Fatalf("SSE over the per-address limit: status %d, want 429", sse.status)
	}
	if n := c.ClientCounts().RefusedAddr; n != 3 {
		t.Fatalf("RefusedAddr = %d, want 3", n)
	}
	// Another source address is not affected.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	nc, err := d.Dial("tcp", c.TCPAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(subBytes("sub", "other", "30", "", "1"))
	buf := make([]byte, 4)
	nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := nc.Read(buf); err != nil || string(buf) != "+h\r\n" {
		t.Fatalf("from 127.0.0.2: %q, %v", buf, err)
	}
}

func TestStatConfigHidesSecrets(t *testing.T) {
	t.Parallel()
	cfg := jwtConfig(t, zkRoot(t), "node1")
	cfg.RPC.Secret = "rpc-secret-for-the-stat-test"
	c := startComet(t, cfg)
	resp, err := http.Get("http://" + c.StatAddrs()[0] + "/stat?type=config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(body)
	for _, s := range []string{testSecret, "rpc-secret-for-the-stat-test"} {
		if strings.Contains(string(raw), s) {
			t.Fatalf("/stat?type=config shows a secret: %s", raw)
		}
	}
	if !strings.Contains(string(raw), conf.Redacted) {
		t.Fatalf("no redacted field in %s", raw)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
