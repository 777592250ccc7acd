package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/internal/groupcommit"
)

// pushGroup coalesces the single pushes (push/private without a push id)
// that web sends one comet instance at the same time into one
// CometRPC.PushBatch call: group commit on web's side of the push path
// (docs/performance.md, "Web coalesces single pushes"). One call carrying
// n pushes costs web and comet far less than n PushPrivate calls: one
// request written, one answer read, one wake-up on each side.
//
// It is a group commit (internal/groupcommit: a caller that finds no call
// in flight to its comet leads and sends at once; pushes arriving meanwhile
// queue and go in the next call, led by the first caller queued), whose
// batch is at most pushGroupMax pushes, api.SaveBatchBytes of messages. A
// batch of one goes as a plain PushPrivate: an idle web, or a lone push,
// changes nothing on the wire, and 1.0.5 comets see only the method they
// know; several go as one PushBatch.
//
// Outcomes: each caller gets its own push's. A push comet lists as failed
// in the PushBatch answer fails alone (as its refused PushPrivate would); a
// failed call fails every push it carried, with the call's error, so a
// call that was never sent (gobrpc.NotSent) lets each caller keep its push
// through a message node as pushOne does for a single call.
//
// Deadlines: a push whose caller's context ends before it is sent is not
// sent; its caller is answered at once with the error of a call whose
// context ended (a timeout, at the deadline). One that ends
// while its push is in flight stops waiting at once, as a single call
// would (comet may still deliver it). A PushBatch carries the earliest
// deadline of its callers and is bounded by it, so comet never delivers a
// push after its caller gave up; callers with later deadlines whose push
// was in that call are answered with its timeout. The leader waits for its
// call, which ends by then.
//
// Order: a caller is answered only once comet has handled its push, so two
// pushes of one backend issued one after the other go in two calls, in
// that order. PushBatch delivers its entries in order, under the same
// per-key stripes as comet's PushPrivate (comet/push.go, orderLocks).
//
// Live pushes (expire 0) and stored ones (expire > 0) are grouped apart
// (cometPushes): a live push never waits behind a call whose stored
// pushes wait for a message node, so live pushes keep going when the
// message nodes are slow or down, as they did one call each.
//
// A comet without PushBatch (1.0.5) gets one PushPrivate per push, all in
// parallel; that is remembered for pushBatchRetry, during which pushes to
// it are not grouped at all.
//
// Nothing waits on anything but its own context and a leader's call, which
// ends by its deadline (or at once when web closes the comet's client); so
// when the instance leaves the view, or web closes, no caller is left
// hanging and nothing is left running.
type pushGroup struct {
	// oldUntil (unix nanoseconds; shared by the instance's groups) is when
	// to try PushBatch again after the comet answered that it has no such
	// method.
	oldUntil *atomic.Int64

	mu      sync.Mutex
	queue   []*pushReq // waiting, in order of arrival
	leading bool       // a caller is sending; queued callers wait for it

	batch []*pushReq // the leader's, reused from call to call
}

// cometPushes is the push groups of one comet instance.
type cometPushes struct {
	live, stored pushGroup // expire 0; expire > 0
	oldUntil     atomic.Int64
}

func newCometPushes() *cometPushes {
	p := &cometPushes{}
	p.live.oldUntil, p.stored.oldUntil = &p.oldUntil, &p.oldUntil
	return p
}

// group returns the group of pushes with expire.
func (p *cometPushes) group(expire uint) *pushGroup {
	if expire > 0 {
		return &p.stored
	}
	return &p.live
}

// push pushes msg to key through rpc, the comet's client, grouped with the
// pushes of its kind (live or stored) to the same comet made at the same
// time, and returns its outcome. ctx bounds the push (its deadline travels
// with the call).
func (p *cometPushes) push(ctx context.Context, rpc caller, key string, msg json.RawMessage, expire uint) error {
	return p.group(expire).push(ctx, rpc, key, msg, expire)
}

const (
	// pushGroupMax bounds the pushes of one PushBatch call.
	pushGroupMax = 256
	// pushBatchRetry is how long a comet without PushBatch is taken to be
	// an old one: after it, one batch tries PushBatch again (the comet may
	// have been upgraded in place).
	pushBatchRetry = time.Minute
)

// pushReq is one caller's push. err and the Waiter are guarded by the
// group's mu.
type pushReq struct {
	groupcommit.Waiter
	ctx    context.Context // the caller's, bounded by rpc.timeout (callCtx)
	rpc    caller          // the comet instance's client
	key    string
	msg    json.RawMessage
	expire uint
	err    error // set when answered
}

// errCometAnswered is a PushPrivate answered with a code other than 0.
type errCometAnswered int

func (e errCometAnswered) Error() string { return fmt.Sprintf("comet answered %d", int(e)) }

// errEntryFailed is a push that comet listed as failed in a PushBatch
// answer (not stored, refused key): its refusal of a PushPrivate.
type errEntryFailed struct{ why string }

func (e *errEntryFailed) Error() string { return api.CometPushBatch + ": " + e.why }

// pushes returns the push groups of the comet instance, made on first
// use.
func (n *cometNode) pushes() *cometPushes {
	if p := n.group.Load(); p != nil {
		return p
	}
	n.group.CompareAndSwap(nil, newCometPushes())
	return n.group.Load()
}

// push pushes one push of the group's kind and returns its outcome.
func (g *pushGroup) push(ctx context.Context, rpc caller, key string, msg json.RawMessage, expire uint) error {
	if time.Now().UnixNano() < g.oldUntil.Load() {
		return pushPrivate(ctx, rpc, key, msg, expire)
	}
	r := &pushReq{ctx: ctx, rpc: rpc, key: key, msg: msg, expire: expire}
	g.mu.Lock()
	g.queue = append(g.queue, r)
	if g.leading {
		if !groupcommit.Wait(ctx, &g.mu, &g.queue, r) {
			if r.Gone() { // stopped waiting: not sent, or its answer dropped
				return ctxErr(ctx)
			}
			return r.err
		}
	} else {
		g.leading = true
	}
	g.lead(r)
	return r.err
}

// pushPrivate sends one push as its own PushPrivate call.
func pushPrivate(ctx context.Context, rpc caller, key string, msg json.RawMessage, expire uint) error {
	args := &api.CometPushPrivateArgs{Key: key, Msg: msg, Expire: expire, Deadline: api.DeadlineOf(ctx)}
	var ret int
	if err := rpc.Call(ctx, api.CometPushPrivate, args, &ret); err != nil {
		return err
	}
	if ret != api.OK {
		return errCometAnswered(ret)
	}
	return nil
}

// ctxErr is the error of a call whose context ended: what gobrpc's client
// answers, so that a push that timed out while queued answers as one that
// timed out on the wire.
func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", gobrpc.ErrTimeout, ctx.Err())
	}
	return ctx.Err()
}

// lead sends batches, with mu held on entry and released on return, until
// r is answered, then hands the lead to the first caller queued, if any.
func (g *pushGroup) lead(r *pushReq) {
	if r.ctx.Err() != nil {
		// Given the lead after its caller gave up (r is first in the
		// queue): r is not sent, and the next caller leads, so that this
		// one is answered now rather than after a call it has no push in.
		g.queue = groupcommit.Remove(g.queue, r)
		r.err = ctxErr(r.ctx)
		r.Answer()
	}
	for !r.Done() {
		deadline := g.take()
		g.mu.Unlock()
		errs := g.send(deadline)
		g.mu.Lock()
		g.answer(errs)
	}
	g.leading = groupcommit.HandOff(g.queue)
	g.mu.Unlock()
}

// take moves the pushes to send next from the queue into the batch and
// returns the earliest deadline of their callers (the zero time when none
// has one). Pushes whose caller's context has ended are answered instead,
// unsent. mu is held.
func (g *pushGroup) take() (earliest time.Time) {
	g.batch = g.batch[:0]
	bytes, n := 0, 0 // n: pushes of the queue handled
	for _, q := range g.queue {
		if len(g.batch) == pushGroupMax || len(g.batch) > 0 && bytes+len(q.msg) > api.SaveBatchBytes {
			break
		}
		n++
		if q.ctx.Err() != nil {
			q.err = ctxErr(q.ctx)
			q.Answer()
			continue
		}
		g.batch = append(g.batch, q)
		bytes += len(q.msg)
		if dl, ok := q.ctx.Deadline(); ok && (earliest.IsZero() || dl.Before(earliest)) {
			earliest = dl
		}
	}
	rest := copy(g.queue, g.queue[n:])
	clear(g.queue[rest:])
	g.queue = g.queue[:rest]
	return earliest
}

// send sends the batch (nothing when empty) and returns the outcome of
// each push: one push as its own PushPrivate, several as one PushBatch
// bounded by deadline. mu is not held; the batch is the leader's alone.
func (g *pushGroup) send(deadline time.Time) []error {
	errs := make([]error, len(g.batch))
	switch len(g.batch) {
	case 0:
		return errs
	case 1:
		q := g.batch[0]
		errs[0] = pushPrivate(q.ctx, q.rpc, q.key, q.msg, q.expire)
		return errs
	}
	if time.Now().UnixNano() < g.oldUntil.Load() {
		g.sendOneByOne(errs) // queued before the comet said it has no PushBatch
		return errs
	}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	defer cancel()
	args := &api.CometPushBatchArgs{Entries: make([]api.CometPushEntry, len(g.batch)), Deadline: api.DeadlineOf(ctx)}
	keys := make([]string, len(g.batch)) // one allocation for every entry's key
	for i, q := range g.batch {
		keys[i] = q.key
		args.Entries[i] = api.CometPushEntry{Keys: keys[i : i+1 : i+1], Msg: q.msg, Expire: q.expire}
	}
	var resp api.CometPushBatchResp
	err := g.batch[0].rpc.Call(ctx, api.CometPushBatch, args, &resp)
	switch {
	case gobrpc.IsNoSuchMethod(err):
		g.oldUntil.Store(time.Now().Add(pushBatchRetry).UnixNano())
		g.sendOneByOne(errs)
	case err != nil:
		for i := range errs {
			errs[i] = err
		}
	default:
		for _, f := range resp.Failed {
			if f.Entry >= 0 && f.Entry < len(errs) {
				errs[f.Entry] = &errEntryFailed{why: f.Why}
			}
		}
	}
	return errs
}

// sendOneByOne sends the batch as one PushPrivate per push, all in
// parallel (as they would have gone without grouping), for a comet
// without PushBatch.
func (g *pushGroup) sendOneByOne(errs []error) {
	var wg sync.WaitGroup
	for i, q := range g.batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = pushPrivate(q.ctx, q.rpc, q.key, q.msg, q.expire) // each goroutine its own i
		}()
	}
	wg.Wait()
}

// answer hands each push of the batch its outcome and wakes its caller,
// except callers that stopped waiting. mu is held.
func (g *pushGroup) answer(errs []error) {
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
