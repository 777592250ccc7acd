// Package observe is what the three daemons share to be watched: a
// Prometheus registry with the Go runtime and process collectors, and the
// HTTP listener of a daemon's metrics.bind that serves /metrics, /healthz
// and /readyz (docs/observability.md).
//
// Each daemon builds its own registry and its own metrics struct; nothing
// here is global.
package observe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every gopush metric.
const Namespace = "gopush"

// NewRegistry returns an empty registry holding the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Check is one line of a readiness answer: what was checked, whether it is
// fine and, when not, why. A failing check marked Degraded means the daemon
// still serves part of its work (a message node with one shard down).
type Check struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Degraded bool   `json:"degraded,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// ReadyFunc runs a daemon's readiness checks. It must return before ctx
// ends.
type ReadyFunc func(ctx context.Context) []Check

// Readiness answers of /readyz.
const (
	StatusReady    = "ready"
	StatusNotReady = "not ready"
	StatusDegraded = "degraded"
	StatusStopping = "stopping"
)

// readyTimeout bounds one /readyz answer.
const readyTimeout = 2 * time.Second

// Server serves /metrics, /healthz and /readyz on every address of a
// metrics.bind setting. Any other path is 404.
type Server struct {
	srv      *http.Server
	lns      []net.Listener
	wg       sync.WaitGroup
	stopping atomic.Bool
	ready    ReadyFunc
}

// Serve listens on every address of binds and serves there until Close.
// With no address it serves nothing (Close is still fine; a nil *Server
// too). If one address cannot be listened on, none is kept.
func Serve(binds []string, reg *prometheus.Registry, ready ReadyFunc, log *slog.Logger) (*Server, error) {
	s := &Server{ready: ready}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	for _, b := range binds {
		ln, err := net.Listen("tcp", b)
		if err != nil {
			for _, l := range s.lns {
				l.Close()
			}
			return nil, fmt.Errorf("metrics.bind %s: %w", b, err)
		}
		s.lns = append(s.lns, ln)
	}
	for _, ln := range s.lns {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	return s, nil
}

// readyAnswer is the JSON of /readyz.
type readyAnswer struct {
	Status string  `json:"status"`
	Checks []Check `json:"checks"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.stopping.Load() {
		writeJSON(w, http.StatusServiceUnavailable, readyAnswer{Status: StatusStopping,
			Checks: []Check{{Name: "shutdown", Detail: "the daemon is shutting down"}}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	var checks []Check
	if s.ready != nil {
		checks = s.ready(ctx)
	}
	ans := readyAnswer{Status: StatusReady, Checks: checks}
	if ans.Checks == nil {
		ans.Checks = []Check{}
	}
	degraded, failed := false, false
	for _, c := range checks {
		if !c.OK {
			if c.Degraded {
				degraded = true
			} else {
				failed = true
			}
		}
	}
	status := http.StatusOK
	switch {
	case failed:
		ans.Status, status = StatusNotReady, http.StatusServiceUnavailable
	case degraded:
		ans.Status, status = StatusDegraded, http.StatusServiceUnavailable
	}
	writeJSON(w, status, ans)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// Addrs returns the listen addresses (useful with port 0).
func (s *Server) Addrs() []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr().String()
	}
	return out
}

// Stopping makes /readyz answer 503 "stopping" from now on, while /metrics
// and /healthz go on answering: a daemon calls it first in its shutdown and
// Close last.
func (s *Server) Stopping() {
	if s != nil {
		s.stopping.Store(true)
	}
}

// Close stops serving, letting answers in flight finish until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.stopping.Store(true)
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	for _, ln := range s.lns {
		ln.Close() // Serve not reached yet
	}
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}
