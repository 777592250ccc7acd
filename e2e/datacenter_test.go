package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"gopush/conf"
	"gopush/internal/testenv"
)

// dcCluster is a gopush cluster in a datacenter of network namespaces:
// ZooKeeper, Redis with one message node, two comets and two webs, each
// on a host of its own.
type dcCluster struct {
	dc                 *testenv.Datacenter
	zk                 []string
	comet1, comet2     *testenv.Host
	web1, web2         *testenv.Host
	zkConn             *zk.Conn
	cometPath          string
	web1Admin, web2API string
	web2Admin          string
}

func startDCCluster(t *testing.T) *dcCluster {
	start := time.Now()
	dc := testenv.NewDatacenter(t)
	c := &dcCluster{dc: dc}
	zkHost, store := dc.AddHost("zk"), dc.AddHost("store")
	c.comet1, c.comet2 = dc.AddHost("comet1"), dc.AddHost("comet2")
	c.web1, c.web2 = dc.AddHost("web1"), dc.AddHost("web2")
	_, c.zk = dc.StartZooKeeper(zkHost)
	t.Logf("ZooKeeper serving after %v", time.Since(start).Round(time.Millisecond))
	_, redis := dc.StartRedisOn(store)

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
	m.Redis.Source = map[string]string{"node1:1": "tcp@" + redis}
	zkc(&m.ZooKeeper)
	fast(&m.RPC)
	m.RPC.Bind = conf.AddrList{store.Addr(8070)}
	dc.StartDaemonOn(store, "message", m, store.Addr(8070))

	for i, h := range []*testenv.Host{c.comet1, c.comet2} {
		cc := conf.DefaultComet()
		cc.TCP.Bind = conf.AddrList{h.Addr(6969)}
		cc.WebSocket.Bind = conf.AddrList{h.Addr(6968)}
		cc.Stat.Bind = conf.AddrList{h.Addr(6972)}
		cc.Pprof.Bind = conf.AddrList{}
		zkc(&cc.ZooKeeper)
		cc.ZooKeeper.Comet.Node = fmt.Sprintf("comet%d", i+1)
		fast(&cc.RPC)
		cc.RPC.Bind = conf.AddrList{h.Addr(6970)}
		dc.StartDaemonOn(h, "comet", cc, h.Addr(6969))
	}
	for _, h := range []*testenv.Host{c.web1, c.web2} {
		w := conf.DefaultWeb()
		w.HTTP.Bind = conf.AddrList{h.Addr(8090)}
		w.Admin.Bind = conf.AddrList{h.Addr(8091)}
		w.Pprof.Bind = conf.AddrList{}
		w.Prune.Interval = conf.Duration(300 * time.Millisecond)
		w.Prune.Failures = 3
		zkc(&w.ZooKeeper)
		fast(&w.RPC)
		dc.StartDaemonOn(h, "web", w, h.Addr(8091))
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
	c := startDCCluster(t)
	tcp1 := c.comet1.Addr(6969)
	testenv.WaitFor(t, 30*time.Second, "both comets on web2's ring", func() bool {
		seen := map[string]bool{}
		for i := range 50 {
			if s, _, err := testenv.ServerOf(c.web2API, fmt.Sprintf("probe%d", i), "2"); err == nil {
				seen[s] = true
			}
		}
		return len(seen) == 2
	})
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
