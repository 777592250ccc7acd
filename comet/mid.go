package comet

import (
	"sync/atomic"
	"time"
)

// midGen hands out message ids (docs/protocol.md §2.3): int64 counts of 100 ns since the
// Unix epoch. Every id it returns is larger than the one before, across all
// keys, even for two calls in the same 100 ns or after the clock steps back
// (docs/protocol.md §9.8). One generator serves the whole process.
type midGen struct {
	last atomic.Int64
	now  func() time.Time // replaced in tests to step the clock
}

func newMidGen() *midGen { return &midGen{now: time.Now} }

// Next returns the next id: the current time in 100 ns units, or one more
// than the previous id if the clock has not moved past it.
func (g *midGen) Next() int64 {
	now := g.now().UnixNano() / 100
	for {
		last := g.last.Load()
		next := now
		if next <= last {
			next = last + 1
		}
		if g.last.CompareAndSwap(last, next) {
			return next
		}
	}
}
