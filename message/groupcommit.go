package message

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// errStorageClosed answers a save made after the storage was closed.
var errStorageClosed = errors.New("storage closed")

// groupCommit coalesces the saves that callers make at the same time on
// one shard into one flush: one pipelined round trip to Redis, one
// multi-row INSERT on MySQL (docs/performance.md, "Stored pushes: group
// commit").
//
// It has no goroutine of its own. A caller that finds no flush in flight
// flushes its own entries at once, so an idle shard adds no wait. A caller
// that finds one in flight queues its entries and waits; when the flush
// ends, its leader answers the callers it carried and hands the lead to the
// first caller still queued, which flushes everything queued meanwhile (at
// most max entries). So there is at most one flush in flight per shard,
// and a batch is whatever arrived during the previous one.
//
// Each caller gets the outcome of its own entries. Entries whose caller's
// context ended before they were flushed are not sent: they fail with the
// context's error, and the caller stops waiting for them. Entries already
// sent are answered when their flush ends (it is bounded by the latest
// deadline among its callers and by the shard's timeout).
//
// Order: entries of one caller are flushed in their order, and callers'
// entries in arrival order, except that a caller with more than max
// entries goes back behind those who queued while its first chunk was
// flushed, so that a large batch does not hold up single saves for its
// whole length.
type groupCommit struct {
	max   int
	wrap  func(error) error // names the shard in the errors it makes itself
	flush func(ctx context.Context, es []Entry, errs []error)

	mu      sync.Mutex
	queue   []*saveReq // waiting, in order of arrival
	leading bool       // a caller is flushing; queued callers wait for it
	closed  bool

	// The leader's buffers, reused from flush to flush (one leader at a
	// time).
	es     []Entry
	errs   []error
	owners []entryOwner
}

// saveReq is one caller's entries. Its fields are guarded by the
// groupCommit's mu.
type saveReq struct {
	ctx  context.Context
	es   []Entry
	errs []error
	sent int  // entries taken into flushes
	left int  // entries not answered yet
	lead bool // the lead was handed to this caller
	// wake is signalled (never blocking: it holds one) when the caller's
	// entries are all answered or the lead is handed to it.
	wake chan struct{}

	one    [1]Entry // es and errs of a single save, without two more allocations
	oneErr [1]error
}

type entryOwner struct {
	r *saveReq
	i int
}

// newGroupCommit returns a group commit that stores at most max entries
// per flush. flush stores es and writes the outcome of es[i] into errs[i]
// (all nil on entry); it is never called twice at once.
func newGroupCommit(max int, wrap func(error) error, flush func(ctx context.Context, es []Entry, errs []error)) *groupCommit {
	return &groupCommit{max: max, wrap: wrap, flush: flush}
}

// saveOne stores e and returns its outcome.
func (g *groupCommit) saveOne(ctx context.Context, e Entry) error {
	r := &saveReq{ctx: ctx, left: 1, wake: make(chan struct{}, 1)}
	r.one[0] = e
	r.es, r.errs = r.one[:], r.oneErr[:]
	g.submit(r)
	return r.oneErr[0]
}

// save stores es, writing the outcome of es[i] into errs[i].
func (g *groupCommit) save(ctx context.Context, es []Entry, errs []error) {
	if len(es) == 0 {
		return
	}
	g.submit(&saveReq{ctx: ctx, es: es, errs: errs, left: len(es), wake: make(chan struct{}, 1)})
}

// submit queues r and returns when its entries are answered.
func (g *groupCommit) submit(r *saveReq) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		fill(r.errs, g.wrap(errStorageClosed))
		return
	}
	g.queue = append(g.queue, r)
	if g.leading {
		g.mu.Unlock()
		if !g.wait(r) {
			return
		}
	} else {
		g.leading = true
	}
	g.lead(r)
}

// wait waits until r's entries are all answered (false) or the lead is
// handed to r (true, with mu held). A caller whose context ends while its
// entries all still wait withdraws them.
func (g *groupCommit) wait(r *saveReq) bool {
	done := r.ctx.Done()
	for {
		select {
		case <-r.wake:
		case <-done:
			done = nil
			g.mu.Lock()
			if r.sent == 0 && !r.lead {
				g.remove(r)
				r.left = 0
				g.mu.Unlock()
				fill(r.errs, g.wrap(r.ctx.Err()))
				return false
			}
			// Some are in flight: wait for their answer. The leader
			// drops the others (see take).
			g.mu.Unlock()
			continue
		}
		g.mu.Lock()
		if r.lead {
			r.lead = false
			return true
		}
		if r.left == 0 {
			g.mu.Unlock()
			return false
		}
		g.mu.Unlock()
	}
}

// lead flushes batches, with mu held on entry and released on return,
// until r's own entries are answered, then hands the lead to the first
// caller queued, if any.
func (g *groupCommit) lead(r *saveReq) {
	for {
		ctx, n := g.take()
		g.mu.Unlock()
		if n > 0 {
			clear(g.errs[:n])
			g.flush(ctx, g.es[:n], g.errs[:n])
		}
		g.mu.Lock()
		g.answer(n, r)
		if r.left > 0 {
			continue
		}
		if len(g.queue) == 0 {
			g.leading = false
		} else {
			next := g.queue[0]
			next.lead = true
			signal(next)
		}
		g.mu.Unlock()
		return
	}
}

// take moves up to max entries from the queue into the leader's buffers and
// returns how many, with the context of the caller whose deadline is the
// latest (it bounds the flush). Entries of callers whose context has ended
// are answered with its error instead. mu is held.
func (g *groupCommit) take() (context.Context, int) {
	g.es, g.errs, g.owners = g.es[:0], g.errs[:0], g.owners[:0]
	var (
		ctx    context.Context
		latest time.Time // ctx's deadline; zero: none, the latest of all
		keep   = g.queue[:0]
		back   []*saveReq // callers with entries left over, queued again at the end
	)
	for qi, r := range g.queue {
		if len(g.es) == g.max {
			keep = append(keep, g.queue[qi:]...)
			break
		}
		if err := r.ctx.Err(); err != nil {
			err = g.wrap(err)
			for i := r.sent; i < len(r.es); i++ {
				r.errs[i] = err
			}
			r.left -= len(r.es) - r.sent
			r.sent = len(r.es)
			if r.left == 0 {
				signal(r)
			}
			continue
		}
		n := min(len(r.es)-r.sent, g.max-len(g.es))
		for i := r.sent; i < r.sent+n; i++ {
			g.es = append(g.es, r.es[i])
			g.errs = append(g.errs, nil)
			g.owners = append(g.owners, entryOwner{r: r, i: i})
		}
		r.sent += n
		if dl, _ := r.ctx.Deadline(); ctx == nil || !latest.IsZero() && (dl.IsZero() || dl.After(latest)) {
			ctx, latest = r.ctx, dl
		}
		if r.sent < len(r.es) {
			back = append(back, r)
		}
	}
	clear(g.queue[len(keep)+len(back):])
	g.queue = append(keep, back...)
	return ctx, len(g.es)
}

// answer hands the outcome of the n entries just flushed to their callers
// and wakes those who have all their answers, except self. mu is held.
func (g *groupCommit) answer(n int, self *saveReq) {
	for k := range n {
		o := g.owners[k]
		o.r.errs[o.i] = g.errs[k]
		o.r.left--
		if o.r.left == 0 && o.r != self {
			signal(o.r)
		}
	}
	clear(g.es[:n])
	clear(g.owners[:n])
}

// remove takes r out of the queue. mu is held.
func (g *groupCommit) remove(r *saveReq) {
	if i := slices.Index(g.queue, r); i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1)
	}
}

// close refuses saves from now on; saves already queued are still
// flushed (and fail if the shard's connections are gone).
func (g *groupCommit) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func signal(r *saveReq) {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func fill(errs []error, err error) {
	for i := range errs {
		errs[i] = err
	}
}
