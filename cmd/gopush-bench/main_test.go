package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopush/bench"
)

func TestLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:8090", "localhost:8091", "[::1]:80", "127.0.0.9:1"} {
		if err := loopbackOnly(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"10.0.0.1:8090", "8.8.8.8:53", "127.0.0.1", ""} {
		if err := loopbackOnly(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestPidFlagReadsScriptPidFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "comet1.pid")
	// scripts/lib.sh writes "<pid> <start time>".
	if err := os.WriteFile(f, []byte("4242 987654\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var p pidFlag
	if err := p.Set("comet1=@" + f); err != nil {
		t.Fatal(err)
	}
	if err := p.Set("web=77"); err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || p[0] != (namedPid{"comet1", 4242}) || p[1] != (namedPid{"web", 77}) {
		t.Errorf("got %v", p)
	}
	for _, bad := range []string{"web", "=5", "web=abc", "web=-1", "web=@" + filepath.Join(dir, "missing")} {
		if err := p.Set(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	base := func() options {
		return options{scenario: "private", proto: "tcp", httpAddr: "127.0.0.1:1", admin: "127.0.0.1:2",
			n: 10, clients: 1, heartbeat: 30, src: 8}
	}
	o := base()
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	if o.keys != 10 || o.pushKeys != 10 || o.name != "private" || !strings.HasPrefix(o.prefix, "bench-") {
		t.Errorf("defaults not filled: %+v", o)
	}
	for name, mutate := range map[string]func(*options){
		"unknown scenario": func(o *options) { o.scenario = "nope" },
		"unknown proto":    func(o *options) { o.proto = "udp" },
		"no clients":       func(o *options) { o.clients = 0 },
		"src too large":    func(o *options) { o.src = 300 },
		"negative n":       func(o *options) { o.n = -1 },
		"push-keys < keys": func(o *options) { o.keys = 10; o.pushKeys = 5 },
		"remote admin":     func(o *options) { o.admin = "192.0.2.1:8091" },
		"nothing to push":  func(o *options) { o.n = 0 },
	} {
		o := base()
		mutate(&o)
		if err := o.check(); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestLostAndDuplicatedArePerPush(t *testing.T) {
	pr := &bench.PushResult{
		Accepted:  3,
		Expected:  map[uint64]uint32{1: 2, 2: 1, 3: 1},
		ExpectedN: 4,
	}
	snap := &bench.Snapshot{
		Delivered: 5,
		Seqs: map[uint64]*bench.SeqStat{
			1: {N: 1, MaxUs: 900},  // one of two lost
			2: {N: 2, MaxUs: 1500}, // delivered twice
			// 3 never arrived
			9: {N: 1, MaxUs: 10}, // a push web did not accept
		},
	}
	for _, us := range []uint64{900, 800, 1500, 1400, 10} {
		snap.Hist.RecordUs(us)
	}
	var r Result
	r.setDeliveries(pr, snap)
	// Totals alone (5 delivered ≥ 4 expected) would hide both losses.
	if r.Lost != 2 || r.Duplicated != 1 || r.Unexpected != 1 {
		t.Errorf("lost %d duplicated %d unexpected %d, want 2, 1, 1", r.Lost, r.Duplicated, r.Unexpected)
	}
	if r.LastDelivMs.N != 2 || r.LastDelivMs.Max != 1.5 {
		t.Errorf("last delivery %+v, want 2 pushes seen, max 1.5 ms", r.LastDelivMs)
	}
}
