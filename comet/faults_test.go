package comet

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
)

func TestThousandSilentConnectionsAreFreed(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Handshake.Timeout = conf.Duration(time.Second)
	c := startComet(t, cfg)
	const n = 1000
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for i := range n {
		addr := c.TCPAddrs()[0]
		if i%4 == 0 {
			addr = c.WSAddrs()[0] // a quarter on the WebSocket port
		}
		nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, nc)
	}
	// While they hang, a real subscriber is served.
	cl := subscribeTCP(t, c, "alive", "", "1")
	// Every silent connection is closed by the server.
	buf := make([]byte, 1)
	for i, nc := range conns {
		_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := nc.Read(buf); err == nil {
			continue // the HTTP server may answer 408 before closing
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("silent connection %d still open", i)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "only the subscriber left", func() bool {
		return c.stats.tcpConns.Load() == 1 && c.stats.wsConns.Load() == 0
	})
	cl.write([]byte("h"))
	cl.expect("+h\r\n")
}

func TestMessageNodeDiesMidPush(t *testing.T) {
	t.Parallel()
	c, fake, rc := cometWithFake(t, false)
	cl := subscribeTCP(t, c, "k", "", "1")
	stall := make(chan struct{})
	stalled := make(chan struct{}, 1)
	fake.mu.Lock()
	fake.stall, fake.stalls = stall, stalled
	fake.mu.Unlock()
	defer close(stall)

	errc := make(chan error, 1)
	go func() {
		var r int
		errc <- rc.Call(context.Background(), api.CometPushPrivate,
			&api.CometPushPrivateArgs{Key: "k", Msg: json.RawMessage(`"doomed"`), Expire: 60}, &r)
	}()
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the push never reached the message node")
	}
	fake.stop() // the node dies with the call in flight
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("push succeeded though its message node died before storing it")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("push hangs after its message node died")
	}

	// comet is fine: pushes without storage work, and a new node is used.
	push(t, rc, "k", `"online"`, 0)
	if d := decode(t, cl.readFrame()); string(d.Msg) != `"online"` {
		t.Fatalf("got %s; the failed push must not be delivered", d.Msg)
	}
	startFakeMessage(t, testenv.ZK(t), c.cfg.ZooKeeper.Message.Path, false)
	waitStorage(t, rc)
	push(t, rc, "k", `"stored"`, 60)
	if d := decode(t, cl.readFrame()); string(d.Msg) != `"stored"` {
		t.Fatalf("got %s", d.Msg)
	}
}

func TestNoMessageNodeFailsStoredPushOnly(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	rc := rpcClient(t, c)
	cl := subscribeTCP(t, c, "k", "", "1")
	var r int
	err := rc.Call(context.Background(), api.CometPushPrivate,
		&api.CometPushPrivateArgs{Key: "k", Msg: json.RawMessage(`1`), Expire: 5}, &r)
	if err == nil {
		t.Fatal("a stored push succeeded with no message node")
	}
	push(t, rc, "k", `2`, 0)
	if d := decode(t, cl.readFrame()); string(d.Msg) != "2" {
		t.Fatalf("got %s", d.Msg)
	}
}

// children lists the instances registered under a comet node.
func children(t *testing.T, conn *zk.Conn, path string) []string {
	t.Helper()
	kids, _, err := conn.Children(path)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Fatal(err)
	}
	slices.Sort(kids)
	return kids
}

func TestZooKeeperSessionExpiryAndNodeDeletion(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	cfg := testConfig(t, root, "node1")
	fake := startFakeMessage(t, testenv.ZK(t), cfg.ZooKeeper.Message.Path, false)
	_ = fake
	c := startComet(t, cfg)
	rc := rpcClient(t, c)
	cl := subscribeTCP(t, c, "k", "", "1")
	zc := testenv.ZKConn(t)
	nodePath := cfg.ZooKeeper.Comet.Path + "/node1"
	first := children(t, zc, nodePath)
	if len(first) != 1 {
		t.Fatalf("registered children %v", first)
	}
	data, _, err := zc.Get(nodePath + "/" + first[0])
	if err != nil {
		t.Fatal(err)
	}
	var nd api.CometNodeData
	if err := json.Unmarshal(data, &nd); err != nil || nd.Weight != 1 || len(nd.TCP) != 1 || nd.TCP[0] != c.TCPAddrs()[0] ||
		len(nd.WS) != 1 || nd.WS[0] != c.WSAddrs()[0] || len(nd.RPC) != 1 || nd.RPC[0] != c.RPCAddrs()[0] {
		t.Fatalf("node data %s (%v), listeners tcp %v ws %v rpc %v", data, err, c.TCPAddrs(), c.WSAddrs(), c.RPCAddrs())
	}

	// Session expiry: comet registers again with a new child.
	id, passwd := c.zk.Session()
	testenv.ExpireSession(t, testenv.ZK(t), id, passwd)
	testenv.WaitFor(t, 30*time.Second, "a new registration after session expiry", func() bool {
		kids := children(t, zc, nodePath)
		return len(kids) == 1 && kids[0] != first[0]
	})
	// The registration was lost meanwhile: webs may have kept pushes for
	// its keys without delivering them, so the clients are closed (they
	// reconnect and fetch what was kept).
	cl.expectClosed(10 * time.Second)
	cl = subscribeTCP(t, c, "k", "", "1")

	// Deleting the node (what web does to comets that stop answering):
	// the webs gave its keys to other comets, so its clients are closed
	// (docs/reliability.md) and it registers again.
	testenv.ZKDeleteAll(t, zc, nodePath)
	cl.expectClosed(10 * time.Second)
	testenv.WaitFor(t, 30*time.Second, "a new registration after the node was deleted", func() bool {
		return len(children(t, zc, nodePath)) == 1
	})

	// A new client is taken, and storing still works (the message watch
	// survived the new session).
	cl = subscribeTCP(t, c, "k", "", "1")
	waitStorage(t, rc)
	push(t, rc, "k", `"after"`, 60)
	if d := decode(t, cl.readFrame()); !strings.Contains(string(d.Msg), "after") {
		t.Fatalf("got %s", d.Msg)
	}
}

func TestCloseLeavesZooKeeperFirstAndClosesClients(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	cfg := testConfig(t, root, "node1")
	c := New(cfg, newTestLogger(t))
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	tc := subscribeTCP(t, c, "k", "", "1")
	wc := subscribeWS(t, c, "k", "", "1")
	half := dialTCP(t, c.TCPAddrs()[0]) // in its handshake
	half.write([]byte("*3\r\n"))
	zc := testenv.ZKConn(t)
	nodePath := cfg.ZooKeeper.Comet.Path + "/node1"
	if len(children(t, zc, nodePath)) != 1 {
		t.Fatal("not registered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
	if kids := children(t, zc, nodePath); len(kids) != 0 {
		t.Fatalf("still registered after Close: %v", kids)
	}
	tc.expectClosed(5 * time.Second)
	wc.expectClosed(5 * time.Second)
	half.expectClosed(5 * time.Second)
	if _, err := net.DialTimeout("tcp", c.TCPAddrs()[0], time.Second); err == nil {
		t.Fatal("still accepting after Close")
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStartFailsCleanlyOnBusyPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.WebSocket.Bind = conf.AddrList{ln.Addr().String()}
	c := New(cfg, newTestLogger(t))
	err = c.Start()
	if err == nil || !strings.Contains(err.Error(), "websocket.bind") {
		t.Fatalf("start on a busy port: %v", err)
	}
}

// ZooKeeper unreachable for longer than the session timeout (as when it is
// restarted): comet keeps serving its clients meanwhile, then gets a new
// session, registers again and stores through the message nodes again.
// An outage shorter than the session timeout plus lost.grace (here an hour)
// leaves the clients alone until the comet is registered again (then they
// are closed, to fetch what was kept meanwhile); lost_test.go has the
// longer one.
func TestZooKeeperOutage(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	cfg := testConfig(t, root, "node1")
	cfg.Lost.Grace = conf.Duration(time.Hour)
	proxy := testenv.ZKProxy(t)
	cfg.ZooKeeper.Addr = conf.AddrList{proxy.Addr()}
	startFakeMessage(t, testenv.ZK(t), cfg.ZooKeeper.Message.Path, false)
	c := startComet(t, cfg)
	rc := rpcClient(t, c)
	waitStorage(t, rc)
	cl := subscribeTCP(t, c, "k", "", "1")
	zc := testenv.ZKConn(t)
	nodePath := cfg.ZooKeeper.Comet.Path + "/node1"
	first := children(t, zc, nodePath)

	proxy.Pause()
	testenv.WaitFor(t, 30*time.Second, "the session to expire on the server", func() bool {
		return len(children(t, zc, nodePath)) == 0
	})
	// Still serving clients and unstored pushes while ZooKeeper is away.
	cl.write([]byte("h"))
	cl.expect("+h\r\n")
	push(t, rc, "k", `"during"`, 0)
	if d := decode(t, cl.readFrame()); string(d.Msg) != `"during"` {
		t.Fatalf("got %s", d.Msg)
	}
	subscribeTCP(t, c, "newcomer", "", "1")

	proxy.Resume()
	testenv.WaitFor(t, 30*time.Second, "a new registration", func() bool {
		kids := children(t, zc, nodePath)
		return len(kids) == 1 && kids[0] != first[0]
	})
	// Registered again after losing the registration: the clients are
	// closed (pushes may have been kept for them meanwhile) and come back.
	cl.expectClosed(10 * time.Second)
	cl = subscribeTCP(t, c, "k", "", "1")
	waitStorage(t, rc)
	push(t, rc, "k", `"after"`, 60)
	if d := decode(t, cl.readFrame()); string(d.Msg) != `"after"` {
		t.Fatalf("got %s", d.Msg)
	}
}

func TestStartFailsWithoutZooKeeper(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "/unused", "node1")
	cfg.ZooKeeper.Addr = conf.AddrList{testenv.FreeAddr(t)} // nothing listens
	cfg.ZooKeeper.Timeout = conf.Duration(2 * time.Second)
	c := New(cfg, newTestLogger(t))
	start := time.Now()
	if err := c.Start(); err == nil || !strings.Contains(err.Error(), "zookeeper") {
		t.Fatalf("start without zookeeper: %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("start took %v to fail", d)
	}
}
