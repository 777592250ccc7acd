// Package logthrottle is a slog.Handler that rate-limits repeated log
// lines: of the lines with the same level and message, at most Burst are
// written per Window; the rest are dropped and counted, and the first line
// of that message written after the window carries the count as
// "suppressed". A flood of failures (a peer down, an attacker's refused
// connections) then costs a few lines per window instead of one per event.
package logthrottle

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxKeys bounds the messages tracked at once; messages are constant
// strings in gopush, so this is only a guard.
const maxKeys = 4096

type key struct {
	level slog.Level
	msg   string
}

type entry struct {
	start      time.Time
	written    int
	suppressed int
}

// state is shared by a Handler and those derived from it by WithAttrs and
// WithGroup, so that a message is limited however its logger was built.
type state struct {
	window time.Duration
	burst  int
	now    func() time.Time

	mu   sync.Mutex
	seen map[key]*entry
}

// Handler wraps another handler; see the package comment.
type Handler struct {
	next slog.Handler
	s    *state
}

// New wraps next. burst < 1 or window <= 0 disables the limit (next is
// returned as is).
func New(next slog.Handler, burst int, window time.Duration) slog.Handler {
	if burst < 1 || window <= 0 {
		return next
	}
	return &Handler{next: next, s: &state{window: window, burst: burst, now: time.Now, seen: make(map[key]*entry)}}
}

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(as), s: h.s}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), s: h.s}
}

// Handle writes r unless its message has used up its lines of the window.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	carry, ok := h.s.admit(key{r.Level, r.Message})
	if !ok {
		return nil
	}
	if carry > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", carry))
	}
	return h.next.Handle(ctx, r)
}

// admit counts one line of k; it reports whether to write it and how many
// lines of k were suppressed in the window before.
func (s *state) admit(k key) (carry int, ok bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.seen[k]
	if e == nil {
		if len(s.seen) >= maxKeys {
			s.forgetOld(now)
		}
		e = &entry{start: now}
		s.seen[k] = e
	}
	if now.Sub(e.start) >= s.window {
		carry = e.suppressed
		*e = entry{start: now}
	}
	if e.written >= s.burst {
		e.suppressed++
		return 0, false
	}
	e.written++
	return carry, true
}

// forgetOld drops entries whose window ended (their suppressed counts are
// lost; only reached with more than maxKeys distinct messages).
func (s *state) forgetOld(now time.Time) {
	for k, e := range s.seen {
		if now.Sub(e.start) >= s.window {
			delete(s.seen, k)
		}
	}
	if len(s.seen) >= maxKeys {
		clear(s.seen)
	}
}
