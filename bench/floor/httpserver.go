package floor

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// HTTPServer serves a handler on one address until Close.
type HTTPServer struct {
	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup
}

// ServeHTTP listens on addr and serves h.
func ServeHTTP(addr string, h http.Handler, log *slog.Logger) (*HTTPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &HTTPServer{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http", "addr", addr, "err", err)
		}
	}()
	return s, nil
}

// Addr is the address served.
func (s *HTTPServer) Addr() string { return s.ln.Addr().String() }

// Close stops the server, letting requests in progress finish for up to
// five seconds.
func (s *HTTPServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		s.srv.Close()
	}
	s.wg.Wait()
}
