package message

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

// pprofServer serves net/http/pprof on pprof.bind (off when empty).
type pprofServer struct {
	srv *http.Server
	wg  sync.WaitGroup
}

func startPprof(binds []string, log *slog.Logger) (*pprofServer, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &pprofServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	var lns []net.Listener
	for _, b := range binds {
		ln, err := net.Listen("tcp", b)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("pprof.bind %s: %w", b, err)
		}
		lns = append(lns, ln)
	}
	for _, ln := range lns {
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

func (p *pprofServer) close(ctx context.Context) {
	if err := p.srv.Shutdown(ctx); err != nil {
		p.srv.Close()
	}
	p.wg.Wait()
}
