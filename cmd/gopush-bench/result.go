package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"gopush/bench"
)

// Result is everything one run measured. It is printed as a table and can be
// written as JSON.
type Result struct {
	Name        string    `json:"name"`
	Scenario    string    `json:"scenario"`
	Proto       string    `json:"proto"`
	Subscribers int       `json:"subscribers"`
	Keys        int       `json:"keys"`
	PushKeys    int       `json:"push_keys"`
	Procs       int       `json:"procs"`
	Src         int       `json:"source_addrs"`
	Clients     int       `json:"clients"`
	Expire      int       `json:"expire"`
	KeysPerCall int       `json:"keys_per_call,omitempty"`
	Started     time.Time `json:"started"`

	Connected  int64          `json:"connected"`
	Failed     map[string]int `json:"failed,omitempty"`
	Dropped    int64          `json:"dropped"`
	FirstDrop  string         `json:"first_drop,omitempty"`
	Heartbeats uint64         `json:"heartbeat_answers"`
	ConnectSec float64        `json:"connect_sec"`
	HoldSec    float64        `json:"hold_sec,omitempty"`

	RSS          []RSSRow `json:"rss,omitempty"`
	RSSPerConnKB float64  `json:"comet_rss_per_conn_kb,omitempty"`

	Push       *bench.PushResult `json:"push,omitempty"`
	PushRate   float64           `json:"accepted_per_sec,omitempty"`
	PushesRate float64           `json:"pushes_per_sec,omitempty"` // push-batch: pushes web took per second
	Expected   uint64            `json:"expected"`
	Delivered  uint64            `json:"delivered"`
	Lost       uint64            `json:"lost"`
	Duplicated uint64            `json:"duplicated"`
	Unexpected uint64            `json:"unexpected"` // deliveries of pushes web did not accept
	// FailedButDelivered: deliveries to keys web's answer listed in fk.
	FailedButDelivered uint64   `json:"failed_but_delivered"`
	NotPayload         uint64   `json:"not_payload"`
	LatencyMs          *Latency `json:"latency_ms,omitempty"`
	LastDelivMs        *Latency `json:"last_delivery_ms,omitempty"` // per push: its slowest delivery
	// FanoutPerSec is the median over pushes of (deliveries expected /
	// time to the last of them): how fast one push reaches everyone.
	FanoutPerSec float64      `json:"fanout_per_sec,omitempty"`
	tally        *bench.Tally // nil before a push
	// More are the results of the other modes of a fanout run, on the
	// same connections; each is printed and written on its own.
	More   []*Result `json:"-"`
	CallMs *Latency  `json:"call_ms,omitempty"` // admin HTTP call round trip

	HoldCPU   []CPURow             `json:"hold_cpu,omitempty"` // while holding before a push
	CPU       []CPURow             `json:"cpu,omitempty"`
	CPUWindow float64              `json:"cpu_window_sec,omitempty"`
	Stored    *bench.StoredCheck   `json:"stored,omitempty"`
	ServerGet *bench.GetLoadResult `json:"server_get,omitempty"`
	GetRate   float64              `json:"server_get_per_sec,omitempty"`
}

// Latency summarises a histogram in milliseconds.
type Latency struct {
	N    uint64  `json:"n"`
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func latency(h *bench.Histogram) *Latency {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return &Latency{N: h.N, P50: ms(h.Quantile(0.5)), P99: ms(h.Quantile(0.99)), Max: ms(h.Max()), Mean: ms(h.Mean())}
}

// RSSRow is one process's resident memory before and after connecting.
type RSSRow struct {
	Name      string `json:"name"`
	Pid       int    `json:"pid"`
	BeforeKB  int64  `json:"before_kb"`
	AfterKB   int64  `json:"after_kb"`
	AfterHold int64  `json:"after_hold_kb,omitempty"`
}

// CPURow is the CPU one process spent during the measured window.
type CPURow struct {
	Name    string  `json:"name"`
	Pid     int     `json:"pid"`
	Sec     float64 `json:"cpu_sec"`
	PctCore float64 `json:"pct_of_one_core"`
	PerK    float64 `json:"cpu_sec_per_1000,omitempty"` // per 1000 deliveries (or requests)
	PerWhat string  `json:"per,omitempty"`
}

func sortedNames(m map[string]procSample) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (r *Result) setRSS(before, after map[string]procSample, connected int64) {
	var delta int64
	comets := false
	for _, name := range sortedNames(after) {
		a, b := after[name], before[name]
		if a.Err != nil || b.Err != nil || name == "bench" {
			continue
		}
		r.RSS = append(r.RSS, RSSRow{Name: name, Pid: a.Pid, BeforeKB: b.RSSKB, AfterKB: a.RSSKB})
		if strings.HasPrefix(name, "comet") {
			comets = true
			delta += a.RSSKB - b.RSSKB
		}
	}
	if comets && connected > 0 {
		r.RSSPerConnKB = float64(delta) / float64(connected)
	}
}

func (r *Result) setRSSAfterHold(after map[string]procSample) {
	for i := range r.RSS {
		if s, ok := after[r.RSS[i].Name]; ok && s.Err == nil {
			r.RSS[i].AfterHold = s.RSSKB
		}
	}
}

func (r *Result) setConns(st bench.PoolStats) {
	r.Connected = st.Connected
	r.Failed = st.Failed
	r.Dropped = st.Dropped
	r.FirstDrop = st.FirstDrop
	r.Heartbeats = st.Heartbeats
}

func (r *Result) setCPU(before, after map[string]procSample, count uint64, per string) {
	r.CPUWindow = r.windowSec()
	r.CPU = cpuRows(before, after, count, per, r.CPUWindow)
}

// cpuRows is the CPU each process spent between two samples; per names
// what count counts ("deliveries"); window is the length in seconds.
func cpuRows(before, after map[string]procSample, count uint64, per string, window float64) []CPURow {
	var rows []CPURow
	for _, name := range sortedNames(after) {
		a, b := after[name], before[name]
		if a.Err != nil || b.Err != nil {
			continue
		}
		row := CPURow{Name: name, Pid: a.Pid, Sec: a.CPUSec - b.CPUSec}
		if count > 0 {
			row.PerK = row.Sec / float64(count) * 1000
			row.PerWhat = per
		}
		if window > 0 {
			row.PctCore = 100 * row.Sec / window
		}
		rows = append(rows, row)
	}
	return rows
}

// windowSec is the length of the CPU window: the push (plus drain) or the
// load run.
func (r *Result) windowSec() float64 {
	switch {
	case r.ServerGet != nil:
		return r.ServerGet.Elapsed.Seconds()
	case r.Push != nil:
		return r.Push.Elapsed.Seconds()
	}
	return 0
}

func (r *Result) setDeliveries(pr *bench.PushResult, snap *bench.Snapshot) {
	r.PushRate = pr.Rate()
	if r.Scenario == "push-batch" {
		r.PushesRate = pr.PushRate()
	}
	r.CallMs = latency(&pr.CallHist)
	r.LatencyMs = latency(&snap.Hist)
	t := bench.Count(pr, snap)
	r.Expected, r.Delivered, r.NotPayload = t.Expected, t.Delivered, t.NotPayload
	r.Lost, r.Duplicated, r.Unexpected, r.FailedButDelivered = t.Lost, t.Duplicated, t.Unexpected, t.FailedButDelivered
	r.LastDelivMs = latency(&t.LastDelivery)
	r.FanoutPerSec = t.FanoutP50()
	r.tally = &t
}

// Check is the run's correctness: an error when a delivery was lost,
// duplicated or not ours, a push call failed, or a sampled key does not
// hold its stored message. gopush-bench exits non-zero on it.
func (r *Result) Check() error {
	var errs []error
	if r.tally != nil {
		if err := r.tally.Err(); err != nil {
			errs = append(errs, err)
		}
	}
	if p := r.Push; p != nil && (p.Errors > 0 || p.Refused > 0) {
		errs = append(errs, fmt.Errorf("%d push calls failed, %d refused%s", p.Errors, p.Refused, errDetail(p.FirstError)))
	}
	if s := r.Stored; s != nil && s.Found < s.Checked {
		errs = append(errs, fmt.Errorf("%d of %d sampled keys do not hold their stored message", s.Checked-s.Found, s.Checked))
	}
	return errors.Join(errs...)
}

// batchCheck fails a push-batch run that did not deliver every push
// exactly once: a call refused or failed, a push web listed as failed, a
// delivery lost, duplicated or not asked for.
func (r *Result) batchCheck() error {
	p := r.Push
	if p.Refused+p.Errors+p.FailedKeys+r.Lost+r.Duplicated+r.Unexpected > 0 {
		return fmt.Errorf("push-batch: not every push delivered exactly once: refused calls %d, failed calls %d, failed pushes %d, lost %d, duplicated %d, unexpected %d%s",
			p.Refused, p.Errors, p.FailedKeys, r.Lost, r.Duplicated, r.Unexpected, errDetail(p.FirstError))
	}
	return nil
}

// Print writes the summary table.
func (r *Result) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("run", "%s", r.Name)
	row("scenario", "%s (%s), %d subscribers on %d keys, %d child procs, %d source addrs", r.Scenario, r.Proto, r.Subscribers, r.Keys, r.Procs, r.Src)
	if r.Subscribers > 0 && r.Scenario != "serverget" {
		row("connected", "%d in %.1fs, failed %d%s, dropped %d%s", r.Connected, r.ConnectSec, failedTotal(r.Failed), failedDetail(r.Failed), r.Dropped, dropDetail(r.FirstDrop))
	}
	for _, x := range r.RSS {
		extra := ""
		if x.AfterHold > 0 {
			extra = fmt.Sprintf(", %d KB after hold", x.AfterHold)
		}
		row("rss "+x.Name, "%d KB → %d KB%s", x.BeforeKB, x.AfterKB, extra)
	}
	if r.RSSPerConnKB != 0 {
		row("comet rss/conn", "%.2f KB", r.RSSPerConnKB)
	}
	if r.HoldSec > 0 {
		row("held", "%.0fs, heartbeat answers %d", r.HoldSec, r.Heartbeats)
	}
	if p := r.Push; p != nil {
		row("push calls", "%d (accepted %d, refused %d, errors %d, failed keys %d) in %.2fs%s", p.Calls, p.Accepted, p.Refused, p.Errors, p.FailedKeys, p.Elapsed.Seconds(), errDetail(p.FirstError))
		row("accepted/s", "%.0f", r.PushRate)
		if r.PushesRate > 0 {
			row("pushes/s", "%.0f (%d pushes in %d calls)", r.PushesRate, p.Pushes, p.Accepted)
		}
		if r.CallMs != nil {
			row("call ms", "p50 %.2f  p99 %.2f  max %.2f", r.CallMs.P50, r.CallMs.P99, r.CallMs.Max)
		}
		row("deliveries", "expected %d, delivered %d, lost %d, duplicated %d, unexpected %d, not ours %d, to keys listed as failed %d", r.Expected, r.Delivered, r.Lost, r.Duplicated, r.Unexpected, r.NotPayload, r.FailedButDelivered)
		if r.LatencyMs != nil && r.LatencyMs.N > 0 {
			row("latency ms", "p50 %.2f  p99 %.2f  max %.2f  (push call start → received)", r.LatencyMs.P50, r.LatencyMs.P99, r.LatencyMs.Max)
		}
		if r.LastDelivMs != nil && r.LastDelivMs.N > 0 && r.Scenario != "private" {
			row("last delivery ms", "per call: p50 %.2f  max %.2f  over %d calls", r.LastDelivMs.P50, r.LastDelivMs.Max, r.LastDelivMs.N)
			row("fan-out", "%.0f deliveries/s (per call: deliveries / time to the last one, p50)", r.FanoutPerSec)
		}
	}
	if g := r.ServerGet; g != nil {
		row("server/get", "%d requests, %d ok, %d errors in %.1fs: %.0f/s", g.Requests, g.OK, g.Errors, g.Elapsed.Seconds(), g.Rate())
		l := latency(&g.Hist)
		row("server/get ms", "p50 %.2f  p99 %.2f  max %.2f", l.P50, l.P99, l.Max)
	}
	if s := r.Stored; s != nil {
		row("stored", "%d of %d sampled keys hold their message%s", s.Found, s.Checked, missingDetail(s.Missing))
	}
	for _, c := range r.CPU {
		per := ""
		if c.PerWhat != "" {
			per = fmt.Sprintf(", %.4f s per 1000 %s", c.PerK, c.PerWhat)
		}
		row("cpu "+c.Name, "%.2f s (%.1f %% of a core over %.1fs)%s", c.Sec, c.PctCore, r.CPUWindow, per)
	}
	if n, sec, pct := cometCPU(r.CPU); n > 1 {
		row("cpu all comets", "%.2f s (%.1f %% of a core)", sec, pct)
	}
	for _, c := range r.HoldCPU {
		row("hold cpu "+c.Name, "%.2f s (%.1f %% of a core over %.0fs)", c.Sec, c.PctCore, r.HoldSec)
	}
	if n, sec, pct := cometCPU(r.HoldCPU); n > 1 {
		row("hold cpu all comets", "%.2f s (%.1f %% of a core)", sec, pct)
	}
	tw.Flush()
}

// cometCPU sums the CPU rows of the comets.
func cometCPU(rows []CPURow) (n int, sec, pct float64) {
	for _, c := range rows {
		if strings.HasPrefix(c.Name, "comet") {
			n++
			sec += c.Sec
			pct += c.PctCore
		}
	}
	return n, sec, pct
}

func failedTotal(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func failedDetail(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	return " (" + bench.PoolStats{Failed: m}.FailedString() + ")"
}

func dropDetail(s string) string {
	if s == "" {
		return ""
	}
	return " (first: " + s + ")"
}

func errDetail(s string) string {
	if s == "" {
		return ""
	}
	return " — first error: " + s
}

func missingDetail(m []string) string {
	if len(m) == 0 {
		return ""
	}
	return " (missing e.g. " + strings.Join(m, ", ") + ")"
}

// WriteJSON writes the result to path.
func (r *Result) WriteJSON(path string) error {
	if r.ServerGet != nil {
		r.GetRate = r.ServerGet.Rate()
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
