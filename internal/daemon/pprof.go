package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"
)

// Pprof serves net/http/pprof's profiles (under /debug/pprof/) on the
// addresses of a daemon's pprof.bind setting, and nothing else.
type Pprof struct {
	srv *http.Server
	lns []net.Listener
	wg  sync.WaitGroup // serve loops
}

// ServePprof listens on every address of binds and serves the profiles
// there until Close. With no address it serves nothing (Close is still
// fine). If one address cannot be listened on, none is kept and the error
// names it. No write timeout: a CPU profile or trace takes as long as the
// caller asks.
func ServePprof(binds []string, log *slog.Logger) (*Pprof, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &Pprof{srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	for _, b := range binds {
		ln, err := net.Listen("tcp", b)
		if err != nil {
			for _, l := range p.lns {
				l.Close()
			}
			return nil, fmt.Errorf("pprof.bind %s: %w", b, err)
		}
		p.lns = append(p.lns, ln)
	}
	for _, ln := range p.lns {
		log.Info("pprof listening", "addr", ln.Addr().String())
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn("pprof server stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	return p, nil
}

// Addrs returns the addresses listened on (useful with port 0).
func (p *Pprof) Addrs() []string {
	if p == nil {
		return nil
	}
	out := make([]string, 0, len(p.lns))
	for _, ln := range p.lns {
		out = append(out, ln.Addr().String())
	}
	return out
}

// Close stops listening, lets requests in flight (a CPU profile) finish
// until ctx ends, then cuts them, and returns once every serve loop has
// ended. It is safe on a nil *Pprof and more than once.
func (p *Pprof) Close(ctx context.Context) error {
	if p == nil {
		return nil
	}
	err := p.srv.Shutdown(ctx)
	if err != nil {
		p.srv.Close()
		err = fmt.Errorf("pprof shutdown: %w", err)
	}
	p.wg.Wait()
	return err
}
