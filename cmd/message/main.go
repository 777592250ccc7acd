// Command message is gopush's offline-message daemon: it serves MessageRPC
// and stores private messages in sharded Redis or MySQL.
//
//	message -c message.toml
//
// A bad configuration prints one line to stderr and exits with status 2; a
// failure to start exits with 1. SIGTERM or SIGINT shuts it down cleanly
// (status 0).
package main

import (
	"context"
	"log/slog"
	"time"

	"gopush/conf"
	"gopush/internal/daemon"
	"gopush/message"
)

func main() {
	daemon.Program[*conf.Message]{
		Name: "message",
		Load: conf.LoadMessage,
		Log:  func(cfg *conf.Message) conf.Log { return cfg.Log },
		Start: func(ctx context.Context, cfg *conf.Message, log *slog.Logger) (daemon.Stopper, error) {
			return message.Start(ctx, cfg, log)
		},
		StopWait: 20 * time.Second, // calls in flight may wait on a slow shard
	}.Main()
}
