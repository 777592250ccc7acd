package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The comparison report of scripts/bench.sh (gopush-bench -report DIR).
// bench.sh runs every scenario against three targets, in alternating
// rounds, and writes one JSON result per run as
// <scenario>.<target>.<round>.json:
//
//	gopush  the tree under test
//	base    the baseline build (the commit bench.sh started from)
//	floor   cmd/gopush-floor: the bare writer (fan-out scenarios) or the
//	        bare push path (private)
//
// The report prints, per scenario, gopush's absolute figures (median over
// the rounds, range in brackets) beside its ratio to the floor and to the
// baseline, and then the correctness of every run.

// Targets of a bench.sh run.
const (
	targetGopush = "gopush"
	targetBase   = "base"
	targetFloor  = "floor"
)

// runKey names one run.
type runKey struct {
	scenario, target, round string
}

// loadRuns reads every <scenario>.<target>.<round>.json in dir.
func loadRuns(dir string) (map[runKey]*Result, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	out := make(map[runKey]*Result)
	for _, f := range files {
		parts := strings.Split(strings.TrimSuffix(filepath.Base(f), ".json"), ".")
		if len(parts) != 3 {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r Result
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out[runKey{parts[0], parts[1], parts[2]}] = &r
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no <scenario>.<target>.<round>.json results in %s", dir)
	}
	return out, nil
}

// cpuPerPush is the CPU, in µs per delivery, of the processes whose names
// pass keep (the load tool, "bench", never counts).
func cpuPerPush(r *Result, keep func(name string) bool) float64 {
	if r.Delivered == 0 {
		return 0
	}
	var sec float64
	for _, c := range r.CPU {
		if c.Name != "bench" && keep(c.Name) {
			sec += c.Sec
		}
	}
	return sec / float64(r.Delivered) * 1e6
}

// webComet is the daemons of the live push path: web and the comets (for
// the floor: its HTTP front and its writer process, named the same).
func webComet(name string) bool { return name == "web" || strings.HasPrefix(name, "comet") }

// allDaemons is every measured process: with message and redis-server.
func allDaemons(string) bool { return true }

// figure is one measured quantity of a scenario, per run.
type figure struct {
	label string
	unit  string
	get   func(*Result) float64
}

var (
	figRate   = figure{"pushes/s", "/s", func(r *Result) float64 { return r.PushRate }}
	figCPU    = figure{"CPU per push, web + comet", "µs", func(r *Result) float64 { return cpuPerPush(r, webComet) }}
	figCPUAll = figure{"CPU per push, all daemons", "µs", func(r *Result) float64 { return cpuPerPush(r, allDaemons) }}
	// A fan-out's CPU per delivery: unlike its deliveries/s, which are a
	// latency and move with every other process on the machine, CPU is
	// what the target itself spent.
	figFanCPU    = figure{"CPU per delivery, web + comet", "µs", func(r *Result) float64 { return cpuPerPush(r, webComet) }}
	figFanCPUAll = figure{"CPU per delivery, all daemons", "µs", func(r *Result) float64 { return cpuPerPush(r, allDaemons) }}
	figFanout    = figure{"fan-out deliveries/s (p50 per call)", "/s", func(r *Result) float64 { return r.FanoutPerSec }}
	figLastDeliv = figure{"last delivery p50", "ms", func(r *Result) float64 {
		if r.LastDelivMs == nil {
			return 0
		}
		return r.LastDelivMs.P50
	}}
)

// series is the values of one figure over the rounds of one target.
type series map[string]float64 // round → value

func (s series) sorted() []float64 {
	v := make([]float64, 0, len(s))
	for _, x := range s {
		v = append(v, x)
	}
	sort.Float64s(v)
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// ratios divides a by b round by round (rounds where both ran).
func ratios(a, b series) []float64 {
	var out []float64
	for round, x := range a {
		if y, ok := b[round]; ok && y > 0 {
			out = append(out, x/y)
		}
	}
	sort.Float64s(out)
	return out
}

// fmtNum prints a figure with thin grouping: 12 345, 160, 1.32.
func fmtNum(x float64) string {
	switch {
	case x >= 1000:
		s := fmt.Sprintf("%.0f", x)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(' ')
			}
			b.WriteRune(c)
		}
		return b.String()
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

// cell is "median (min–max)" of v, or "—".
func cell(v []float64, unit string) string {
	if len(v) == 0 {
		return "—"
	}
	sort.Float64s(v)
	u := ""
	if unit != "" && unit != "/s" {
		u = " " + unit
	} else if unit == "/s" {
		u = " /s"
	}
	if len(v) == 1 || v[0] == v[len(v)-1] {
		return fmtNum(v[0]) + u
	}
	return fmt.Sprintf("%s%s (%s–%s)", fmtNum(median(v)), u, fmtNum(v[0]), fmtNum(v[len(v)-1]))
}

// ratioCell is "×median (min–max)" of per-round ratios.
func ratioCell(v []float64) string {
	if len(v) == 0 {
		return "—"
	}
	if len(v) == 1 || v[0] == v[len(v)-1] {
		return fmt.Sprintf("%.2f", v[0])
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", median(v), v[0], v[len(v)-1])
}

// report is the comparison of one bench.sh run.
type report struct {
	runs map[runKey]*Result
}

// get is the series of one figure for a scenario and target.
func (rp *report) get(scenario, target string, f figure) series {
	s := series{}
	for k, r := range rp.runs {
		if k.scenario == scenario && k.target == target {
			if v := f.get(r); v > 0 {
				s[k.round] = v
			}
		}
	}
	return s
}

func (rp *report) scenarios() []string {
	seen := map[string]bool{}
	var out []string
	for k := range rp.runs {
		if !seen[k.scenario] {
			seen[k.scenario] = true
			out = append(out, k.scenario)
		}
	}
	sort.Slice(out, func(i, j int) bool { return scenarioOrder(out[i]) < scenarioOrder(out[j]) })
	return out
}

// scenarioOrder sorts private first, then store, then fan-out by size.
func scenarioOrder(s string) string {
	switch {
	case s == "private":
		return "0"
	case s == "private-store":
		return "1"
	case strings.HasPrefix(s, "fanout-2k"):
		return "2" + s
	case strings.HasPrefix(s, "fanout-18k"):
		return "3" + s
	}
	return "9" + s
}

// figuresOf lists what the report shows for a scenario.
func figuresOf(scenario string) []figure {
	switch {
	case scenario == "private":
		return []figure{figRate, figCPU, figCPUAll}
	case scenario == "private-store":
		return []figure{figRate, figCPUAll}
	case strings.HasPrefix(scenario, "fanout"):
		return []figure{figFanout, figLastDeliv, figFanCPU, figFanCPUAll}
	}
	return []figure{figRate, figCPU}
}

// printReport writes the comparison table of the runs in dir and returns
// an error when any run failed its correctness check.
func printReport(w io.Writer, dir string) error {
	runs, err := loadRuns(dir)
	if err != nil {
		return err
	}
	rp := &report{runs: runs}
	rounds := map[string]bool{}
	for k := range runs {
		rounds[k.round] = true
	}
	fmt.Fprintf(w, "Medians over %d round(s), range in brackets; ratios are per round (gopush ÷ floor, gopush ÷ baseline).\n", len(rounds))
	fmt.Fprintf(w, "For CPU and latency lower is better, so a ratio below 1 to the baseline is an improvement; for rates above 1 is.\n\n")
	fmt.Fprintln(w, "| scenario | figure | gopush | baseline | floor | gopush ÷ floor | gopush ÷ baseline |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, sc := range rp.scenarios() {
		for _, f := range figuresOf(sc) {
			g := rp.get(sc, targetGopush, f)
			b := rp.get(sc, targetBase, f)
			fl := rp.get(sc, targetFloor, f)
			if len(g) == 0 && len(b) == 0 && len(fl) == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", sc, f.label,
				cell(g.sorted(), f.unit), cell(b.sorted(), f.unit), cell(fl.sorted(), f.unit),
				ratioCell(ratios(g, fl)), ratioCell(ratios(g, b)))
		}
	}
	// The stored path against the live one, per target and round.
	live, store := "private", "private-store"
	var lines []string
	for _, t := range []string{targetGopush, targetBase} {
		r := ratios(rp.get(store, t, figCPUAll), rp.get(live, t, figCPUAll))
		if len(r) > 0 {
			lines = append(lines, fmt.Sprintf("%s %s", t, ratioCell(r)))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "\nCPU per push of all daemons, expire 600 ÷ expire 0: %s\n", strings.Join(lines, "; "))
	}
	return rp.correctness(w)
}

// correctness prints the delivery counts of every run and fails when any
// run lost, duplicated or stored less than it should.
func (rp *report) correctness(w io.Writer) error {
	keys := make([]runKey, 0, len(rp.runs))
	for k := range rp.runs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.scenario != b.scenario {
			return scenarioOrder(a.scenario) < scenarioOrder(b.scenario)
		}
		if a.target != b.target {
			return a.target < b.target
		}
		return a.round < b.round
	})
	var failed []string
	var expected, delivered uint64
	for _, k := range keys {
		r := rp.runs[k]
		expected += r.Expected
		delivered += r.Delivered
		var bad []string
		if r.Lost > 0 {
			bad = append(bad, fmt.Sprintf("lost %d", r.Lost))
		}
		if r.Duplicated > 0 {
			bad = append(bad, fmt.Sprintf("duplicated %d", r.Duplicated))
		}
		if r.FailedButDelivered > 0 {
			bad = append(bad, fmt.Sprintf("delivered to keys listed as failed %d", r.FailedButDelivered))
		}
		if r.Unexpected > 0 || r.NotPayload > 0 {
			bad = append(bad, fmt.Sprintf("not expected %d", r.Unexpected+r.NotPayload))
		}
		if p := r.Push; p != nil && (p.Errors > 0 || p.Refused > 0) {
			bad = append(bad, fmt.Sprintf("%d calls failed", p.Errors+p.Refused))
		}
		if r.Push == nil || r.Push.Accepted == 0 {
			bad = append(bad, "no push accepted")
		}
		if s := r.Stored; s != nil && s.Found < s.Checked {
			bad = append(bad, fmt.Sprintf("stored %d of %d", s.Found, s.Checked))
		}
		if len(bad) > 0 {
			failed = append(failed, fmt.Sprintf("%s.%s.%s: %s", k.scenario, k.target, k.round, strings.Join(bad, ", ")))
		}
	}
	fmt.Fprintf(w, "\nCorrectness: %d runs, %d deliveries expected, %d delivered", len(keys), expected, delivered)
	if len(failed) == 0 {
		fmt.Fprintln(w, "; 0 lost, 0 duplicated, every sampled stored key holds its message.")
		return nil
	}
	fmt.Fprintln(w, "; FAILED:")
	for _, f := range failed {
		fmt.Fprintln(w, "  "+f)
	}
	return errors.New("some runs failed their correctness check")
}
