// Command message is gopush's offline-message daemon: it serves MessageRPC
// and stores private messages in sharded Redis or MySQL.
//
//	message -c message.toml
//
// A bad configuration prints one line to stderr and exits with status 2.
// SIGTERM or SIGINT shuts it down cleanly (status 0).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gopush/conf"
	"gopush/message"
)

func main() {
	path := flag.String("c", "", "configuration file (TOML); empty: defaults")
	flag.Parse()

	cfg, err := conf.LoadMessage(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "message:", err)
		os.Exit(2)
	}
	log := cfg.Log.NewLogger(os.Stderr)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	d, err := message.Start(ctx, cfg, log)
	cancel()
	if err != nil {
		log.Error("message: start failed", "err", err)
		os.Exit(1)
	}

	sig := <-sigs
	log.Info("shutting down", "signal", sig.String())
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A shutdown that was asked for ends with status 0; what went wrong
	// on the way (ZooKeeper unreachable, calls still running at the
	// deadline) is logged.
	if err := d.Close(ctx); err != nil {
		log.Error("shutdown was not clean", "err", err)
	}
	log.Info("stopped")
}
