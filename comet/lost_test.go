package comet

import (
	"context"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
)

// A comet cut off from ZooKeeper keeps its clients for the session timeout
// plus lost.grace (the webs cannot have moved its keys before its session
// ends), then closes them and refuses new subscriptions with "-n" (the
// client asks web again) until it is registered again.
func TestLostCometClosesClientsUntilRegisteredAgain(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	cfg := testConfig(t, root, "node1")
	proxy := testenv.ZKProxy(t)
	cfg.ZooKeeper.Addr = conf.AddrList{proxy.Addr()}
	cfg.Lost.Grace = conf.Duration(500 * time.Millisecond)
	c := startComet(t, cfg)
	cl := subscribeTCP(t, c, "k", "", "1")
	zc := testenv.ZKConn(t)
	nodePath := cfg.ZooKeeper.Comet.Path + "/node1"

	cut := time.Now()
	proxy.Pause()
	// Well inside the session timeout (4 s) the client is served.
	time.Sleep(time.Second)
	cl.write([]byte("h"))
	cl.expect("+h\r\n")

	cl.expectClosed(20 * time.Second)
	if d := time.Since(cut); d < cfg.ZooKeeper.Timeout.D() {
		t.Fatalf("clients closed %v after the cut, before the session timeout %v", d, cfg.ZooKeeper.Timeout.D())
	}
	refused := dialTCP(t, c.TCPAddrs()[0])
	refused.write(subBytes("sub", "k", "30", "", "1"))
	refused.expect(api.ReplyNotOwner)

	proxy.Resume()
	testenv.WaitFor(t, 30*time.Second, "a new registration", func() bool {
		return len(children(t, zc, nodePath)) == 1
	})
	testenv.WaitFor(t, 10*time.Second, "subscriptions taken again", func() bool {
		cl := dialTCP(t, c.TCPAddrs()[0])
		defer cl.nc.Close()
		cl.write(subBytes("sub", "k", "30", "", "1"))
		return cl.readN(4) == "+h\r\n"
	})
}

// A comet stopped on purpose (Close, as on SIGTERM) deletes its node when
// no other instance is registered under it, so that the webs move its
// keys at once; with a standby registered the node stays.
func TestCleanStopLeavesTheRing(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	zc := testenv.ZKConn(t)
	cfg := testConfig(t, root, "node1")
	nodePath := cfg.ZooKeeper.Comet.Path + "/node1"

	serving := New(cfg, newTestLogger(t))
	if err := serving.Start(); err != nil {
		t.Fatal(err)
	}
	standby := startComet(t, testConfig(t, root, "node1"))
	if err := serving.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := zc.Exists(nodePath); !ok || len(children(t, zc, nodePath)) != 1 {
		t.Fatalf("node %s gone (or standby missing) after the serving instance stopped: %v", nodePath, children(t, zc, nodePath))
	}
	if err := standby.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := zc.Exists(nodePath); ok {
		t.Fatalf("node %s still there after its last instance stopped", nodePath)
	}
}
