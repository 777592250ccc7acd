package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"gopush/bench"
)

// run carries out one scenario and returns what it measured (also when it
// fails part way, so that the figures gathered so far are printed).
func run(ctx context.Context, o options, log *slog.Logger) (*Result, error) {
	res := &Result{Name: o.name, Scenario: o.scenario, Proto: o.proto, Subscribers: o.n, Keys: o.keys,
		PushKeys: o.pushKeys, Procs: o.procs, Src: o.src, Clients: o.clients, Expire: o.expire,
		KeysPerCall: o.kpc, Started: time.Now().UTC()}
	prof := &profiler{targets: o.pprof, dir: o.pprofDir, prefix: o.name}

	if o.scenario == "serverget" {
		keys := make([]string, o.pushKeys)
		for i := range keys {
			keys[i] = o.key(i)
		}
		cpu0 := sampleAll(o.pids, nil)
		prof.start(ctx, o.duration)
		g := bench.ServerGetLoad(ctx, o.httpAddr, keys, o.clients, o.duration)
		cpu1 := sampleAll(o.pids, nil)
		prof.report(log)
		res.ServerGet = g
		res.setCPU(cpu0, cpu1, g.OK, "requests")
		return res, ctx.Err()
	}

	var subs holder
	if o.n > 0 {
		before := sampleAll(o.pids, nil)
		targets, err := o.targets(ctx, log)
		if err != nil {
			return res, err
		}
		if o.procs > 0 {
			ch, err := newChildHolder(o, o.procs)
			if err != nil {
				return res, err
			}
			subs = ch
		} else {
			cfg, err := subConfig(o)
			if err != nil {
				return res, err
			}
			subs = newLocalHolder(cfg)
		}
		defer subs.Close()
		log.Info("connecting", "subscribers", len(targets), "proto", o.proto, "procs", o.procs)
		t0 := time.Now()
		if err := subs.Connect(ctx, targets); err != nil {
			return res, err
		}
		res.ConnectSec = time.Since(t0).Seconds()
		st, err := subs.Stats()
		if err != nil {
			return res, err
		}
		log.Info("connected", "connected", st.Connected, "failed", st.FailedTotal(), "seconds", fmt.Sprintf("%.1f", res.ConnectSec))
		sleep(ctx, o.settle)
		after := sampleAll(o.pids, nil)
		res.setRSS(before, after, st.Connected)
		res.setConns(st)
	}

	// Hold the connections idle first: -hold in an idle run, and before the
	// push in a push run (100 000 subscribers heartbeating, then one push to
	// all of them).
	if subs != nil && o.hold > 0 {
		cpu0 := sampleAll(o.pids, subs.Pids())
		prof.start(ctx, min(o.hold, 30*time.Second))
		end := time.Now().Add(o.hold)
		for time.Now().Before(end) && ctx.Err() == nil {
			sleep(ctx, min(10*time.Second, time.Until(end)))
			st, err := subs.Stats()
			if err != nil {
				return res, err
			}
			log.Info("holding", "connected", st.Connected, "dropped", st.Dropped, "left", time.Until(end).Round(time.Second))
		}
		cpu1 := sampleAll(o.pids, subs.Pids())
		prof.report(log)
		prof.prefix = o.name + "-push"
		st, err := subs.Stats()
		if err != nil {
			return res, err
		}
		res.setConns(st)
		res.HoldSec = o.hold.Seconds()
		res.HoldCPU = cpuRows(cpu0, cpu1, 0, "", res.HoldSec)
		res.setRSSAfterHold(sampleAll(o.pids, nil))
	}

	switch o.scenario {
	case "idle":
		res.CPU, res.CPUWindow = res.HoldCPU, res.HoldSec
		res.HoldCPU = nil
	case "private", "mprivate", "all", "room", "push-batch":
		if err := o.pushPhase(ctx, o.scenario, subs, 1, res, prof, log); err != nil {
			return res, err
		}
	case "fanout":
		// One result per mode, on the same connections: the first mode's
		// is res, with the connection figures.
		for i, mode := range o.modes {
			r := res
			if i > 0 {
				r = &Result{Name: res.Name, Subscribers: res.Subscribers, Keys: res.Keys, PushKeys: res.PushKeys,
					Procs: res.Procs, Src: res.Src, Clients: res.Clients, Expire: res.Expire, KeysPerCall: res.KeysPerCall,
					Proto: res.Proto, Connected: res.Connected, ConnectSec: res.ConnectSec, Started: time.Now().UTC()}
				res.More = append(res.More, r)
			}
			r.Name, r.Scenario = o.name+"-"+mode, mode
			prof.prefix = r.Name
			if err := o.pushPhase(ctx, mode, subs, uint64(i)*1_000_000_000+1, r, prof, log); err != nil {
				return res, err
			}
		}
	}
	return res, ctx.Err()
}

// pushPhase pushes in one mode (private, mprivate, all or room) to the
// connections of subs, seq0 being the first sequence number, waits for the
// deliveries and fills res.
func (o *options) pushPhase(ctx context.Context, mode string, subs holder, seq0 uint64, res *Result, prof *profiler, log *slog.Logger) error {
	online := o.onlineFunc(subs)
	keys := make([]string, o.pushKeys)
	for i := range keys {
		keys[i] = o.key(i)
	}
	kpc := o.kpc
	if kpc == 0 || kpc > len(keys) {
		kpc = len(keys)
	}
	cfg := bench.PushConfig{
		Admin: o.admin, Mode: mode, Expire: o.expire, Clients: o.clients,
		Rate: o.rate, Duration: o.duration, Max: o.max, Keys: keys, KeysPerCall: kpc,
		Online: online,
	}
	switch mode {
	case "private":
		cfg.KeysPerCall = 1
	case "push-batch":
		cfg.Mode, cfg.BatchSize, cfg.KeysPerCall = "batch", o.batch, 1
	case "room":
		cfg.Room = o.prefix + "room"
		if err := bench.JoinRoom(o.admin, cfg.Room, keys); err != nil {
			return err
		}
		defer func() {
			if err := bench.DeleteRoom(o.admin, cfg.Room); err != nil {
				log.Warn("deleting the room", "err", err)
			}
		}()
	}
	var pids []int
	if subs != nil {
		pids = subs.Pids()
		if err := subs.Reset(); err != nil {
			return err
		}
	}
	cpu0 := sampleAll(o.pids, pids)
	log.Info("pushing", "mode", mode, "clients", o.clients, "rate", o.rate, "duration", o.duration, "max", o.max)
	prof.start(ctx, o.duration)
	pr := bench.Push(ctx, cfg, seq0)
	res.Push = pr
	// Wait for the deliveries still in flight: until the expected count
	// arrived, and, when web listed keys as failed (which may have been
	// delivered all the same, counting towards it), until the count has
	// not moved for half a second.
	var delivered uint64
	if subs != nil {
		deadline := time.Now().Add(o.drain)
		var last uint64
		quietSince := time.Now()
		for {
			d, err := subs.Delivered()
			if err != nil {
				return err
			}
			if d != last {
				last, quietSince = d, time.Now()
			}
			delivered = d
			settled := pr.UnconfirmedN == 0 || time.Since(quietSince) >= 500*time.Millisecond
			if (d >= pr.ExpectedN && settled) || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			sleep(ctx, 50*time.Millisecond)
		}
	}
	cpu1 := sampleAll(o.pids, pids)
	res.setCPU(cpu0, cpu1, delivered, "deliveries")
	prof.report(log)
	if subs != nil {
		snap, err := subs.Snapshot()
		if err != nil {
			return err
		}
		res.setDeliveries(pr, snap)
		if mode == "push-batch" {
			if err := res.batchCheck(); err != nil {
				return err
			}
		}
		st, err := subs.Stats()
		if err != nil {
			return err
		}
		res.setConns(st)
	}
	if o.verify > 0 && o.expire > 0 && mode != "all" {
		sample := make([]string, 0, o.verify)
		for i := 0; i < o.verify; i++ {
			sample = append(sample, keys[(i*len(keys))/o.verify])
		}
		sc, err := bench.CheckStored(ctx, o.httpAddr, sample, pr.Expected)
		res.Stored = sc
		if err != nil {
			return fmt.Errorf("checking stored messages: %w", err)
		}
	}
	return nil
}

// targets builds the subscriber list: subscriber i takes key i mod keys, at
// the comet that web names for that key (or -comet).
func (o *options) targets(ctx context.Context, log *slog.Logger) ([]bench.Target, error) {
	keys := make([]string, o.keys)
	for i := range keys {
		keys[i] = o.key(i)
	}
	var route map[string]string
	if o.comet == "" {
		t0 := time.Now()
		var err error
		route, err = bench.Route(ctx, o.httpAddr, o.proto, keys, o.parallel)
		if err != nil {
			return nil, fmt.Errorf("asking web which comet serves each key: %w", err)
		}
		log.Info("routed", "keys", len(keys), "seconds", fmt.Sprintf("%.1f", time.Since(t0).Seconds()))
	}
	out := make([]bench.Target, o.n)
	for i := range out {
		k := keys[i%o.keys]
		addr := o.comet
		if addr == "" {
			addr = route[k]
		}
		out[i] = bench.Target{Key: k, Addr: addr}
	}
	return out, nil
}

// onlineFunc returns key → connections holding it, from the subscriber
// layout less the connections that failed or dropped.
func (o *options) onlineFunc(subs holder) func(string) int {
	if subs == nil || o.n == 0 {
		return func(string) int { return 0 }
	}
	counts := make(map[string]int, o.keys)
	for i := 0; i < o.n; i++ {
		counts[o.key(i%o.keys)]++
	}
	if st, err := subs.Stats(); err == nil {
		for _, d := range st.Dead {
			counts[o.key(d%o.keys)]--
		}
	}
	return func(k string) int { return counts[k] }
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// procSample is one reading of one measured process.
type procSample struct {
	Pid int
	bench.ProcSample
	Err error
}

// sampleAll reads every -pid process, plus this tool ("bench": this
// process and its children) for comparison.
func sampleAll(pids pidFlag, children []int) map[string]procSample {
	out := make(map[string]procSample, len(pids)+1)
	for _, p := range pids {
		s, err := bench.ReadProc(p.Pid)
		out[p.Name] = procSample{Pid: p.Pid, ProcSample: s, Err: err}
	}
	self, err := bench.ReadProc(os.Getpid())
	for _, c := range children {
		if s, cerr := bench.ReadProc(c); cerr == nil {
			self.CPUSec += s.CPUSec
			self.RSSKB += s.RSSKB
		}
	}
	out["bench"] = procSample{Pid: os.Getpid(), ProcSample: self, Err: err}
	return out
}
