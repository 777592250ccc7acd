// Package daemon holds what the three gopush daemons (comet, web, message)
// do the same way around their own work: the command line, loading the
// configuration, the logger, waiting for SIGTERM or SIGINT, reloading on
// SIGHUP, a shutdown bounded in time, and the exit status; and serving
// net/http/pprof.
package daemon

import (
	"context"
	"errors"
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

// Reloader is a started daemon that can take something new without a
// restart: on SIGHUP, Run calls Reload (comet and web read their
// certificate files again). An error is logged; the daemon keeps running
// with what it had.
type Reloader interface {
	Reload() error
}

// UsageError marks an error of Start that is the configuration's fault (a
// certificate file missing, expired, not matching its key): Run prints it
// as one line and exits with ExitUsage, like a bad configuration file.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usage wraps err as a *UsageError (nil stays nil).
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return &UsageError{Err: err}
}

// Program describes one daemon's command:
//
//	name [-c file.toml]
type Program[C any] struct {
	Name string
	// Load reads and validates the configuration file ("" means defaults
	// only). Its error is printed as one line.
	Load func(path string) (C, error)
	// Check, when set, checks what the loaded configuration names outside
	// itself (certificate files) before anything starts or logs; its
	// error too is one line and ExitUsage. Load is also used on SIGHUP,
	// Check only at start.
	Check func(cfg C) error
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
//
// SIGHUP never stops the daemon: Run reads the configuration file again,
// applies its log.level, and calls the daemon's Reload when it is a
// Reloader.
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
	if p.Check != nil {
		if err := p.Check(cfg); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
			return ExitUsage
		}
	}
	level := new(slog.LevelVar)
	level.Set(p.Log(cfg).SlogLevel())
	log := p.Log(cfg).NewLoggerLevel(stderr, level)
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
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	startCtx, cancel := context.WithTimeout(ctx, orDefault(p.StartWait, DefaultStartWait))
	d, err := p.Start(startCtx, cfg, log)
	cancel()
	if err != nil {
		var usage *UsageError
		if errors.As(err, &usage) {
			fmt.Fprintf(stderr, "%s: %v\n", p.Name, usage.Err)
			return ExitUsage
		}
		log.Error(p.Name+" failed to start", "err", err)
		return ExitFailed
	}
wait:
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				p.reload(*path, d, level, log)
				continue
			}
			log.Info("signal received; shutting down", "signal", s.String())
			break wait
		case <-ctx.Done():
			log.Info("shutting down", "reason", context.Cause(ctx).Error())
			break wait
		}
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), orDefault(p.StopWait, DefaultStopWait))
	defer cancel()
	if err := d.Close(stopCtx); err != nil {
		log.Warn("shutdown was not clean", "err", err)
	}
	return ExitOK
}

// reload handles one SIGHUP: the configuration file is read again for
// log.level, then the daemon reloads what it can.
func (p Program[C]) reload(path string, d Stopper, level *slog.LevelVar, log *slog.Logger) {
	cfg, err := p.Load(path)
	if err != nil {
		log.Error("SIGHUP: configuration file not reloaded; keeping the running log level", "err", err)
	} else {
		level.Set(p.Log(cfg).SlogLevel())
	}
	r, ok := d.(Reloader)
	if !ok {
		log.Info("SIGHUP: reloaded", "log_level", level.Level().String())
		return
	}
	if err := r.Reload(); err != nil {
		log.Error("SIGHUP: reload refused; still serving what was loaded before", "err", err)
		return
	}
	log.Info("SIGHUP: reloaded", "log_level", level.Level().String())
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
