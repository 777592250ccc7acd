package comet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/internal/groupcommit"
)

// saveGroup coalesces the saves of single pushes (pushPrivate with expire
// > 0) made at the same time into one MessageRPC.SaveBatch call: group
// commit on comet's side of the store path (docs/performance.md, "Stored
// pushes: group commit"). One call carrying n entries costs comet far less
// than n SavePrivate calls: one request written and one answer read.
//
// It is a group commit (internal/groupcommit: a caller that finds no flush
// in flight leads and sends at once; saves arriving meanwhile queue and go
// in the next flush, led by the first caller queued), whose batch is at
// most saveGroupMax entries, api.SaveBatchBytes of messages.
//
// Order: a push holds its key's order stripe across its save (push.go), so
// a key has at most one save queued or in flight, and batching different
// keys reorders nothing.
//
// Deadlines: a save whose caller's context ends before it is sent is not
// sent; one that ends while it is in flight stops waiting at once (as a
// single call that timed out: the message node may still store it). A
// flush goes under the latest deadline among its callers (and
// rpc.timeout), and every entry carries its own caller's deadline, which
// the message node checks on arrival, so an entry whose caller gave up is
// not stored on the strength of another caller's time. The leader waits
// for its flush, so it may wait past its own deadline by the spread of
// deadlines in its batch.
//
// A message node without SaveBatch (1.0.5) gets one SavePrivate per entry;
// that is remembered for saveBatchRetry, during which saves are not
// grouped at all.
type saveGroup struct {
	c *Comet

	mu      sync.Mutex
	queue   []*saveReq // waiting, in order of arrival
	leading bool       // a caller is flushing; queued callers wait for it
	closed  bool

	// oldUntil (unix nanoseconds) is when to try SaveBatch again after a
	// message node answered that it has no such method.
	oldUntil atomic.Int64

	// The leader's buffers, reused from flush to flush.
	batch []*saveReq
	args  api.MessageSaveBatchArgs
}

const (
	// saveGroupMax bounds the entries of one flush.
	saveGroupMax = 256
	// saveBatchRetry is how long a message node without SaveBatch is
	// assumed to be the rule: after it, one flush tries SaveBatch again
	// (the nodes may have been upgraded).
	saveBatchRetry = time.Minute
)

// errSavesClosed answers a save made after the comet began closing.
var errSavesClosed = errors.New("comet closing: message not stored")

// saveReq is one caller's save. Its fields are guarded by the saveGroup's
// mu.
type saveReq struct {
	groupcommit.Waiter
	ctx context.Context
	e   api.MessageSaveEntry
	err error // set when answered
}

func newSaveGroup(c *Comet) *saveGroup { return &saveGroup{c: c} }

// save stores e through a message node, grouped with the saves made at the
// same time, and returns its outcome.
func (g *saveGroup) save(ctx context.Context, e api.MessageSaveEntry) error {
	if g.c.store == nil {
		return errNoStorage
	}
	if time.Now().UnixNano() < g.oldUntil.Load() {
		var reply int
		args := &api.MessageSavePrivateArgs{Key: e.Key, Msg: e.Msg, MsgId: e.MsgId, Expire: e.Expire}
		return g.c.callStore(ctx, api.MessageSavePrivate, args, &reply)
	}
	r := &saveReq{ctx: ctx, e: e}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errSavesClosed
	}
	g.queue = append(g.queue, r)
	if g.leading {
		if !groupcommit.Wait(ctx, &g.mu, &g.queue, r) {
			if r.Gone() { // stopped waiting: not sent, or its answer dropped
				return ctx.Err()
			}
			return r.err
		}
	} else {
		g.leading = true
	}
	g.lead(r)
	return r.err
}

// lead flushes batches, with mu held on entry and released on return,
// until r is answered, then hands the lead to the first caller queued, if
// any.
func (g *saveGroup) lead(r *saveReq) {
	for !r.Done() {
		ctx := g.take()
		g.mu.Unlock()
		errs := g.flush(ctx)
		g.mu.Lock()
		g.answer(errs)
	}
	g.leading = groupcommit.HandOff(g.queue)
	g.mu.Unlock()
}

// take moves the saves to send next from the queue into the batch and
// returns the context of the caller whose deadline is the latest (it bounds
// the flush). Saves whose caller's context has ended are answered with its
// error instead. mu is held.
func (g *saveGroup) take() context.Context {
	g.batch = g.batch[:0]
	var (
		ctx    context.Context
		latest time.Time // ctx's deadline; zero: none, the latest of all
		bytes  int
		n      int // saves of the queue handled
	)
	for _, q := range g.queue {
		if len(g.batch) == saveGroupMax || len(g.batch) > 0 && bytes+len(q.e.Msg) > api.SaveBatchBytes {
			break
		}
		n++
		if err := q.ctx.Err(); err != nil {
			q.err = err
			q.Answer()
			continue
		}
		g.batch = append(g.batch, q)
		bytes += len(q.e.Msg)
		if dl, _ := q.ctx.Deadline(); ctx == nil || !latest.IsZero() && (dl.IsZero() || dl.After(latest)) {
			ctx, latest = q.ctx, dl
		}
	}
	rest := copy(g.queue, g.queue[n:])
	clear(g.queue[rest:])
	g.queue = g.queue[:rest]
	return ctx
}

// flush sends the batch (none when empty) and returns the outcome of each
// save. mu is not held; the batch is the leader's alone.
func (g *saveGroup) flush(ctx context.Context) []error {
	errs := make([]error, len(g.batch))
	if len(g.batch) == 0 {
		return errs
	}
	g.args.Entries = g.args.Entries[:0]
	for _, q := range g.batch {
		e := q.e
		e.Deadline = api.DeadlineOf(q.ctx) // the node drops it when its own caller has given up
		g.args.Entries = append(g.args.Entries, e)
	}
	var resp api.MessageSaveBatchResp
	err := g.c.callStore(ctx, api.MessageSaveBatch, &g.args, &resp)
	switch {
	case gobrpc.IsNoSuchMethod(err):
		g.oldUntil.Store(time.Now().Add(saveBatchRetry).UnixNano())
		g.c.log.Info("the message node has no SaveBatch (1.0.5): storing one message per call", "err", err)
		g.saveOneByOne(ctx, errs)
	case err != nil:
		for i := range errs {
			errs[i] = err
		}
	default:
		for _, f := range resp.Failed {
			if f.Entry >= 0 && f.Entry < len(errs) {
				errs[f.Entry] = fmt.Errorf("message node: %s", f.Why)
			}
		}
	}
	clear(g.args.Entries)
	return errs
}

// saveOneByOne stores the batch with one SavePrivate per entry,
// oldNodeStores in flight, for a message node that has no SaveBatch.
func (g *saveGroup) saveOneByOne(ctx context.Context, errs []error) {
	var (
		wg    sync.WaitGroup
		slots = make(chan struct{}, oldNodeStores)
	)
	for i, q := range g.batch {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			var reply int
			args := &api.MessageSavePrivateArgs{Key: q.e.Key, Msg: q.e.Msg, MsgId: q.e.MsgId, Expire: q.e.Expire}
			errs[i] = g.c.callStore(ctx, api.MessageSavePrivate, args, &reply) // each goroutine its own i
		}()
	}
	wg.Wait()
}

// answer hands each save of the batch its outcome and wakes its caller,
// except callers that stopped waiting. mu is held.
func (g *saveGroup) answer(errs []error) {
	for i, q := range g.batch {
		if q.Gone() {
			continue
		}
		q.err = errs[i]
		q.Answer()
	}
	clear(g.batch)
	g.batch = g.batch[:0]
}

// close refuses saves from now on; saves already queued are still sent
// (and fail once the message-node pool is closed).
func (g *saveGroup) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
