package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"gopush/bench"
)

// writeRun stores a result as bench.sh names it.
func writeRun(t *testing.T, dir, name string, r *Result) {
	t.Helper()
	if r.Push == nil {
		r.Push = &bench.PushResult{Calls: 10, Accepted: 10}
	}
	if err := r.WriteJSON(filepath.Join(dir, name+".json")); err != nil {
		t.Fatal(err)
	}
}

func privateRun(rate, webSec, cometSec float64, delivered uint64) *Result {
	return &Result{Scenario: "private", PushRate: rate, Expected: delivered, Delivered: delivered,
		CPU: []CPURow{{Name: "web", Sec: webSec}, {Name: "comet1", Sec: cometSec}, {Name: "bench", Sec: 9}}}
}

// The report puts gopush's figures beside their ratios to the floor and to
// the baseline, round by round, and ignores the load tool's own CPU.
func TestReportRatios(t *testing.T) {
	dir := t.TempDir()
	// 10 000 pushes: gopush 1.5 s of web + comet = 150 µs a push, the
	// floor 100 µs, the baseline 300 µs.
	writeRun(t, dir, "private.gopush.1", privateRun(5000, 0.9, 0.6, 10000))
	writeRun(t, dir, "private.floor.1", privateRun(8000, 0.5, 0.5, 10000))
	writeRun(t, dir, "private.base.1", privateRun(2500, 2, 1, 10000))
	writeRun(t, dir, "fanout-2k-all.gopush.1", &Result{Scenario: "all", FanoutPerSec: 70000, Expected: 2000, Delivered: 2000})
	writeRun(t, dir, "fanout-2k-all.floor.1", &Result{Scenario: "all", FanoutPerSec: 100000, Expected: 2000, Delivered: 2000})

	var out bytes.Buffer
	if err := printReport(&out, dir); err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	for _, want := range []string{
		"| private | CPU per push, web + comet | 150 µs | 300 µs | 100 µs | 1.50 | 0.50 |",
		"| private | pushes/s | 5 000 /s | 2 500 /s | 8 000 /s | 0.62 | 2.00 |",
		"| fanout-2k-all | fan-out deliveries/s (p50 per call) | 70 000 /s | — | 100 000 /s | 0.70 | — |",
		"0 lost, 0 duplicated",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, &out)
		}
	}
}

// A run that lost or duplicated a delivery, or misses a stored message,
// fails the report, whichever target it was.
func TestReportFailsOnIncorrectRuns(t *testing.T) {
	for name, r := range map[string]*Result{
		"lost":       {Scenario: "private", Expected: 10, Delivered: 9, Lost: 1},
		"duplicated": {Scenario: "private", Expected: 10, Delivered: 11, Duplicated: 1},
		"stored":     {Scenario: "private", Expected: 10, Delivered: 10, Stored: &bench.StoredCheck{Checked: 20, Found: 19}},
		"no push":    {Scenario: "private", Push: &bench.PushResult{Calls: 3, Errors: 3}},
		"fk":         {Scenario: "mprivate", Expected: 10, Delivered: 12, FailedButDelivered: 2},
	} {
		dir := t.TempDir()
		writeRun(t, dir, "private.gopush.1", privateRun(5000, 1, 1, 10000))
		writeRun(t, dir, "private.floor.2", r)
		var out bytes.Buffer
		if err := printReport(&out, dir); err == nil || !strings.Contains(out.String(), "private.floor.2") {
			t.Errorf("%s: err %v, want a failure naming the run:\n%s", name, err, &out)
		}
	}
}

// gopush-bench exits non-zero when Check fails: a loss, a failed call, a
// stored message missing.
func TestResultCheck(t *testing.T) {
	ok := &Result{Push: &bench.PushResult{Calls: 5, Accepted: 5}}
	ok.setDeliveries(ok.Push, &bench.Snapshot{})
	if err := ok.Check(); err != nil {
		t.Errorf("a clean run: %v", err)
	}
	lost := &Result{Push: &bench.PushResult{Calls: 1, Accepted: 1, Expected: map[uint64]uint32{1: 2}, ExpectedN: 2}}
	lost.setDeliveries(lost.Push, &bench.Snapshot{Seqs: map[uint64]*bench.SeqStat{1: {N: 1, MaxUs: 10}}, Delivered: 1})
	if err := lost.Check(); err == nil || !strings.Contains(err.Error(), "1 deliveries lost") {
		t.Errorf("one of two deliveries missing: %v", err)
	}
	stored := &Result{Stored: &bench.StoredCheck{Checked: 5, Found: 4}}
	if err := stored.Check(); err == nil {
		t.Error("a stored message missing: no error")
	}
	failed := &Result{Push: &bench.PushResult{Calls: 2, Accepted: 1, Errors: 1}}
	if err := failed.Check(); err == nil {
		t.Error("a failed call: no error")
	}
	if got := fanoutPath("/o/fanout-2k-{mode}.gopush.1.json", "room"); got != "/o/fanout-2k-room.gopush.1.json" {
		t.Errorf("fanoutPath: %s", got)
	}
}
