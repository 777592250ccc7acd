package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
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

type reloadDaemon struct {
	fakeDaemon
	reloads chan error // what the next Reload returns
}

func (r *reloadDaemon) Reload() error { return <-r.reloads }

// A Start error marked as the configuration's fault (a certificate file that
// went bad after Check) is status 2 and one plain line, like a bad file.
func TestRunStartUsageErrorIsStatus2(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	code := program(Usage(errors.New("tls.cert: /etc/x.pem: no such file")), nil).Run(context.Background(), nil, &stderr)
	if code != ExitUsage {
		t.Fatalf("status %d, want %d", code, ExitUsage)
	}
	// Start runs after the logger exists (its start-up lines may come
	// first); the refusal itself is one plain line, not a logged error.
	if out := stderr.String(); !strings.HasSuffix(out, "fake: tls.cert: /etc/x.pem: no such file\n") || strings.Contains(out, "failed to start") {
		t.Fatalf("stderr %q, want it to end with one line naming the file", out)
	}
}

// SIGHUP never stops a daemon: each one calls Reload, a refused reload is
// logged, and log.level is read again from the file. (Not parallel: the
// signal reaches every Run of the test binary.)
func TestRunReloadsOnSIGHUP(t *testing.T) {
	var level atomic.Value
	level.Store("info")
	started := make(chan struct{})
	reloads := make(chan error)
	d := &reloadDaemon{fakeDaemon: fakeDaemon{closed: make(chan struct{})}, reloads: reloads}
	p := Program[*fakeCfg]{
		Name: "fake",
		Load: func(string) (*fakeCfg, error) { return &fakeCfg{log: conf.Log{Level: level.Load().(string)}}, nil },
		Log:  func(c *fakeCfg) conf.Log { return c.log },
		Start: func(context.Context, *fakeCfg, *slog.Logger) (Stopper, error) {
			close(started)
			return d, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- p.Run(ctx, nil, out) }()
	<-started // Run listens for signals before it starts the daemon
	hup := func(result error) {
		t.Helper()
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case reloads <- result:
		case code := <-done:
			t.Fatalf("Run ended with %d on SIGHUP", code)
		case <-time.After(10 * time.Second):
			t.Fatal("Reload not called within 10 s of SIGHUP")
		}
	}
	level.Store("debug")
	hup(nil)
	hup(errors.New("tls.key: k.pem: private key does not match the certificate"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "reload refused") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case code := <-done:
		t.Fatalf("Run ended with %d after SIGHUP", code)
	case <-d.closed:
		t.Fatal("daemon closed on SIGHUP")
	default:
	}
	cancel()
	<-done
	log := out.String()
	for _, want := range []string{"SIGHUP: reloaded", "log_level=DEBUG", "reload refused", "does not match"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Check refuses a configuration before anything starts or logs: one line,
// status 2.
func TestRunCheckIsStatus2(t *testing.T) {
	t.Parallel()
	started := make(chan *fakeDaemon, 1)
	p := program(nil, started)
	p.Check = func(*fakeCfg) error {
		return errors.New("tls.cert: /etc/x.pem: certificate expired at 2026-01-01T00:00:00Z")
	}
	var stderr bytes.Buffer
	if code := p.Run(context.Background(), nil, &stderr); code != ExitUsage {
		t.Fatalf("status %d, want %d", code, ExitUsage)
	}
	if out := stderr.String(); out != "fake: tls.cert: /etc/x.pem: certificate expired at 2026-01-01T00:00:00Z\n" {
		t.Fatalf("stderr %q, want exactly one line", out)
	}
	select {
	case <-started:
		t.Fatal("started despite Check")
	default:
	}
}
