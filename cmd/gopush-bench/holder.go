package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"gopush/bench"
	"gopush/client"
)

// holder holds subscriber connections, in this process or in children.
type holder interface {
	Connect(ctx context.Context, targets []bench.Target) error
	Stats() (bench.PoolStats, error)
	Delivered() (uint64, error)
	Snapshot() (*bench.Snapshot, error)
	Reset() error // forget the deliveries recorded so far
	Pids() []int
	Close()
}

// localHolder keeps the connections in this process.
type localHolder struct {
	pool    *bench.Pool
	tracker *bench.Tracker
}

func newLocalHolder(cfg bench.SubConfig) *localHolder {
	t := bench.NewTracker()
	return &localHolder{pool: bench.NewPool(cfg, t), tracker: t}
}

func (h *localHolder) Connect(ctx context.Context, targets []bench.Target) error {
	// Heartbeats start before connecting: with thousands of connections
	// the connect phase lasts seconds, and the first ones must not wait
	// for the last before their first heartbeat.
	h.pool.Start()
	h.pool.Connect(ctx, targets)
	return nil
}
func (h *localHolder) Stats() (bench.PoolStats, error)    { return h.pool.Stats(), nil }
func (h *localHolder) Delivered() (uint64, error)         { return h.tracker.Delivered(), nil }
func (h *localHolder) Snapshot() (*bench.Snapshot, error) { return h.tracker.Snapshot(), nil }
func (h *localHolder) Pids() []int                        { return nil }
func (h *localHolder) Reset() error                       { h.tracker.Reset(); return nil }
func (h *localHolder) Close()                             { h.pool.Close() }

// The child protocol: the parent writes one JSON request per line on the
// child's stdin, the child answers one JSON line on its stdout. EOF on
// stdin closes the connections and ends the child.
type childRequest struct {
	Cmd     string         `json:"cmd"` // connect, stats, delivered, snapshot, reset
	Base    int            `json:"base,omitempty"`
	Targets []bench.Target `json:"targets,omitempty"`
}

type childAnswer struct {
	Err       string           `json:"err,omitempty"`
	Stats     *bench.PoolStats `json:"stats,omitempty"`
	Delivered uint64           `json:"delivered"`
	Snap      *bench.Snapshot  `json:"snap,omitempty"`
}

func subConfig(o options) (bench.SubConfig, error) {
	cfg := bench.SubConfig{
		Proto:       o.proto,
		Heartbeat:   o.heartbeat,
		Version:     o.version,
		SourceAddrs: o.src,
		Parallel:    o.parallel,
	}
	if o.caFile != "" {
		tc, err := client.RootCAs(o.caFile)
		if err != nil {
			return cfg, err
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

// runChild serves the child protocol on stdin/stdout.
func runChild(o options) error {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := json.NewEncoder(os.Stdout)
	var h *localHolder
	defer func() {
		if h != nil {
			h.Close()
		}
	}()
	dec := json.NewDecoder(in)
	for {
		var req childRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading request: %w", err)
		}
		var ans childAnswer
		switch req.Cmd {
		case "connect":
			if h != nil {
				ans.Err = "already connected"
				break
			}
			cfg, err := subConfig(o)
			if err != nil {
				ans.Err = err.Error()
				break
			}
			cfg.IndexBase = req.Base
			h = newLocalHolder(cfg)
			h.Connect(context.Background(), req.Targets)
			st := h.pool.Stats()
			ans.Stats = &st
		case "stats", "delivered", "snapshot", "reset":
			if h == nil {
				ans.Err = "not connected"
				break
			}
			st := h.pool.Stats()
			ans.Stats = &st
			ans.Delivered = h.tracker.Delivered()
			switch req.Cmd {
			case "snapshot":
				ans.Snap = h.tracker.Snapshot()
			case "reset":
				h.tracker.Reset()
			}
		default:
			ans.Err = "unknown command " + strconv.Quote(req.Cmd)
		}
		if err := out.Encode(&ans); err != nil {
			return err
		}
	}
}

// childHolder spreads the connections over child processes.
type childHolder struct {
	children []*child
}

type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	enc *json.Encoder
	dec *json.Decoder
	mu  sync.Mutex
}

func (c *child) call(req childRequest) (*childAnswer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enc.Encode(&req); err != nil {
		return nil, fmt.Errorf("child %d: %w", c.cmd.Process.Pid, err)
	}
	var ans childAnswer
	if err := c.dec.Decode(&ans); err != nil {
		return nil, fmt.Errorf("child %d: %w", c.cmd.Process.Pid, err)
	}
	if ans.Err != "" {
		return nil, fmt.Errorf("child %d: %s", c.cmd.Process.Pid, ans.Err)
	}
	return &ans, nil
}

func newChildHolder(o options, procs int) (*childHolder, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	h := &childHolder{}
	for i := 0; i < procs; i++ {
		cmd := exec.Command(exe, "-child",
			"-proto", o.proto,
			"-ca", o.caFile,
			"-heartbeat", strconv.Itoa(o.heartbeat),
			"-ver", o.version,
			"-src", strconv.Itoa(o.src),
			"-parallel", strconv.Itoa(o.parallel))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			h.Close()
			return nil, err
		}
		outp, err := cmd.StdoutPipe()
		if err != nil {
			h.Close()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			h.Close()
			return nil, err
		}
		h.children = append(h.children, &child{
			cmd: cmd, in: in,
			enc: json.NewEncoder(in),
			dec: json.NewDecoder(bufio.NewReaderSize(outp, 1<<20)),
		})
	}
	return h, nil
}

// each calls f on every child at once and returns the first error.
func (h *childHolder) each(f func(i int, c *child) error) error {
	errs := make([]error, len(h.children))
	var wg sync.WaitGroup
	for i, c := range h.children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, c)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (h *childHolder) Connect(ctx context.Context, targets []bench.Target) error {
	n := len(h.children)
	return h.each(func(i int, c *child) error {
		lo, hi := i*len(targets)/n, (i+1)*len(targets)/n
		_, err := c.call(childRequest{Cmd: "connect", Base: lo, Targets: targets[lo:hi]})
		return err
	})
}

func (h *childHolder) Stats() (bench.PoolStats, error) {
	all := make([]bench.PoolStats, len(h.children))
	err := h.each(func(i int, c *child) error {
		a, err := c.call(childRequest{Cmd: "stats"})
		if err == nil {
			all[i] = *a.Stats
		}
		return err
	})
	return mergeStats(all), err
}

func mergeStats(all []bench.PoolStats) bench.PoolStats {
	out := bench.PoolStats{Failed: map[string]int{}}
	for _, s := range all {
		out.Connected += s.Connected
		out.Dropped += s.Dropped
		out.Heartbeats += s.Heartbeats
		out.Dead = append(out.Dead, s.Dead...)
		for k, v := range s.Failed {
			out.Failed[k] += v
		}
		if out.FirstDrop == "" {
			out.FirstDrop = s.FirstDrop
		}
	}
	return out
}

func (h *childHolder) Delivered() (uint64, error) {
	var mu sync.Mutex
	var total uint64
	err := h.each(func(i int, c *child) error {
		a, err := c.call(childRequest{Cmd: "delivered"})
		if err == nil {
			mu.Lock()
			total += a.Delivered
			mu.Unlock()
		}
		return err
	})
	return total, err
}

func (h *childHolder) Snapshot() (*bench.Snapshot, error) {
	var mu sync.Mutex
	out := &bench.Snapshot{}
	err := h.each(func(i int, c *child) error {
		a, err := c.call(childRequest{Cmd: "snapshot"})
		if err == nil && a.Snap != nil {
			mu.Lock()
			out.Merge(a.Snap)
			mu.Unlock()
		}
		return err
	})
	return out, err
}

func (h *childHolder) Reset() error {
	return h.each(func(i int, c *child) error {
		_, err := c.call(childRequest{Cmd: "reset"})
		return err
	})
}

func (h *childHolder) Pids() []int {
	var pids []int
	for _, c := range h.children {
		pids = append(pids, c.cmd.Process.Pid)
	}
	return pids
}

// Close ends every child: EOF on stdin makes it close its connections
// and exit.
func (h *childHolder) Close() {
	for _, c := range h.children {
		c.in.Close()
	}
	for _, c := range h.children {
		done := make(chan struct{})
		go func() {
			c.cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
	}
}
