package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopush/conf"
)

type fakeCfg struct{ log conf.Log }

type fakeDaemon struct {
	closed   chan struct{}
	deadline bool
}

func (f *fakeDaemon) Close(ctx context.Context) error {
	_, f.deadline = ctx.Deadline()
	close(f.closed)
	return errors.New("one call still running")
}

// program returns a Program whose Load fails on the path "bad" and whose
// Start fails when startErr is set; started receives the daemon it starts.
func program(startErr error, started chan<- *fakeDaemon) Program[*fakeCfg] {
	return Program[*fakeCfg]{
		Name: "fake",
		Load: func(path string) (*fakeCfg, error) {
			if path == "bad" {
				return nil, errors.New("bad: key x.y: not a number")
			}
			return &fakeCfg{log: conf.Log{Level: "info"}}, nil
		},
		Log: func(c *fakeCfg) conf.Log { return c.log },
		Start: func(ctx context.Context, _ *fakeCfg, _ *slog.Logger) (Stopper, error) {
			if _, ok := ctx.Deadline(); !ok {
				return nil, errors.New("start-up has no deadline")
			}
			if startErr != nil {
				return nil, startErr
			}
			d := &fakeDaemon{closed: make(chan struct{})}
			started <- d
			return d, nil
		},
	}
}

// A bad command line or configuration is status 2 with one line naming the
// daemon; the daemon is not started.
func TestRunRefusesBadUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-c", "bad"}, {"extra"}, {"-x"}} {
		var stderr bytes.Buffer
		code := program(nil, nil).Run(context.Background(), args, &stderr)
		if code != ExitUsage {
			t.Errorf("%q: status %d, want %d", args, code, ExitUsage)
		}
		if args[0] == "-c" {
			out := strings.TrimRight(stderr.String(), "\n")
			if strings.Contains(out, "\n") || !strings.HasPrefix(out, "fake: ") || !strings.Contains(out, "x.y") {
				t.Errorf("stderr %q, want one line naming the daemon and the key", out)
			}
		}
	}
}

// A daemon that cannot start is status 1, with the reason logged.
func TestRunStartFailureIsStatus1(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	code := program(errors.New("listen tcp :1: address in use"), nil).Run(context.Background(), nil, &stderr)
	if code != ExitFailed {
		t.Fatalf("status %d, want %d", code, ExitFailed)
	}
	if !strings.Contains(stderr.String(), "address in use") {
		t.Errorf("stderr %q does not say why", stderr.String())
	}
}

// A started daemon runs until asked to stop, is then closed with a bounded
// context, and the process ends with status 0 even when the shutdown was
// not clean (that is logged).
func TestRunStopsOnContextAndSignal(t *testing.T) {
	t.Parallel()
	t.Run("context", func(t *testing.T) {
		started := make(chan *fakeDaemon, 1)
		ctx, cancel := context.WithCancel(context.Background())
		var stderr bytes.Buffer
		done := make(chan int, 1)
		go func() { done <- program(nil, started).Run(ctx, []string{"-c", "ok"}, &stderr) }()
		d := <-started
		select {
		case <-d.closed:
			t.Fatal("closed before being asked to stop")
		case <-time.After(50 * time.Millisecond):
		}
		cancel()
		if code := <-done; code != ExitOK {
			t.Fatalf("status %d, want 0", code)
		}
		if !d.deadline {
			t.Error("Close got a context without a deadline")
		}
		if !strings.Contains(stderr.String(), "one call still running") {
			t.Errorf("the unclean shutdown is not logged: %q", stderr.String())
		}
	})
	t.Run("SIGTERM", func(t *testing.T) {
		started := make(chan *fakeDaemon, 1)
		done := make(chan int, 1)
		go func() { done <- program(nil, started).Run(context.Background(), nil, &bytes.Buffer{}) }()
		d := <-started
		// Run listens for the signal before starting, so it reaches Run
		// rather than killing the test binary.
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case code := <-done:
			if code != ExitOK {
				t.Fatalf("status %d, want 0", code)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run still running 30 s after SIGTERM")
		}
		<-d.closed
	})
}
