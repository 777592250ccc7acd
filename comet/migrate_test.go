package comet

import (
	"fmt"
	"testing"
	"time"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/ketama"
)

func TestStartupRingFromZooKeeper(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	cfg1 := testConfig(t, root, "node1")
	c1 := startComet(t, cfg1)
	cfg2 := testConfig(t, root, "node2")
	cfg2.ZooKeeper.Comet.Weight = 2
	c2 := startComet(t, cfg2)
	// c2 started after c1 registered, so without any Migrate it already
	// knows both nodes and refuses keys that are node1's.
	want := map[string]int{"node1": 1, "node2": 2}
	if got := c2.ring.weights(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ring at start-up %v, want %v", got, want)
	}
	r := ketama.FromWeights(ketama.DefaultBase, want)
	var k1 string
	for i := 0; k1 == ""; i++ {
		if k := fmt.Sprintf("key%d", i); r.Get(k) == "node1" {
			k1 = k
		}
	}
	cl := dialTCP(t, c2.TCPAddrs()[0])
	cl.write(subBytes("sub", k1, "30"))
	cl.expect("-n\r\n")
	subscribeTCP(t, c1, k1, "", "1")
}

func TestMigrationClosesOnlyKeysThatMoved(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	c1 := startComet(t, testConfig(t, root, "node1"))
	c2 := startComet(t, testConfig(t, root, "node2"))
	rc1, rc2 := rpcClient(t, c1), rpcClient(t, c2)
	migrate := func(nodes map[string]int) {
		t.Helper()
		var r int
		call(t, rc1, api.CometMigrate, &api.CometMigrateArgs{Nodes: nodes}, &r)
		call(t, rc2, api.CometMigrate, &api.CometMigrateArgs{Nodes: nodes}, &r)
	}
	before := map[string]int{"node1": 1, "node2": 1}
	after := map[string]int{"node1": 1, "node2": 4}
	migrate(before)

	oldRing := ketama.FromWeights(ketama.DefaultBase, before)
	newRing := ketama.FromWeights(ketama.DefaultBase, after)
	type sub struct {
		key   string
		comet *Comet
		rc    *gobrpc.Client
		cl    *tcpClient
		moves bool
	}
	var subs []*sub
	moved, stayed := 0, 0
	for i := 0; moved < 5 || stayed < 5; i++ {
		k := fmt.Sprintf("user-%d", i)
		s := &sub{key: k, moves: oldRing.Get(k) != newRing.Get(k)}
		if oldRing.Get(k) == "node1" {
			s.comet, s.rc = c1, rc1
		} else {
			s.comet, s.rc = c2, rc2
		}
		if s.moves {
			if moved >= 5 {
				continue
			}
			moved++
		} else {
			if stayed >= 5 {
				continue
			}
			stayed++
		}
		s.cl = subscribeTCP(t, s.comet, k, "", "1")
		subs = append(subs, s)
	}

	migrate(before) // the same map again changes nothing
	for _, s := range subs {
		s.cl.write([]byte("h"))
		s.cl.expect("+h\r\n")
	}

	// node2's weight goes to 4 in ZooKeeper, as an operator would do it;
	// web then sends the new map.
	setRegisteredWeight(t, c2, 4)
	migrate(after)
	for _, s := range subs {
		if s.moves {
			s.cl.expectClosed(5 * time.Second)
			continue
		}
		push(t, s.rc, s.key, `"still here"`, 0)
		if d := decode(t, s.cl.readFrame()); string(d.Msg) != `"still here"` {
			t.Fatalf("%s got %s", s.key, d.Msg)
		}
	}
	// A moved key now subscribes on its new comet, and is refused by the
	// old one.
	for _, s := range subs {
		if !s.moves {
			continue
		}
		owner, other := c2, c1
		if newRing.Get(s.key) == "node1" {
			owner, other = c1, c2
		}
		subscribeTCP(t, owner, s.key, "", "1")
		cl := dialTCP(t, other.TCPAddrs()[0])
		cl.write(subBytes("sub", s.key, "30"))
		cl.expect("-n\r\n")
	}

	// A bogus map is refused and changes nothing.
	var r int
	if err := rc1.Call(t.Context(), api.CometMigrate, &api.CometMigrateArgs{Nodes: map[string]int{"node1": -3}}, &r); err == nil {
		t.Fatal("negative weight accepted")
	}
	if got := c1.ring.weights(); fmt.Sprint(got) != fmt.Sprint(after) {
		t.Fatalf("ring changed by a refused Migrate: %v", got)
	}
}
