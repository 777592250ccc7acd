// Package mid hands out message ids (docs/protocol.md §2.3): int64 counts
// of 100 ns since the Unix epoch, the unit of web's /1/time/get, so that a
// client that starts from a timeid gets only newer messages.
//
// comet numbers private pushes with it and web numbers public ones; each
// process runs one Generator per kind of id.
package mid

import (
	"sync/atomic"
	"time"
)

// Generator returns strictly increasing ids: the current time in 100 ns
// units, or one more than the previous id when the clock has not moved past
// it (two calls in the same 100 ns, or a clock stepped back). It is safe for
// concurrent use and its zero value is ready, reading time.Now.
type Generator struct {
	last  atomic.Int64
	clock func() time.Time // nil: time.Now
}

// New returns a Generator that reads clock (nil: time.Now); tests pass a
// clock they can step.
func New(clock func() time.Time) *Generator { return &Generator{clock: clock} }

// Next returns the next id.
func (g *Generator) Next() int64 {
	clock := g.clock
	if clock == nil {
		clock = time.Now
	}
	now := clock().UnixNano() / 100
	for {
		last := g.last.Load()
		next := max(now, last+1)
		if g.last.CompareAndSwap(last, next) {
			return next
		}
	}
}
