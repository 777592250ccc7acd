package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"go.uber.org/goleak"

	"gopush/api"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/testenv"
	"gopush/ketama"
	"gopush/membership"
)

// fakeComet is a CometRPC receiver that records what web asks of it.
type fakeComet struct {
	mu       sync.Mutex
	pushed   []api.CometPushPrivateArgs
	mpushed  []api.CometPushPrivatesArgs
	migrates []map[string]int
	tokens   []api.CometNewArgs
	pings    int

	failMigrates int // the next Migrate calls that fail
}

func (c *fakeComet) New(a *api.CometNewArgs, r *int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens = append(c.tokens, *a)
	return nil
}

func (c *fakeComet) Close(key string, r *int) error { return nil }

func (c *fakeComet) PushPrivate(a *api.CometPushPrivateArgs, r *int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pushed = append(c.pushed, *a)
	return nil
}

func (c *fakeComet) PushPrivates(a *api.CometPushPrivatesArgs, r *api.CometPushPrivatesResp) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mpushed = append(c.mpushed, *a)
	return nil
}

func (c *fakeComet) Migrate(a *api.CometMigrateArgs, r *int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failMigrates > 0 {
		c.failMigrates--
		return errors.New("not now")
	}
	c.migrates = append(c.migrates, maps.Clone(a.Nodes))
	return nil
}

func (c *fakeComet) Ping(_ int, r *int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pings++
	return nil
}

// lastMigrate returns the last map the comet was sent (nil: none).
func (c *fakeComet) lastMigrate() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.migrates) == 0 {
		return nil
	}
	return c.migrates[len(c.migrates)-1]
}

func (c *fakeComet) pushedKeys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys []string
	for _, p := range c.pushed {
		keys = append(keys, p.Key)
	}
	for _, p := range c.mpushed {
		keys = append(keys, p.Keys...)
	}
	return keys
}

// fakeMessage is a MessageRPC receiver holding messages in memory.
type fakeMessage struct {
	mu   sync.Mutex
	msgs map[string][]*api.Message
}

func (m *fakeMessage) Ping(_ int, r *int) error { return nil }

func (m *fakeMessage) GetPrivate(a *api.MessageGetPrivateArgs, r *api.MessageGetResp) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range m.msgs[a.Key] {
		if msg.MsgId > a.MsgId {
			r.Msgs = append(r.Msgs, msg)
		}
	}
	return nil
}

func (m *fakeMessage) DelPrivate(key string, r *int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.msgs, key)
	return nil
}

// cluster under test: a ZooKeeper root and helpers to add fake peers.
type testCluster struct {
	t         *testing.T
	root      string
	cometPath string
	msgPath   string
	lockPath  string
	z         *membership.ZK
	zc        *zk.Conn // a plain connection to look at the tree
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	root := testenv.ZKRoot(t)
	z, err := membership.DialZK([]string{testenv.ZK(t)}, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	zc := testenv.ZKConn(t)
	t.Cleanup(func() {
		z.Close()
		testenv.ZKDeleteAll(t, zc, root)
	})
	return &testCluster{t: t, root: root, cometPath: root + "/comet", msgPath: root + "/message",
		lockPath: root + "/locks/migrate", z: z, zc: zc}
}

// instance is one fake comet process: its RPC server and registration.
type instance struct {
	comet *fakeComet
	srv   *gobrpc.Server
	reg   *membership.Registration
	data  api.CometNodeData
}

// kill makes the instance vanish as a SIGKILL would: its child goes away
// (here at once, instead of after the session timeout) and its RPC stops.
func (i *instance) kill() {
	i.reg.Close()
	i.srv.Close(context.Background())
}

// addComet serves a fake comet and registers it under node.
func (c *testCluster) addComet(node string, weight int) *instance {
	c.t.Helper()
	fc := &fakeComet{}
	srv, err := gobrpc.Serve(api.CometService, fc, []string{"127.0.0.1:0"}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { srv.Close(context.Background()) })
	data := api.CometNodeData{RPC: srv.Addrs(), TCP: []string{"tcp-" + node + srv.Addrs()[0]}, WS: []string{"ws-" + node + srv.Addrs()[0]}, Weight: weight}
	b, _ := json.Marshal(data)
	reg, err := membership.Register(context.Background(), c.z, c.cometPath+"/"+node, b, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { reg.Close() })
	return &instance{comet: fc, srv: srv, reg: reg, data: data}
}

// addHungComet registers an instance of node whose RPC address accepts
// connections and never answers.
func (c *testCluster) addHungComet(node string) {
	c.t.Helper()
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { hung.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, conn := range conns {
				conn.Close()
			}
		}()
		for {
			conn, err := hung.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn) // accepted, never answered
		}
	}()
	data, _ := json.Marshal(api.CometNodeData{RPC: []string{hung.Addr().String()}, TCP: []string{"tcp-hung"}, Weight: 1})
	reg, err := membership.Register(context.Background(), c.z, c.cometPath+"/"+node, data, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { reg.Close() })
}

// addMessage serves a fake message node and registers it.
func (c *testCluster) addMessage() *fakeMessage {
	c.t.Helper()
	fm := &fakeMessage{msgs: map[string][]*api.Message{}}
	srv, err := gobrpc.Serve(api.MessageService, fm, []string{"127.0.0.1:0"}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { srv.Close(context.Background()) })
	b, _ := json.Marshal(api.MessageNodeData{RPC: srv.Addrs(), Weight: 1})
	reg, err := membership.Register(context.Background(), c.z, c.msgPath, b, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { reg.Close() })
	return fm
}

// startWeb starts a web on free ports watching the cluster.
func (c *testCluster) startWeb(edit func(*conf.Web)) *Web {
	c.t.Helper()
	cfg := conf.DefaultWeb()
	cfg.HTTP.Bind = conf.AddrList{"127.0.0.1:0"}
	cfg.Admin.Bind = conf.AddrList{"127.0.0.1:0"}
	cfg.Pprof.Bind = nil
	cfg.Metrics.Bind = nil
	cfg.ZooKeeper.Addr = conf.AddrList{testenv.ZK(c.t)}
	cfg.ZooKeeper.Timeout = conf.Duration(10 * time.Second)
	cfg.ZooKeeper.Comet.Path = c.cometPath
	cfg.ZooKeeper.Message.Path = c.msgPath
	cfg.ZooKeeper.Migrate.Path = c.lockPath
	cfg.RPC.Timeout = conf.Duration(time.Second)
	cfg.RPC.Ping = conf.Duration(200 * time.Millisecond)
	cfg.RPC.Retry = conf.Duration(200 * time.Millisecond)
	cfg.Prune.Interval = conf.Duration(100 * time.Millisecond)
	cfg.Prune.Failures = 3
	cfg.Prune.Path = path.Dir(c.cometPath) + "/prune"
	if edit != nil {
		edit(cfg)
	}
	log := slog.New(slog.NewTextHandler(testWriter{c.t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w := New(cfg, log)
	if err := w.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			c.t.Errorf("web close: %v", err)
		}
	})
	return w
}

// testWriter sends log lines to t.Log (shown only for failing tests with -v off).
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if os.Getenv("GOPUSH_WEB_TEST_LOG") != "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// serverOf asks web which tcp address serves key ("" with the code when not 0).
func serverOf(t *testing.T, w *Web, key string) (string, int) {
	t.Helper()
	a := get(t, "http://"+w.HTTPAddrs()[0]+"/1/server/get?p=2&k="+key)
	var r struct {
		Ret  int
		Data struct{ Server string }
	}
	if err := json.Unmarshal([]byte(a.body), &r); err != nil {
		t.Fatalf("server/get: %s: %v", a.body, err)
	}
	return r.Data.Server, r.Ret
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, what, cond)
}

func TestWebClusterRoutesPushesAndMigrates(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	a := c.addComet("node-a", 1)
	b := c.addComet("node-b", 2)
	fm := c.addMessage()
	fm.msgs["offline-key"] = []*api.Message{{Msg: json.RawMessage(`{"x":1}`), MsgId: 5}, {Msg: json.RawMessage(`{"x":2}`), MsgId: 9}}
	w := c.startWeb(nil)
	want := map[string]int{"node-a": 1, "node-b": 2}
	for _, inst := range []*instance{a, b} {
		waitFor(t, "both comets migrated to the full map", func() bool { return maps.Equal(inst.comet.lastMigrate(), want) })
	}
	// The lock is released after the broadcast (just after the last
	// comet answered, so it may still be there for a moment).
	waitFor(t, "the migrate lock released", func() bool {
		ok, _, err := c.zc.Exists(c.lockPath)
		return err == nil && !ok
	})

	ring := ketama.FromWeights(ketama.DefaultBase, want)
	byNode := map[string]*instance{"node-a": a, "node-b": b}
	var keys []string
	for i := range 40 {
		key := fmt.Sprint("route-", i)
		keys = append(keys, key)
		got, code := serverOf(t, w, key)
		if code != 0 || got != byNode[ring.Get(key)].data.TCP[0] {
			t.Fatalf("key %s: server %q code %d, want %s", key, got, code, byNode[ring.Get(key)].data.TCP[0])
		}
	}
	admin := "http://" + w.AdminAddrs()[0]
	expectCode(t, post(t, admin+"/1/admin/push/private?expire=0&key="+keys[0], `{"n":1}`), api.CodeOK)
	body, _ := json.Marshal(map[string]string{"m": `{"n":2}`, "k": strings.Join(keys[1:], ",")})
	expectCode(t, post(t, admin+"/1/admin/push/mprivate?expire=10", string(body)), api.CodeOK)
	for _, node := range []string{"node-a", "node-b"} {
		var wantKeys []string
		for _, k := range keys {
			if ring.Get(k) == node {
				wantKeys = append(wantKeys, k)
			}
		}
		got := byNode[node].comet.pushedKeys()
		slices.Sort(got)
		slices.Sort(wantKeys)
		if !slices.Equal(got, wantKeys) {
			t.Fatalf("%s got keys %v, want %v", node, got, wantKeys)
		}
	}
	// Offline messages through the watched message node.
	waitFor(t, "msg/get answering through the message pool", func() bool {
		return get(t, "http://"+w.HTTPAddrs()[0]+"/1/msg/get?k=offline-key&m=5").body ==
			`{"ret":0,"data":{"msgs":[{"msg":{"x":2},"mid":9,"gid":0}]}}`
	})
	expectCode(t, post(t, admin+"/1/admin/msg/del", "key=offline-key"), api.CodeOK)
	if a := get(t, "http://"+w.HTTPAddrs()[0]+"/1/msg/get?k=offline-key&m=0"); a.body != `{"ret":0}` {
		t.Fatalf("after del: %s", a.body)
	}
	expectCode(t, get(t, admin+"/1/token/add?k="+keys[0]+"&t=tok"), api.CodeOK)
	if n := len(byNode[ring.Get(keys[0])].comet.tokens); n != 1 {
		t.Fatalf("token calls: %d", n)
	}

	// A third comet joins: everybody gets the new map.
	cc := c.addComet("node-c", 1)
	want = map[string]int{"node-a": 1, "node-b": 2, "node-c": 1}
	for _, inst := range []*instance{a, b, cc} {
		waitFor(t, "every comet migrated after node-c joined", func() bool { return maps.Equal(inst.comet.lastMigrate(), want) })
	}
}

func TestWebStandbyTakesOverWithoutPrune(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	serving := c.addComet("node-a", 1)
	c.addComet("node-b", 1) // answers throughout, so this web is not cut off
	_, created, err := c.zc.Exists(c.cometPath + "/node-a")
	if err != nil {
		t.Fatal(err)
	}
	w := c.startWeb(nil)
	want := map[string]int{"node-a": 1, "node-b": 1}
	key := keyOn(want, "node-a", "k")
	waitFor(t, "serving comet migrated", func() bool { return maps.Equal(serving.comet.lastMigrate(), want) })
	standby := c.addComet("node-a", 1)
	time.Sleep(300 * time.Millisecond) // a few prune rounds with a standby present
	if got, _ := serverOf(t, w, key); got != serving.data.TCP[0] {
		t.Fatalf("before takeover server %q, want the first instance %q", got, serving.data.TCP[0])
	}
	if standby.comet.lastMigrate() != nil {
		t.Fatalf("standby was sent a map while standing by")
	}
	// The serving comet stops answering but its child stays (as after a
	// SIGKILL, until its session times out): the standby still answers,
	// so the node must not be pruned.
	serving.srv.Close(context.Background())
	time.Sleep(800 * time.Millisecond) // 8 prune rounds; 3 failures would prune
	if ok, after, _ := c.zc.Exists(c.cometPath + "/node-a"); !ok || after.Czxid != created.Czxid {
		t.Fatal("node-a was pruned although its standby answers")
	}
	// Its session ends: the standby serves.
	serving.reg.Close()
	waitFor(t, "the standby to serve node-a", func() bool {
		got, code := serverOf(t, w, key)
		return code == 0 && got == standby.data.TCP[0]
	})
	// The map did not change, but the new serving instance is told it.
	waitFor(t, "the standby to be sent the map", func() bool { return maps.Equal(standby.comet.lastMigrate(), want) })
	time.Sleep(500 * time.Millisecond)
	if ok, after, _ := c.zc.Exists(c.cometPath + "/node-a"); !ok || after.Czxid != created.Czxid {
		t.Fatal("node-a was pruned although its standby serves")
	}
}

func TestWebPrunesDeadCometAndKeysMove(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	a := c.addComet("node-a", 1)
	b := c.addComet("node-b", 1)
	w := c.startWeb(nil)
	both := map[string]int{"node-a": 1, "node-b": 1}
	waitFor(t, "comets migrated", func() bool { return maps.Equal(a.comet.lastMigrate(), both) })
	keyB := keyOn(both, "node-b", "dead-")
	if got, _ := serverOf(t, w, keyB); got != b.data.TCP[0] {
		t.Fatalf("key on node-b served by %q", got)
	}
	b.kill()
	// Until the prune the key gets 1001, never a wrong comet.
	if got, code := serverOf(t, w, keyB); code == 0 && got != b.data.TCP[0] {
		t.Fatalf("key routed to %s before the prune", got)
	}
	start := time.Now()
	waitFor(t, "node-b pruned", func() bool {
		ok, _, err := c.zc.Exists(c.cometPath + "/node-b")
		return err == nil && !ok
	})
	// 3 failures, 100 ms apart: well under the 20 s of waitFor, but not at once.
	t.Logf("pruned %v after the kill", time.Since(start))
	waitFor(t, "the key to move to node-a", func() bool {
		got, code := serverOf(t, w, keyB)
		return code == 0 && got == a.data.TCP[0]
	})
	waitFor(t, "node-a told the shrunk map", func() bool {
		return maps.Equal(a.comet.lastMigrate(), map[string]int{"node-a": 1})
	})
	if ok, _, _ := c.zc.Exists(c.cometPath + "/node-a"); !ok {
		t.Fatal("live node-a was pruned")
	}
	// The comet comes back: it registers again and rejoins the ring.
	b2 := c.addComet("node-b", 1)
	waitFor(t, "node-b back on the ring", func() bool {
		got, code := serverOf(t, w, keyB)
		return code == 0 && got == b2.data.TCP[0]
	})
}

func TestWebPrunesCometThatStopsAnswering(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	a := c.addComet("node-a", 1)
	// A comet that stays registered but whose RPC port no longer answers.
	c.addHungComet("node-h")
	w := c.startWeb(func(cfg *conf.Web) { cfg.RPC.Timeout = conf.Duration(300 * time.Millisecond) })
	both := map[string]int{"node-a": 1, "node-h": 1}
	keyH := keyOn(both, "node-h", "hung-")
	keyA := keyOn(both, "node-a", "alive-")
	// Every call to the hung comet ends within its deadline with 65535 or fk.
	if _, code := serverOf(t, w, keyH); code == 0 {
		start := time.Now()
		a := post(t, "http://"+w.AdminAddrs()[0]+"/1/admin/push/private?expire=0&key="+keyH, `{}`)
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("push to a hung comet took %v", took)
		}
		if code := a.ret(t); code != api.CodeInternalErr && code != api.CodeNoNode {
			t.Fatalf("push to a hung comet: %s", a.body)
		}
		body, _ := json.Marshal(map[string]string{"m": `{}`, "k": keyH + "," + keyA})
		a = post(t, "http://"+w.AdminAddrs()[0]+"/1/admin/push/mprivate?expire=0", string(body))
		if a.ret(t) != api.CodeOK || !strings.Contains(a.body, `"fk":["`+keyH+`"]`) {
			t.Fatalf("mprivate with a hung comet: %s", a.body)
		}
	}
	waitFor(t, "the hung node pruned (its child deleted at least once)", func() bool {
		got, code := serverOf(t, w, keyH)
		return code == 0 && got == a.data.TCP[0]
	})
}

func TestWebSecondWebLeavesBroadcastToLockHolder(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	// Another web holds the lock.
	if err := membership.EnsurePath(c.zc, c.root+"/locks"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.zc.Create(c.lockPath, []byte("1"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	a := c.addComet("node-a", 1)
	c.startWeb(nil)
	time.Sleep(500 * time.Millisecond)
	if m := a.comet.lastMigrate(); m != nil {
		t.Fatalf("comet sent %v while another web held the lock", m)
	}
	// The holder goes; a new comet joins; this web now takes the lock.
	if err := c.zc.Delete(c.lockPath, -1); err != nil {
		t.Fatal(err)
	}
	b := c.addComet("node-b", 1)
	want := map[string]int{"node-a": 1, "node-b": 1}
	for _, inst := range []*instance{a, b} {
		waitFor(t, "migration after the lock was freed", func() bool { return maps.Equal(inst.comet.lastMigrate(), want) })
	}
}

func TestWebStartFailsOnTakenPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := conf.DefaultWeb()
	cfg.HTTP.Bind = conf.AddrList{ln.Addr().String()}
	cfg.Admin.Bind = conf.AddrList{"127.0.0.1:0"}
	cfg.Pprof.Bind = nil
	cfg.Metrics.Bind = nil
	cfg.ZooKeeper.Addr = conf.AddrList{testenv.ZK(t)}
	w := New(cfg, nil)
	err = w.Start()
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Start on a taken port: %v", err)
	}
}

// slowMessage is a MessageRPC whose GetPrivate waits until released.
type slowMessage struct {
	entered chan struct{}
	release chan struct{}
}

func (m *slowMessage) Ping(_ int, r *int) error { return nil }

func (m *slowMessage) GetPrivate(a *api.MessageGetPrivateArgs, r *api.MessageGetResp) error {
	m.entered <- struct{}{}
	<-m.release
	return nil
}

func TestWebCloseFinishesInFlightRequests(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	sm := &slowMessage{entered: make(chan struct{}, 10), release: make(chan struct{})}
	srv, err := gobrpc.Serve(api.MessageService, sm, []string{"127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	b, _ := json.Marshal(api.MessageNodeData{RPC: srv.Addrs(), Weight: 1})
	reg, err := membership.Register(context.Background(), c.z, c.msgPath, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	w := c.startWeb(func(cfg *conf.Web) { cfg.RPC.Timeout = conf.Duration(5 * time.Second) })
	u := "http://" + w.HTTPAddrs()[0] + "/1/msg/get?k=a&m=0"
	waitFor(t, "the message node in the pool", func() bool {
		res := make(chan answer, 1)
		go func() { res <- get(t, u) }()
		select {
		case <-sm.entered:
			sm.release <- struct{}{}
			<-res
			return true
		case a := <-res:
			return a.ret(t) == api.CodeOK
		}
	})
	res := make(chan answer, 1)
	go func() { res <- get(t, u) }()
	<-sm.entered
	closed := make(chan error, 1)
	go func() { closed <- w.Close(context.Background()) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a request was in flight", err)
	default:
	}
	close(sm.release)
	if a := <-res; a.body != `{"ret":0}` {
		t.Fatalf("in-flight request: %s", a.body)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", w.HTTPAddrs()[0], time.Second); err == nil {
		conn.Close()
		t.Fatal("still listening after Close")
	}
}

// TestWebCloseLeavesNoGoroutines runs alone (not parallel), so that the
// goroutines it checks are only those of the web it starts and stops.
func TestWebCloseLeavesNoGoroutines(t *testing.T) {
	c := newTestCluster(t)
	a := c.addComet("node-a", 1)
	c.addMessage()
	before := goleak.IgnoreCurrent()

	w := c.startWeb(nil)
	waitFor(t, "migration", func() bool { return a.comet.lastMigrate() != nil })
	hc := &http.Client{}
	resp, err := hc.Get("http://" + w.HTTPAddrs()[0] + "/1/server/get?k=a&p=2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
}

// TestWebKeepsConnectionsAlive checks docs/protocol.md §9.7: API calls share one TCP
// connection instead of paying a handshake each.
func TestWebKeepsConnectionsAlive(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	w := c.startWeb(nil)
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	var conns []string
	for range 5 {
		a, local := doTraced(t, hc, http.MethodGet, "http://"+w.HTTPAddrs()[0]+"/1/time/get", nil)
		if a.connection == "close" {
			t.Fatal("web answered Connection: close")
		}
		conns = append(conns, local)
	}
	if len(slices.Compact(slices.Clone(conns))) != 1 {
		t.Fatalf("5 requests used connections %v, want one", conns)
	}
}

// TestWebWithoutMessageNode: with no message node registered, the calls
// that need one answer 65535 at once instead of hanging.
func TestWebWithoutMessageNode(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	w := c.startWeb(nil)
	start := time.Now()
	expectCode(t, get(t, "http://"+w.HTTPAddrs()[0]+"/1/msg/get?k=a&m=0"), api.CodeInternalErr)
	expectCode(t, post(t, "http://"+w.AdminAddrs()[0]+"/1/admin/msg/del", "key=a"), api.CodeInternalErr)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %v", took)
	}
	// No comet either: 1001 for routing and pushes.
	expectCode(t, get(t, "http://"+w.HTTPAddrs()[0]+"/1/server/get?k=a&p=1"), api.CodeNoNode)
	expectCode(t, post(t, "http://"+w.AdminAddrs()[0]+"/1/admin/push/private?key=a&expire=0", "{}"), api.CodeNoNode)
	body := `{"m":"{}","k":"a,b"}`
	if a := post(t, "http://"+w.AdminAddrs()[0]+"/1/admin/push/mprivate?expire=0", body); a.body != `{"ret":0,"data":{"fk":["a","b"]}}` {
		t.Fatalf("mprivate with no comet: %s", a.body)
	}
}

// TestWebDoesNotPruneWhenNoCometAnswers: when not one comet answers this
// web, it is more likely cut off itself than every comet dead, so failed
// pings do not prune; once another comet answers, the hung one is pruned.
func TestWebDoesNotPruneWhenNoCometAnswers(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	c.addHungComet("node-h")
	_, before, err := c.zc.Exists(c.cometPath + "/node-h")
	if err != nil {
		t.Fatal(err)
	}
	w := c.startWeb(func(cfg *conf.Web) { cfg.RPC.Timeout = conf.Duration(100 * time.Millisecond) })
	time.Sleep(1500 * time.Millisecond) // 15 rounds of 100 ms, 3 failures prune
	// The registration would recreate a pruned node at once: compare the
	// node's creation, not its existence.
	if ok, after, _ := c.zc.Exists(c.cometPath + "/node-h"); !ok || after.Czxid != before.Czxid {
		t.Fatal("the only comet was pruned although none answered (this web may be the one cut off)")
	}
	a := c.addComet("node-a", 1)
	keyH := keyOn(map[string]int{"node-a": 1, "node-h": 1}, "node-h", "k")
	waitFor(t, "the hung node pruned once another comet answers", func() bool {
		got, code := serverOf(t, w, keyH)
		return code == 0 && got == a.data.TCP[0]
	})
}

// TestWebRetriesFailedMigrate: a comet that fails Migrate gets the map
// again until it takes it.
func TestWebRetriesFailedMigrate(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	a := c.addComet("node-a", 1)
	a.comet.mu.Lock()
	a.comet.failMigrates = 3
	a.comet.mu.Unlock()
	c.startWeb(nil)
	waitFor(t, "the map to reach the comet after failures", func() bool {
		return maps.Equal(a.comet.lastMigrate(), map[string]int{"node-a": 1})
	})
}

// TestWebSurvivesSessionExpiry: after its ZooKeeper session expires, web
// watches again and follows comets that join later.
func TestWebSurvivesSessionExpiry(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	a := c.addComet("node-a", 1)
	w := c.startWeb(nil)
	waitFor(t, "migrated", func() bool { return a.comet.lastMigrate() != nil })
	id, passwd := w.zk.Session()
	testenv.ExpireSession(t, testenv.ZK(t), id, passwd)
	waitFor(t, "a new session", func() bool { return w.zk.SessionID() != 0 && w.zk.SessionID() != id })
	b := c.addComet("node-b", 1)
	want := map[string]int{"node-a": 1, "node-b": 1}
	waitFor(t, "the comet that joined after the expiry to be routed", func() bool {
		got, code := serverOf(t, w, keyOn(want, "node-b", "exp-"))
		return code == 0 && got == b.data.TCP[0]
	})
	for _, inst := range []*instance{a, b} {
		waitFor(t, "every comet migrated after the expiry", func() bool { return maps.Equal(inst.comet.lastMigrate(), want) })
	}
}
