package membership

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/internal/testenv"

	"github.com/go-zookeeper/zk"
)

// testLog shows warnings and errors of the code under test in -v output.
func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// dialTestZK opens a session like a daemon's, closed at the end of the test.
func dialTestZK(t *testing.T) *ZK {
	t.Helper()
	z, err := DialZK([]string{testenv.ZK(t)}, 4*time.Second, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(z.Close)
	return z
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, what, cond)
}

func exists(t *testing.T, conn *zk.Conn, path string) bool {
	t.Helper()
	ok, _, err := conn.Exists(path)
	if err != nil {
		t.Fatalf("exists %s: %v", path, err)
	}
	return ok
}

func TestDialZKFailsWithoutServer(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := DialZK([]string{testenv.FreeAddr(t)}, 2*time.Second, testLog(t))
	if err == nil {
		t.Fatal("DialZK to a closed port succeeded")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("DialZK took %v with a 2s session timeout", d)
	}
	if _, err := DialZK(nil, time.Second, nil); err == nil {
		t.Error("DialZK with no address succeeded")
	}
}

func TestEnsurePath(t *testing.T) {
	t.Parallel()
	z := dialTestZK(t)
	root := testenv.ZKRoot(t)
	t.Cleanup(func() { testenv.ZKDeleteAll(t, testenv.ZKConn(t), root) })
	p := root + "/a/b/c"
	for range 2 { // existing is fine
		if err := EnsurePath(z.Conn(), p); err != nil {
			t.Fatal(err)
		}
	}
	if !exists(t, z.Conn(), p) {
		t.Fatalf("%s missing", p)
	}
	for _, bad := range []string{"", "a/b", "/", "/a/", "/a//b"} {
		if err := EnsurePath(z.Conn(), bad); err == nil {
			t.Errorf("EnsurePath(%q) succeeded", bad)
		}
	}
}

func TestRegisterLifecycle(t *testing.T) {
	t.Parallel()
	z := dialTestZK(t)
	peek := testenv.ZKConn(t)
	root := testenv.ZKRoot(t)
	t.Cleanup(func() { testenv.ZKDeleteAll(t, peek, root) })
	parent := root + "/comet/node1"
	data := []byte(`{"rpc":["127.0.0.1:1"],"weight":2}`)

	if _, err := Register(context.Background(), z, "no-slash", data, nil); err == nil {
		t.Error("Register with a relative path succeeded")
	}

	r, err := Register(context.Background(), z, parent, data, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkChild := func(path string) {
		t.Helper()
		got, st, err := peek.Get(path)
		if err != nil {
			t.Fatalf("get %s: %v", path, err)
		}
		if string(got) != string(data) {
			t.Errorf("%s holds %q, want %q", path, got, data)
		}
		if st.EphemeralOwner == 0 {
			t.Errorf("%s is not ephemeral", path)
		}
		if !strings.HasPrefix(path, parent+"/") {
			t.Errorf("child %s not under %s", path, parent)
		}
	}
	first := r.Path()
	checkChild(first)

	// The child is deleted behind our back: it comes back.
	if err := peek.Delete(first, -1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "child recreated after delete", func() bool { return r.Path() != first && exists(t, peek, r.Path()) })
	checkChild(r.Path())

	// The parent is deleted (children first, as web prunes): both come back.
	second := r.Path()
	testenv.ZKDeleteAll(t, peek, root+"/comet")
	waitFor(t, "child recreated after parent delete", func() bool { return r.Path() != second && exists(t, peek, r.Path()) })
	checkChild(r.Path())

	// The session expires: a new session, and a new child in it.
	third := r.Path()
	oldSession, passwd := z.Session()
	testenv.ExpireSession(t, testenv.ZK(t), oldSession, passwd)
	waitFor(t, "child recreated in a new session", func() bool {
		p := r.Path()
		if p == third {
			return false
		}
		_, st, err := peek.Get(p)
		return err == nil && st.EphemeralOwner != oldSession && st.EphemeralOwner == z.SessionID()
	})
	checkChild(r.Path())
	if exists(t, peek, third) {
		t.Errorf("child %s of the expired session still exists", third)
	}
	children, _, err := peek.Children(parent)
	if err != nil || len(children) != 1 {
		t.Errorf("children of %s = %v, %v; want exactly one", parent, children, err)
	}

	// Close deletes the child and stops.
	last := r.Path()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(t, peek, last) {
		t.Errorf("child %s still exists after Close", last)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestZKCloseRemovesEphemeralAtOnce(t *testing.T) {
	t.Parallel()
	z, err := DialZK([]string{testenv.ZK(t)}, 10*time.Second, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	peek := testenv.ZKConn(t)
	root := testenv.ZKRoot(t)
	t.Cleanup(func() { testenv.ZKDeleteAll(t, peek, root) })
	r, err := Register(context.Background(), z, root, []byte("x"), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	path := r.Path()
	// Watchers whose owner forgets to cancel them stop with the session.
	stopped := make(chan struct{}, 2)
	go func() {
		WatchMessages(context.Background(), z, root, nil, func([]api.MessageNode) {})
		stopped <- struct{}{}
	}()
	go func() { WatchComets(context.Background(), z, root, nil, func(CometView) {}); stopped <- struct{}{} }()

	z.Close() // the session ends: the child goes with it, no waiting for a timeout
	if exists(t, peek, path) {
		t.Errorf("%s survives the closed session", path)
	}
	for range 2 {
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Fatal("a watcher still runs 30s after its session was closed")
		}
	}
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the registration loop still runs 30s after its session was closed")
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after the session ended: %v", err)
	}
}
