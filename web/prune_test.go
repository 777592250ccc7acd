package web

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"gopush/ketama"
	"gopush/membership"
)

// TestPrunerWaitsForZooKeeper: while the ZooKeeper session is not
// connected nothing is counted or pruned; once it is, a dead node needs
// prune.failures fresh rounds.
func TestPrunerWaitsForZooKeeper(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	dead := c.cometPath + "/node-x" // a node whose comet is gone: no child
	if err := membership.EnsurePath(c.zc, dead); err != nil {
		t.Fatal(err)
	}
	weights := map[string]int{"node-x": 1, "node-a": 1}
	cl := newCluster(slog.New(slog.DiscardHandler), time.Second)
	cl.cur.Store(&clusterView{
		ring:    ketama.FromWeights(ketama.DefaultBase, weights),
		weights: weights,
		nodes:   map[string]*cometNode{"node-a": {name: "node-a", child: "node-a/1", rpc: &fakeRPC{}}},
	})
	p := newPruner(slog.New(slog.DiscardHandler), c.z, c.cometPath, cl, 100*time.Millisecond, 3, time.Second)
	var up atomic.Bool
	p.connected = up.Load
	exists := func() bool {
		ok, _, err := c.zc.Exists(dead)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for range 10 {
		p.round(context.Background())
	}
	if !exists() || len(p.fails) != 0 {
		t.Fatalf("rounds while disconnected counted %v (node exists: %v)", p.fails, exists())
	}
	up.Store(true)
	for i := 1; i < 3; i++ {
		p.round(context.Background())
		if !exists() {
			t.Fatalf("pruned after %d rounds, want 3", i)
		}
	}
	// An outage in between resets the count.
	up.Store(false)
	p.round(context.Background())
	up.Store(true)
	for i := 1; i < 3; i++ {
		p.round(context.Background())
		if !exists() {
			t.Fatalf("pruned after %d rounds since the outage, want 3", i)
		}
	}
	p.round(context.Background())
	if exists() {
		t.Fatal("not pruned after 3 connected rounds")
	}
	// node-a answers: never pruned.
	if _, ok := p.fails["node-a"]; ok {
		t.Fatalf("live node counted: %v", p.fails)
	}
}

// TestPrunerNeedsFailuresInARow: one good answer between failures starts
// the count again.
func TestPrunerNeedsFailuresInARow(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	flaky := c.cometPath + "/node-f"
	if err := membership.EnsurePath(c.zc, flaky); err != nil {
		t.Fatal(err)
	}
	var fail atomic.Bool
	rpc := &fakeRPC{fn: func(string, any, any) error {
		if fail.Load() {
			return errors.New("slow answer")
		}
		return nil
	}}
	weights := map[string]int{"node-f": 1, "node-a": 1}
	cl := newCluster(slog.New(slog.DiscardHandler), time.Second)
	cl.cur.Store(&clusterView{
		ring:    ketama.FromWeights(ketama.DefaultBase, weights),
		weights: weights,
		nodes: map[string]*cometNode{
			"node-a": {name: "node-a", child: "node-a/1", rpc: &fakeRPC{}},
			"node-f": {name: "node-f", child: "node-f/1", rpc: rpc},
		},
	})
	p := newPruner(slog.New(slog.DiscardHandler), c.z, c.cometPath, cl, 100*time.Millisecond, 3, time.Second)
	for range 5 {
		fail.Store(true)
		p.round(context.Background())
		p.round(context.Background())
		fail.Store(false)
		p.round(context.Background())
	}
	if ok, _, _ := c.zc.Exists(flaky); !ok {
		t.Fatal("a node failing 2 rounds out of 3 was pruned")
	}
	fail.Store(true)
	for range 3 {
		p.round(context.Background())
	}
	if ok, _, _ := c.zc.Exists(flaky); ok {
		t.Fatal("a node failing 3 rounds in a row was not pruned")
	}
}

// TestPrunerMajority: with several webs a comet node is pruned only when
// more than half of the live webs see it failing. One web cut off from the
// comet alone, the others reaching it, never removes it; a web that is
// gone (its registration ended) does not count; a lone web prunes alone.
func TestPrunerMajority(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	node := c.cometPath + "/node-x"
	if err := membership.EnsurePath(c.zc, node); err != nil {
		t.Fatal(err)
	}
	prunePath := c.root + "/prune"
	weights := map[string]int{"node-x": 1, "node-a": 1}
	type web struct {
		p    *pruner
		fail atomic.Bool // node-x's pings fail from this web
	}
	newWeb := func() *web {
		w := &web{}
		cl := newCluster(slog.New(slog.DiscardHandler), time.Second)
		cl.cur.Store(&clusterView{
			ring:    ketama.FromWeights(ketama.DefaultBase, weights),
			weights: weights,
			nodes: map[string]*cometNode{
				"node-a": {name: "node-a", child: "node-a/1", rpc: &fakeRPC{}},
				"node-x": {name: "node-x", child: "node-x/1", rpc: &fakeRPC{fn: func(string, any, any) error {
					if w.fail.Load() {
						return errors.New("no route to host")
					}
					return nil
				}}},
			},
		})
		w.p = newPruner(slog.New(slog.DiscardHandler), c.z, c.cometPath, cl, 100*time.Millisecond, 3, time.Second)
		v, err := newPruneVotes(context.Background(), c.z, prunePath, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		w.p.votes = v
		return w
	}
	exists := func() bool {
		ok, _, err := c.zc.Exists(node)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	rounds := func(n int, webs ...*web) {
		for range n {
			for _, w := range webs {
				w.p.round(context.Background())
			}
		}
	}
	w1, w2, w3 := newWeb(), newWeb(), newWeb()

	w1.fail.Store(true) // web1 cut from node-x only
	rounds(10, w1, w2, w3)
	if !exists() {
		t.Fatal("node-x pruned while only 1 of 3 webs failed to reach it")
	}
	// web1's view heals: its vote is taken back.
	w1.fail.Store(false)
	rounds(1, w1, w2, w3)
	if votes, _, _ := c.zc.Children(prunePath + "/votes/node-x"); len(votes) != 0 {
		t.Fatalf("votes left after the link healed: %v", votes)
	}

	// web3 goes away; web1 cut again: 1 of 2 live webs is no majority.
	w3.p.votes.Close()
	w1.fail.Store(true)
	rounds(10, w1, w2)
	if !exists() {
		t.Fatal("node-x pruned while only 1 of 2 live webs failed to reach it")
	}
	// Both remaining webs lose it: pruned, and its votes are cleared.
	w2.fail.Store(true)
	rounds(3, w1, w2)
	if exists() {
		t.Fatal("node-x not pruned when every live web failed to reach it")
	}
	if ok, _, _ := c.zc.Exists(prunePath + "/votes/node-x"); ok {
		t.Error("votes on node-x were left after the prune")
	}

	// A lone web decides alone, as without votes.
	if err := membership.EnsurePath(c.zc, node); err != nil {
		t.Fatal(err)
	}
	w2.p.votes.Close()
	rounds(3, w1)
	if exists() {
		t.Fatal("a lone web did not prune a node it could not reach")
	}
}
