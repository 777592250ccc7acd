package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// addrFlag collects -pprof name=host:port.
type addrFlag []namedAddr

type namedAddr struct{ Name, Addr string }

func (a *addrFlag) String() string { return fmt.Sprint(*a) }

func (a *addrFlag) Set(v string) error {
	name, addr, ok := strings.Cut(v, "=")
	if !ok || name == "" || addr == "" {
		return errors.New("want name=host:port")
	}
	if err := loopbackOnly(addr); err != nil {
		return err
	}
	*a = append(*a, namedAddr{name, addr})
	return nil
}

// profiler fetches CPU profiles from the daemons' pprof listeners while a
// measured phase runs.
type profiler struct {
	targets addrFlag
	dir     string
	prefix  string
	wg      sync.WaitGroup
	errs    []error
	mu      sync.Mutex
}

// start asks every target for a CPU profile of d (whole seconds, at least
// 1) and writes each to dir/<prefix>-<name>.pprof when it arrives.
func (p *profiler) start(ctx context.Context, d time.Duration) {
	secs := int(d / time.Second)
	if secs < 1 {
		secs = 1
	}
	for _, t := range p.targets {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := p.fetch(ctx, t, secs); err != nil {
				p.mu.Lock()
				p.errs = append(p.errs, fmt.Errorf("profile of %s: %w", t.Name, err))
				p.mu.Unlock()
			}
		}()
	}
}

func (p *profiler) fetch(ctx context.Context, t namedAddr, secs int) error {
	u := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.Addr, secs)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	path := filepath.Join(p.dir, p.prefix+"-"+t.Name+".pprof")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// wait waits for the profiles and returns what failed.
func (p *profiler) wait() error {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

// report waits for the profiles and logs the ones that failed.
func (p *profiler) report(log *slog.Logger) {
	if len(p.targets) == 0 {
		return
	}
	if err := p.wait(); err != nil {
		log.Warn("profiles", "err", err)
		return
	}
	log.Info("profiles written", "dir", p.dir, "prefix", p.prefix)
}
