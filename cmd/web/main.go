// Command web runs the gopush web daemon: the public HTTP API (which comet
// serves a key, offline messages, time) and the admin HTTP API that
// backends push through.
//
//	web -c web.toml
//
// A configuration error is printed as one line and exits with status 2; a
// failure to start exits with 1. SIGTERM or SIGINT stops it gracefully
// (exit 0).
package main

import (
	"context"
	"log/slog"

	"gopush/conf"
	"gopush/internal/daemon"
	"gopush/web"
)

func main() {
	daemon.Program[*conf.Web]{
		Name: "web",
		Load: conf.LoadWeb,
		Log:  func(cfg *conf.Web) conf.Log { return cfg.Log },
		// A bad certificate is reported like a bad file: one line, exit 2.
		Check: func(cfg *conf.Web) error {
			if !cfg.ServesTLS() {
				return nil
			}
			_, err := cfg.TLS.Load()
			return err
		},
		Start: func(_ context.Context, cfg *conf.Web, log *slog.Logger) (daemon.Stopper, error) {
			w := web.New(cfg, log)
			return w, w.Start()
		},
	}.Main()
}
