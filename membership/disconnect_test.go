package membership

import (
	"context"
	"testing"
	"time"

	"gopush/api"
	"gopush/internal/testenv"
)

// A daemon cut off from ZooKeeper for less than its session timeout keeps
// its session and registration, and its watchers catch up on what changed
// meanwhile.
func TestShortDisconnectionKeepsSessionAndCatchesUp(t *testing.T) {
	t.Parallel()
	proxy := testenv.ZKProxy(t)
	peek := testenv.ZKConn(t)
	root := testenv.ZKRoot(t)
	t.Cleanup(func() { testenv.ZKDeleteAll(t, peek, root) })
	z, err := DialZK([]string{proxy.Addr()}, 20*time.Second, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(z.Close)
	other := dialTestZK(t)

	reg := register(t, z, root+"/node1", cometData(1, "127.0.0.1:301"))
	var rec recorder[CometView]
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); WatchComets(ctx, z, root, testLog(t), rec.set) }()
	defer func() { cancel(); <-stopped }()
	waitFor(t, "node1 seen", func() bool { v, _ := rec.get(); return v.Serving["node1"] != nil })

	sid, path := z.SessionID(), reg.Path()
	proxy.Pause()
	register(t, other, root+"/node2", cometData(2, "127.0.0.1:302"))
	time.Sleep(500 * time.Millisecond)
	proxy.Resume()
	waitFor(t, "node2 seen after reconnection", func() bool { v, _ := rec.get(); return v.Serving["node2"] != nil })
	if z.SessionID() != sid {
		t.Errorf("session changed from %#x to %#x over a short disconnection", sid, z.SessionID())
	}
	if reg.Path() != path || !exists(t, peek, path) {
		t.Errorf("registration moved from %s to %s over a short disconnection", path, reg.Path())
	}

	// The child is deleted while the daemon is cut off: it notices once
	// reconnected and registers again.
	proxy.Pause()
	if err := peek.Delete(path, -1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	proxy.Resume()
	waitFor(t, "child recreated after reconnection", func() bool { return reg.Path() != path && exists(t, peek, reg.Path()) })
}

// A daemon cut off for longer than its session timeout loses its session
// on the server (its child disappears); when it can reach ZooKeeper again it
// gets a new session, registers again and its watcher works again.
func TestLongDisconnectionRegistersAgain(t *testing.T) {
	t.Parallel()
	proxy := testenv.ZKProxy(t)
	peek := testenv.ZKConn(t)
	root := testenv.ZKRoot(t)
	t.Cleanup(func() { testenv.ZKDeleteAll(t, peek, root) })
	z, err := DialZK([]string{proxy.Addr()}, 4*time.Second, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(z.Close)
	other := dialTestZK(t)

	reg := register(t, z, root, []byte(`{"rpc":["127.0.0.1:401"],"weight":1}`))
	var rec recorder[[]api.MessageNode]
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); WatchMessages(ctx, z, root, testLog(t), rec.set) }()
	defer func() { cancel(); <-stopped }()
	waitFor(t, "own node seen", func() bool { v, _ := rec.get(); return len(v) == 1 })

	sid, path := z.SessionID(), reg.Path()
	proxy.Pause()
	waitFor(t, "session expired on the server", func() bool { return !exists(t, peek, path) })
	register(t, other, root, []byte(`{"rpc":["127.0.0.1:402"],"weight":1}`))
	proxy.Resume()

	waitFor(t, "registered again in a new session", func() bool {
		p := reg.Path()
		if p == path {
			return false
		}
		_, st, err := peek.Get(p)
		return err == nil && st.EphemeralOwner == z.SessionID() && st.EphemeralOwner != sid
	})
	waitFor(t, "watcher sees both nodes", func() bool { v, _ := rec.get(); return len(v) == 2 })
}
