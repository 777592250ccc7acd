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
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gopush/comet"
	"gopush/conf"
)

// shutdownWait bounds how long RPC calls in flight may run after a signal.
const shutdownWait = 10 * time.Second

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("comet", flag.ContinueOnError)
	path := fs.String("c", "", "configuration file (TOML); empty: defaults only")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "comet: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := conf.LoadComet(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "comet: %v\n", err)
		return 2
	}
	log := cfg.Log.NewLogger(os.Stderr)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	c := comet.New(cfg, log)
	if err := c.Start(); err != nil {
		log.Error("comet failed to start", "err", err)
		return 1
	}
	s := <-sigs
	log.Info("signal received; shutting down", "signal", s.String())
	ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		log.Warn("shutdown was not clean", "err", err)
	}
	return 0
}
