package message

import (
	"context"
	"errors"
	"sync"
	"time"

	"gopush/internal/groupcommit"
)

// errStorageClosed answers a save made after the storage was closed.
var errStorageClosed = errors.New("storage closed")

// groupCommit coalesces the saves that callers make at the same time on
// one shard into one flush: one pipelined round trip to Redis, one
// multi-row INSERT on MySQL (docs/performance.md, "Stored pushes: group
// commit").
//
// It is a group commit (internal/groupcommit: a caller that finds no flush
// in flight flushes its own entries at once, so an idle shard adds no
// wait; entries queued meanwhile go in the next flush, led by the first
// caller still queued), whose flush is at most max entries.
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
//
// It is answered (Answer) when all its entries are, and held (Hold) once
// some are taken into a flush: the leader writes their outcome into errs,
// so its caller waits for them even when its context ends.
type saveReq struct {
	groupcommit.Waiter
	ctx  context.Context
	es   []Entry
	errs []error
	sent int // entries taken into flushes
	left int // entries not answered yet

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
	r := &saveReq{ctx: ctx, left: 1}
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
	g.submit(&saveReq{ctx: ctx, es: es, errs: errs, left: len(es)})
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
		if !groupcommit.Wait(r.ctx, &g.mu, &g.queue, r) {
			if r.Gone() { // withdrawn before any entry was sent
				fill(r.errs, g.wrap(r.ctx.Err()))
			}
			return
		}
	} else {
		g.leading = true
	}
	g.lead(r)
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
		g.answer(n)
		if r.left > 0 {
			continue
		}
		g.leading = groupcommit.HandOff(g.queue)
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
				r.Answer()
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
		r.Hold()
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
// and wakes those who have all their answers. mu is held.
func (g *groupCommit) answer(n int) {
	for k := range n {
		o := g.owners[k]
		o.r.errs[o.i] = g.errs[k]
		o.r.left--
		if o.r.left == 0 {
			o.r.Answer()
		}
	}
	clear(g.es[:n])
	clear(g.owners[:n])
}

// close refuses saves from now on; saves already queued are still
// flushed (and fail if the shard's connections are gone).
func (g *groupCommit) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func fill(errs []error, err error) {
	for i := range errs {
		errs[i] = err
	}
}
