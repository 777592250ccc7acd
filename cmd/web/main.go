// Command web runs the gopush web daemon: the public HTTP API (which comet
// serves a key, offline messages, time) and the admin HTTP API that
// backends push through.
//
//	web -c web.toml
//
// A configuration error is printed as one line and exits with status 2.
// SIGTERM or SIGINT stops it gracefully (exit 0).
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
	"gopush/web"
)

// shutdownWait bounds how long in-flight requests may run after a signal.
const shutdownWait = 10 * time.Second

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	path := fs.String("c", "", "configuration file (TOML); empty: defaults only")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "web: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := conf.LoadWeb(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "web: %v\n", err)
		return 2
	}
	log := cfg.Log.NewLogger(os.Stderr)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	w := web.New(cfg, log)
	if err := w.Start(); err != nil {
		log.Error("web failed to start", "err", err)
		return 1
	}
	s := <-sigs
	log.Info("signal received; shutting down", "signal", s.String())
	ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		log.Warn("shutdown was not clean", "err", err)
	}
	return 0
}
