// Package daemon holds what the three gopush daemons (comet, web, message)
// do the same way around their own work: the command line, loading the
// configuration, the logger, waiting for SIGTERM or SIGINT, a shutdown
// bounded in time, and the exit status; and serving net/http/pprof.
package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gopush/conf"
	"gopush/internal/connlimit"
)

// Exit statuses of a daemon.
const (
	ExitOK     = 0 // stopped by a signal
	ExitFailed = 1 // could not start (a port in use, ZooKeeper unreachable, ...)
	ExitUsage  = 2 // bad command line or configuration
)

// Default bounds of Program.StartWait and Program.StopWait.
const (
	DefaultStartWait = time.Minute
	DefaultStopWait  = 10 * time.Second
)

// Stopper is a started daemon: Close stops it, giving work in flight until
// ctx ends.
type Stopper interface {
	Close(ctx context.Context) error
}

// Program describes one daemon's command:
//
//	name [-c file.toml]
type Program[C any] struct {
	Name string
	// Load reads and validates the configuration file ("" means defaults
	// only). Its error is printed as one line.
	Load func(path string) (C, error)
	// Log returns the logging settings of a loaded configuration.
	Log func(cfg C) conf.Log
	// Start starts the daemon; ctx bounds the start-up only. On error it
	// must have released what it took; the Stopper is then ignored.
	Start func(ctx context.Context, cfg C, log *slog.Logger) (Stopper, error)
	// StartWait bounds the start-up (DefaultStartWait when 0); StopWait
	// bounds the shutdown after a signal (DefaultStopWait when 0).
	StartWait, StopWait time.Duration
}

// Main runs the program with the process's arguments and exits with its
// status.
func (p Program[C]) Main() {
	os.Exit(p.Run(context.Background(), os.Args[1:], os.Stderr))
}

// Run runs the program until SIGTERM or SIGINT, or until ctx ends, and
// returns the exit status: ExitUsage for a bad command line or
// configuration (one line on stderr), ExitFailed when the daemon cannot
// start, ExitOK after a shutdown that was asked for (what went wrong during
// it is logged, not turned into a status).
func (p Program[C]) Run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "configuration file (TOML); empty: defaults only")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", p.Name, fs.Arg(0))
		return ExitUsage
	}
	cfg, err := p.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return ExitUsage
	}
	log := p.Log(cfg).NewLogger(stderr)
	// Client connections are capped below the open-file limit (a reserve
	// stays for admin, RPC, ZooKeeper and storage), so use all of it.
	if n, err := connlimit.RaiseFileLimit(); err != nil {
		log.Warn("cannot raise the open-file limit", "err", err, "limit", n)
	} else {
		log.Info("open-file limit", "limit", n)
	}

	// Listen for signals before starting, so that one sent while the
	// daemon starts is not lost (nor kills it half started).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	startCtx, cancel := context.WithTimeout(ctx, orDefault(p.StartWait, DefaultStartWait))
	d, err := p.Start(startCtx, cfg, log)
	cancel()
	if err != nil {
		log.Error(p.Name+" failed to start", "err", err)
		return ExitFailed
	}
	select {
	case s := <-sigs:
		log.Info("signal received; shutting down", "signal", s.String())
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx).Error())
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), orDefault(p.StopWait, DefaultStopWait))
	defer cancel()
	if err := d.Close(stopCtx); err != nil {
		log.Warn("shutdown was not clean", "err", err)
	}
	return ExitOK
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
