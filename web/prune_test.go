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
