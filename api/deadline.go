package api

import (
	"context"
	"errors"
	"time"
)

// Deadlines of push and save calls (docs/reliability.md, "Caller
// deadlines"). The Deadline field of CometPushPrivate(s)Args and
// MessageSavePrivate(s)(Each)Args is the moment, in unix nanoseconds, after
// which the caller no longer waits for the answer. A receiver that gets the
// call later drops it without doing anything: the caller has answered its
// own caller already ("outcome unknown"), and work done now would surprise
// it (a push delivered a minute after it was reported failed). 0 means no
// deadline: 1.0.5 peers do not send the field and gob leaves it zero, and
// a 1.0.5 receiver ignores it. The hosts' clocks must agree to well within
// rpc.timeout (NTP).

// ErrDeadlinePassed is returned (as the RPC error text) by a receiver that
// dropped a call whose deadline had passed.
var ErrDeadlinePassed = errors.New("deadline passed: the caller gave up; nothing done")

// DeadlineOf returns the Deadline field for a call made under ctx: ctx's
// deadline, or 0 when it has none.
func DeadlineOf(ctx context.Context) int64 {
	if dl, ok := ctx.Deadline(); ok {
		return dl.UnixNano()
	}
	return 0
}

// DeadlinePassed reports whether deadline (0: none) is before now.
func DeadlinePassed(deadline int64, now time.Time) bool {
	return deadline != 0 && now.UnixNano() > deadline
}

// WithDeadline bounds ctx by deadline (0: ctx unchanged).
func WithDeadline(ctx context.Context, deadline int64) (context.Context, context.CancelFunc) {
	if deadline == 0 {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, time.Unix(0, deadline))
}
