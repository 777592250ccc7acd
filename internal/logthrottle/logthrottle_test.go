package logthrottle

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLogger(burst int, window time.Duration) (*slog.Logger, *bytes.Buffer, *clock) {
	var buf bytes.Buffer
	clk := &clock{t: time.Unix(0, 0)}
	h := New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), burst, window).(*Handler)
	h.s.now = clk.now
	return slog.New(h), &buf, clk
}

func TestRepeatedLinesAreSuppressedAndCounted(t *testing.T) {
	log, buf, clk := newLogger(3, 10*time.Second)
	for i := range 600 {
		log.Warn("push failed", "i", i)
	}
	log.Info("other message") // has its own budget
	if n := strings.Count(buf.String(), "push failed"); n != 3 {
		t.Fatalf("%d push-failed lines in a window, want 3:\n%s", n, buf)
	}
	clk.add(10 * time.Second)
	buf.Reset()
	log.Warn("push failed", "i", 600)
	if !strings.Contains(buf.String(), "suppressed=597") {
		t.Fatalf("the first line after the window does not carry the count: %q", buf)
	}
	buf.Reset()
	log.Warn("push failed", "i", 601)
	if strings.Contains(buf.String(), "suppressed") {
		t.Fatalf("the count was carried twice: %q", buf)
	}
}

func TestLevelsAndDerivedLoggersShareTheLimit(t *testing.T) {
	log, buf, _ := newLogger(1, time.Minute)
	log.With("rpc", "CometRPC").Warn("refused")
	log.Warn("refused")
	log.Error("refused") // another level: another line
	if got := strings.Count(buf.String(), "msg=refused"); got != 2 {
		t.Fatalf("%d lines, want 2:\n%s", got, buf)
	}
}

func TestZeroBurstTurnsItOff(t *testing.T) {
	next := slog.NewTextHandler(&bytes.Buffer{}, nil)
	if New(next, 0, time.Second) != slog.Handler(next) {
		t.Fatal("burst 0 still wraps")
	}
}
