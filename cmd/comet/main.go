// Command comet runs the gopush comet daemon: it holds subscribers' TCP and
// WebSocket connections and delivers the messages web pushes to them.
//
//	comet -c comet.toml
//
// A configuration error is printed as one line and exits with status 2; a
// failure to start (a port in use, ZooKeeper unreachable) exits with 1.
// SIGTERM or SIGINT leaves ZooKeeper first, then closes the connections and
// exits 0.
package main

import (
	"context"
	"log/slog"

	"gopush/comet"
	"gopush/conf"
	"gopush/internal/daemon"
)

func main() {
	daemon.Program[*conf.Comet]{
		Name: "comet",
		Load: conf.LoadComet,
		Log:  func(cfg *conf.Comet) conf.Log { return cfg.Log },
		// A bad certificate is reported like a bad file: one line, exit 2.
		Check: func(cfg *conf.Comet) error {
			if !cfg.ServesTLS() {
				return nil
			}
			_, err := cfg.TLS.Load()
			return err
		},
		Start: func(_ context.Context, cfg *conf.Comet, log *slog.Logger) (daemon.Stopper, error) {
			c := comet.New(cfg, log)
			return c, c.Start()
		},
	}.Main()
}
