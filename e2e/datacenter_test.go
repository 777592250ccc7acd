package e2e

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"gopush/client"
	"gopush/conf"
	"gopush/internal/testenv"
)

// dcCluster is a gopush cluster in a datacenter of network namespaces:
// ZooKeeper, Redis with one message node, two comets and two webs, each
// on a host of its own.
type dcCluster struct {
	dc                 *testenv.Datacenter
	zk                 []string
	zkProcs            []*testenv.Proc
	zkHosts            []*testenv.Host
	message            *testenv.Proc
	store              *testenv.Host // the message node's host
	comets             [2]*testenv.Proc
	webs               [2]*testenv.Proc
	comet1, comet2     *testenv.Host
	web1, web2         *testenv.Host
	zkConn             *zk.Conn
	cometPath          string
	web1Admin, web2API string
	web2Admin          string
	redis              *testenv.Proc // the message node's standalone Redis, on host "store" (nil with dcOption.store)
	redisAddr          string
}

// dcOption changes the cluster startDCCluster builds.
type dcOption struct {
	// store, when set, starts the offline store in dc and returns the
	// redis.source value of its one shard (default: a standalone Redis on
	// the message node's host).
	store func(dc *testenv.Datacenter) string
	// message, when set, edits the message node's configuration.
	message func(*conf.Message)
}

// startDCCluster starts the cluster with zkServers ZooKeeper servers (one
// ensemble) on hosts of their own.
func startDCCluster(t *testing.T, zkServers int, opts ...dcOption) *dcCluster {
	start := time.Now()
	dc := testenv.NewDatacenter(t)
	c := &dcCluster{dc: dc}
	var zkHosts []*testenv.Host
	for i := range zkServers {
		zkHosts = append(zkHosts, dc.AddHost(fmt.Sprintf("zk%d", i+1)))
	}
	store := dc.AddHost("store")
	c.comet1, c.comet2 = dc.AddHost("comet1"), dc.AddHost("comet2")
	c.web1, c.web2 = dc.AddHost("web1"), dc.AddHost("web2")
	c.zkHosts = zkHosts
	c.zkProcs, c.zk = dc.StartZooKeeper(zkHosts...)
	t.Logf("ZooKeeper serving after %v", time.Since(start).Round(time.Millisecond))
	source := ""
	for _, o := range opts {
		if o.store != nil {
			source = o.store(dc)
		}
	}
	if source == "" {
		redisProc, redis := dc.StartRedisOn(store)
		c.redis, c.redisAddr = redisProc, redis
		source = "tcp@" + redis
	}

	zkc := func(z *conf.ZooKeeper) {
		z.Addr = conf.AddrList(c.zk)
		z.Timeout = conf.Duration(4 * time.Second)
	}
	fast := func(r *conf.RPC) {
		r.Ping = conf.Duration(200 * time.Millisecond)
		r.Retry = conf.Duration(300 * time.Millisecond)
		r.Timeout = conf.Duration(time.Second)
	}

	m := conf.DefaultMessage()
	m.RPC.Bind = conf.AddrList{store.Addr(8070)}
	m.Pprof.Bind = conf.AddrList{}
	m.Redis.Source = map[string]string{"node1:1": source}
	m.Storage.Store = 1000 // a client away for seconds must find every push kept
	zkc(&m.ZooKeeper)
	fast(&m.RPC)
	m.RPC.Bind = conf.AddrList{store.Addr(8070)}
	for _, o := range opts {
		if o.message != nil {
			o.message(m)
		}
	}
	c.message = dc.StartDaemonOn(store, "message", m, store.Addr(8070))
	c.store = store

	for i, h := range []*testenv.Host{c.comet1, c.comet2} {
		cc := conf.DefaultComet()
		cc.TCP.Bind = conf.AddrList{h.Addr(6969)}
		cc.WebSocket.Bind = conf.AddrList{h.Addr(6968)}
		cc.Stat.Bind = conf.AddrList{h.Addr(6972)}
		cc.Pprof.Bind = conf.AddrList{}
		zkc(&cc.ZooKeeper)
		cc.ZooKeeper.Comet.Node = fmt.Sprintf("comet%d", i+1)
		cc.Lost.Grace = conf.Duration(time.Second)
		fast(&cc.RPC)
		cc.RPC.Bind = conf.AddrList{h.Addr(6970)}
		c.comets[i] = dc.StartDaemonOn(h, "comet", cc, h.Addr(6969))
	}
	for i, h := range []*testenv.Host{c.web1, c.web2} {
		w := conf.DefaultWeb()
		w.HTTP.Bind = conf.AddrList{h.Addr(8090)}
		w.Admin.Bind = conf.AddrList{h.Addr(8091)}
		w.Pprof.Bind = conf.AddrList{}
		w.Prune.Interval = conf.Duration(300 * time.Millisecond)
		w.Prune.Failures = 3
		zkc(&w.ZooKeeper)
		fast(&w.RPC)
		c.webs[i] = dc.StartDaemonOn(h, "web", w, h.Addr(8091))
	}
	t.Logf("cluster started after %v", time.Since(start).Round(time.Millisecond))
	c.cometPath = conf.DefaultWeb().ZooKeeper.Comet.Path
	c.web1Admin, c.web2Admin = c.web1.Addr(8091), c.web2.Addr(8091)
	c.web2API = "http://" + c.web2.Addr(8090)
	conn, events, err := zk.Connect(c.zk, 4*time.Second, zk.WithLogger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range events {
		}
	}()
	t.Cleanup(conn.Close)
	c.zkConn = conn
	return c
}

// waitRing waits until web2 places keys on both comets.
func (c *dcCluster) waitRing(t *testing.T) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "both comets on web2's ring", func() bool {
		seen := map[string]bool{}
		for i := range 50 {
			if s, _, err := testenv.ServerOf(c.web2API, fmt.Sprintf("probe%d", i), "2"); err == nil {
				seen[s] = true
			}
		}
		return len(seen) == 2
	})
}

// routing returns which comet web2 names for each of n keys.
func (c *dcCluster) routing(t *testing.T, n int) map[string]string {
	t.Helper()
	r := make(map[string]string, n)
	for i := range n {
		k := fmt.Sprintf("route%d", i)
		s, ret, err := testenv.ServerOf(c.web2API, k, "2")
		if err != nil || ret != 0 {
			t.Fatalf("server/get %s: ret %d, %v", k, ret, err)
		}
		r[k] = s
	}
	return r
}

// instances returns the registered instance children of both comets.
func (c *dcCluster) instances(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, n := range []string{"comet1", "comet2"} {
		kids, _, err := c.zkConn.Children(c.cometPath + "/" + n)
		if err != nil {
			t.Fatalf("children of %s: %v", n, err)
		}
		for _, k := range kids {
			out = append(out, n+"/"+k)
		}
	}
	return out
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// keyOn returns a key that web2 places on the comet whose TCP address is
// tcp.
func (c *dcCluster) keyOn(t *testing.T, tcp string) string {
	t.Helper()
	for i := range 1000 {
		k := fmt.Sprintf("dckey%d", i)
		if s, _, err := testenv.ServerOf(c.web2API, k, "2"); err == nil && s == tcp {
			return k
		}
	}
	t.Fatalf("no key on %s", tcp)
	return ""
}

// Scenario 3 of docs/reliability.md: one web cut off from one comet only,
// the other web still reaching it. The comet stays on the ring (a lone
// web's view is no majority of two), pushes through the cut web to that
// comet's keys fail with 65535, and succeed through the other web.
func TestDatacenterWebCutFromOneComet(t *testing.T) {
	c := startDCCluster(t, 1)
	tcp1 := c.comet1.Addr(6969)
	c.waitRing(t)
	key := c.keyOn(t, tcp1)
	if ret, err := testenv.Push(c.web1Admin, key, `"before"`, 0); err != nil || ret != 0 {
		t.Fatalf("push through web1 before the cut: %d, %v", ret, err)
	}

	c.web1.Cut(c.comet1)
	// Twelve prune windows of web1: comet1 must stay registered and on
	// web2's ring the whole time.
	node := c.cometPath + "/comet1"
	deadline := time.Now().Add(12 * 3 * 300 * time.Millisecond)
	for time.Now().Before(deadline) {
		ok, _, err := c.zkConn.Exists(node)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Fatal("comet1 was pruned while only web1 (1 of 2 webs) could not reach it")
		}
		if s, _, err := testenv.ServerOf(c.web2API, key, "2"); err != nil || s != tcp1 {
			t.Fatalf("web2 names %q (%v) for comet1's key during the cut", s, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ret, err := testenv.Push(c.web1Admin, key, `"cut"`, 0); err != nil || ret != 65535 {
		t.Errorf("online push through the cut web: %d (%v), want 65535", ret, err)
	}
	if ret, err := testenv.Push(c.web2Admin, key, `"other"`, 0); err != nil || ret != 0 {
		t.Errorf("push through the other web during the cut: %d (%v), want 0", ret, err)
	}

	c.web1.Heal(c.comet1)
	testenv.WaitFor(t, 10*time.Second, "pushes through web1 after healing", func() bool {
		ret, err := testenv.Push(c.web1Admin, key, `"healed"`, 0)
		return err == nil && ret == 0
	})
}

// Scenario 1 of docs/reliability.md: the ZooKeeper leader of a three-server
// ensemble is killed, then (after it came back) a follower. The daemons'
// sessions survive (every comet keeps its registration, no new instance
// child), routing never changes, and stored pushes keep succeeding.
func TestDatacenterZooKeeperLeaderThenFollowerKilled(t *testing.T) {
	c := startDCCluster(t, 3)
	c.waitRing(t)
	route := c.routing(t, 20)
	regs := c.instances(t)
	if len(regs) != 2 {
		t.Fatalf("registered instances %v, want one per comet", regs)
	}
	keys := []string{c.keyOn(t, c.comet1.Addr(6969)), c.keyOn(t, c.comet2.Addr(6969))}
	failed, pushed := 0, 0
	pushFor := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			for _, k := range keys {
				pushed++
				if ret, err := testenv.Push(c.web2Admin, k, `"m"`, 60); err != nil || ret != 0 {
					failed++
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	find := func(mode string) int {
		for i, a := range c.zk {
			if testenv.ZKMode(a) == mode {
				return i
			}
		}
		return -1
	}
	check := func(what string) {
		t.Helper()
		if got := c.instances(t); !slices.Equal(got, regs) {
			t.Errorf("%s: registered instances %v, want %v (a session was lost)", what, got, regs)
		}
		if got := c.routing(t, 20); !maps.Equal(got, route) {
			t.Errorf("%s: routing changed", what)
		}
	}

	leader := find("leader")
	if leader < 0 {
		t.Fatal("no leader")
	}
	killed := time.Now()
	c.zkProcs[leader].Kill()
	testenv.WaitFor(t, 30*time.Second, "a new leader", func() bool { return find("leader") >= 0 })
	t.Logf("new leader elected %v after the leader was killed", time.Since(killed).Round(10*time.Millisecond))
	pushFor(6 * time.Second) // longer than the 4 s session timeout
	check("after the leader was killed")

	c.zkProcs[leader] = c.zkProcs[leader].Restart()
	testenv.WaitFor(t, 60*time.Second, "the old leader back as follower", func() bool {
		return testenv.ZKMode(c.zk[leader]) == "follower"
	})
	follower := find("follower")
	c.zkProcs[follower].Kill()
	pushFor(6 * time.Second)
	check("after a follower was killed")
	if failed > 0 {
		t.Errorf("%d of %d stored pushes failed while ZooKeeper servers died", failed, pushed)
	}
	t.Logf("%d stored pushes, %d failed", pushed, failed)
}

// Scenario 2 of docs/reliability.md: a comet cut off from ZooKeeper and
// from both webs, but not from its clients. Its keys move to the other
// comet, it closes its clients (lost.grace after its session ended), they
// reconnect to the new owner, and every push accepted (ret 0) with
// expire > 0 reaches the client exactly once, online or through the
// offline fetch, as the Go client sees it.
func TestDatacenterCometCutOffFromCluster(t *testing.T) {
	c := startDCCluster(t, 1)
	c.waitRing(t)
	tcp1, tcp2 := c.comet1.Addr(6969), c.comet2.Addr(6969)
	key := c.keyOn(t, tcp1)
	cl, err := client.New(client.Config{Web: c.web2API, Key: key,
		MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second, Buffer: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	testenv.WaitFor(t, 20*time.Second, "the client on comet1", func() bool { return cl.Comet() == tcp1 })

	var mu sync.Mutex
	got := map[string]int{}
	go func() {
		for m := range cl.Messages() {
			mu.Lock()
			got[string(m.Msg)]++
			mu.Unlock()
		}
	}()
	var accepted []string
	refused := 0
	n := 0
	push := func() {
		n++
		msg := fmt.Sprintf(`{"n":%d}`, n)
		ret, err := testenv.Push(c.web2Admin, key, msg, 60)
		if err == nil && ret == 0 {
			accepted = append(accepted, msg)
		} else {
			refused++
		}
	}
	for range 5 {
		push()
	}

	cut := time.Now()
	c.comet1.Cut(append([]*testenv.Host{c.web1, c.web2}, c.zkHosts...)...)
	var moved time.Duration
	for moved == 0 || time.Since(cut) < moved+time.Second {
		push()
		if moved == 0 && cl.Comet() == tcp2 {
			moved = time.Since(cut)
		}
		if time.Since(cut) > 40*time.Second {
			t.Fatalf("the client is not on comet2 40 s after comet1 was cut off (on %q)", cl.Comet())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("client on comet2 %v after the cut; %d pushes accepted, %d refused", moved.Round(10*time.Millisecond), len(accepted), refused)

	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		var missing []string
		for _, m := range accepted {
			if got[m] == 0 {
				missing = append(missing, m)
			}
		}
		mu.Unlock()
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted pushes never reached the client: %v", len(missing), len(accepted), missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // room for a duplicate to show up
	mu.Lock()
	defer mu.Unlock()
	for m, k := range got {
		if k > 1 {
			t.Errorf("message %s delivered %d times", m, k)
		}
	}
	c.comet1.Heal(append([]*testenv.Host{c.web1, c.web2}, c.zkHosts...)...)
}

// pushLog pushes numbered messages to keys through web2 and records which
// were accepted (ret 0) for each key.
type pushLog struct {
	c        *dcCluster
	n        int
	accepted map[string][]string
	refused  int
}

func (l *pushLog) push(keys ...string) {
	for _, k := range keys {
		l.n++
		msg := fmt.Sprintf(`{"n":%d}`, l.n)
		if ret, err := testenv.Push(l.c.web2Admin, k, msg, 60); err == nil && ret == 0 {
			l.accepted[k] = append(l.accepted[k], msg)
		} else {
			l.refused++
		}
	}
}

// receiver is a Go client that counts what it receives.
type receiver struct {
	cl  *client.Client
	mu  sync.Mutex
	got map[string]int
}

func (c *dcCluster) receive(t *testing.T, key string) *receiver {
	cl, err := client.New(client.Config{Web: c.web2API, Key: key,
		MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second, Buffer: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	r := &receiver{cl: cl, got: map[string]int{}}
	go func() {
		for m := range cl.Messages() {
			r.mu.Lock()
			r.got[string(m.Msg)]++
			r.mu.Unlock()
		}
	}()
	return r
}

// exactlyOnce waits until r has every message of want, then checks that
// none came twice.
func (r *receiver) exactlyOnce(t *testing.T, what string, want []string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		var missing []string
		for _, m := range want {
			if r.got[m] == 0 {
				missing = append(missing, m)
			}
		}
		var dups []string
		for m, k := range r.got {
			if k > 1 {
				dups = append(dups, m)
			}
		}
		r.mu.Unlock()
		if len(dups) > 0 {
			t.Fatalf("%s: delivered more than once: %v", what, dups)
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d accepted pushes never arrived: %v", what, len(missing), len(want), missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Scenario 7 of docs/reliability.md: a comet stopped with SIGTERM leaves
// the ring at once (its keys move without waiting for the prune), and one
// killed with SIGKILL has its pushes stored meanwhile: every push answered
// ret 0 with expire > 0 reaches its client exactly once.
func TestDatacenterCometsStoppedAndKilled(t *testing.T) {
	c := startDCCluster(t, 1)
	c.waitRing(t)
	tcp1, tcp2 := c.comet1.Addr(6969), c.comet2.Addr(6969)
	key1, key2 := c.keyOn(t, tcp1), c.keyOn(t, tcp2)
	r1, r2 := c.receive(t, key1), c.receive(t, key2)
	testenv.WaitFor(t, 20*time.Second, "both clients connected", func() bool {
		return r1.cl.Comet() == tcp1 && r2.cl.Comet() == tcp2
	})
	l := &pushLog{c: c, accepted: map[string][]string{}}
	l.push(key1, key2)

	// SIGTERM: comet1's node is gone as soon as it has stopped, and web2
	// routes its key to comet2 right away.
	stopped := time.Now()
	c.comets[0].Stop(10 * time.Second)
	if ok, _, err := c.zkConn.Exists(c.cometPath + "/comet1"); err != nil || ok {
		t.Fatalf("comet1's node after SIGTERM: exists %v (%v), want gone", ok, err)
	}
	for {
		l.push(key1, key2)
		if s, _, _ := testenv.ServerOf(c.web2API, key1, "2"); s == tcp2 {
			break
		}
		if time.Since(stopped) > 5*time.Second {
			t.Fatal("comet1's key not moved 5 s after SIGTERM")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("key moved %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	for range 10 {
		l.push(key1, key2)
		time.Sleep(50 * time.Millisecond)
	}
	r1.exactlyOnce(t, "key of the comet stopped with SIGTERM", l.accepted[key1])

	// comet1 comes back; then comet2 is killed outright.
	c.comets[0] = c.comets[0].Restart()
	testenv.WaitFor(t, 20*time.Second, "comet1 back on the ring", func() bool {
		s, _, _ := testenv.ServerOf(c.web2API, key1, "2")
		return s == tcp1
	})
	killed := time.Now()
	c.comets[1].Kill()
	for {
		l.push(key1, key2)
		if s, _, _ := testenv.ServerOf(c.web2API, key2, "2"); s == tcp1 {
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatal("comet2's key not moved 30 s after SIGKILL")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("key moved %v after SIGKILL (pruned after 3 failed pings)", time.Since(killed).Round(time.Millisecond))
	for range 10 {
		l.push(key1, key2)
		time.Sleep(50 * time.Millisecond)
	}
	r1.exactlyOnce(t, "key of the comet that came back", l.accepted[key1])
	r2.exactlyOnce(t, "key of the comet killed with SIGKILL", l.accepted[key2])
	t.Logf("%d pushes accepted, %d refused", len(l.accepted[key1])+len(l.accepted[key2]), l.refused)
}

// Scenario 6 of docs/reliability.md: a whole host's daemons (comet1 and
// web1) paused with SIGSTOP for longer than the ZooKeeper session, then
// continued. They rejoin cleanly: comet1 registered once again, both webs
// route to both comets, and pushes through either web reach the client
// exactly once with increasing mids.
func TestDatacenterHostPausedPastSession(t *testing.T) {
	c := startDCCluster(t, 1)
	c.waitRing(t)
	tcp1 := c.comet1.Addr(6969)
	key := c.keyOn(t, tcp1)
	r := c.receive(t, key)
	testenv.WaitFor(t, 20*time.Second, "the client on comet1", func() bool { return r.cl.Comet() == tcp1 })
	l := &pushLog{c: c, accepted: map[string][]string{}}
	l.push(key)

	c.comets[0].Signal(syscall.SIGSTOP)
	c.webs[0].Signal(syscall.SIGSTOP)
	for range 60 { // 6 s: past the 4 s session timeout
		l.push(key)
		time.Sleep(100 * time.Millisecond)
	}
	continued := time.Now()
	c.comets[0].Signal(syscall.SIGCONT)
	c.webs[0].Signal(syscall.SIGCONT)
	web1API := "http://" + c.web1.Addr(8090)
	testenv.WaitFor(t, 30*time.Second, "comet1 registered again and routed to by both webs", func() bool {
		kids, _, err := c.zkConn.Children(c.cometPath + "/comet1")
		if err != nil || len(kids) != 1 {
			return false
		}
		s1, _, _ := testenv.ServerOf(web1API, key, "2")
		s2, _, _ := testenv.ServerOf(c.web2API, key, "2")
		return s1 == tcp1 && s2 == tcp1
	})
	t.Logf("rejoined %v after SIGCONT", time.Since(continued).Round(10*time.Millisecond))
	for i := range 20 {
		admin := c.web2Admin
		if i%2 == 0 {
			admin = c.web1Admin
		}
		msg := fmt.Sprintf(`{"after":%d}`, i)
		ret, err := testenv.Push(admin, key, msg, 60)
		if err != nil || ret != 0 {
			t.Fatalf("push %d after the pause: ret %d, %v", i, ret, err)
		}
		l.accepted[key] = append(l.accepted[key], msg)
	}
	// The Go client drops a message whose mid is not above the last one
	// it got: every message arriving means the mids kept increasing.
	t.Cleanup(func() {
		if t.Failed() {
			a, err := testenv.WebGet(c.web2API, "/1/msg/get", url.Values{"k": {key}, "m": {"0"}})
			if err == nil {
				t.Logf("stored for the key (msg/get m=0): ret %d data %.3000s", a.Ret, a.Data)
			}
			t.Logf("client last mid %d", r.cl.LastMid())
		}
	})
	r.exactlyOnce(t, "key of the paused comet", l.accepted[key])
	t.Logf("%d pushes accepted, %d refused", len(l.accepted[key]), l.refused)
}
