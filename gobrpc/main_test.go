package gobrpc

import (
	"gopush/internal/testenv"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Every goroutine the package starts has an owner that stops it: after all
// tests have closed what they opened, none may be left.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLog shows warnings and errors of the code under test in -v output.
func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, what, cond)
}
