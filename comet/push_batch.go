package comet

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"gopush/api"
	"gopush/gobrpc"
)

// batchPush is one (entry, key) push of a batch.
type batchPush struct {
	entry  int // index in the call's entries
	key    string
	body   json.RawMessage // the entry's message, compact; shared by its keys
	expire uint
	mid    int64
	why    string // set when the push failed
}

// pushBatch pushes every entry to each of its keys, in the order given: a
// key pushed by several entries gets them with ascending mids and in that
// order, as if pushed one call after the other. Each (entry, key) push
// gets its own mid. The pushes with expire > 0 are stored first, all in
// one MessageRPC.SaveBatch call; a push not stored is not delivered. It
// returns the pushes that failed, in entry order.
func (c *Comet) pushBatch(ctx context.Context, entries []api.CometPushEntry) []api.BatchFailure {
	var failed []api.BatchFailure
	fail := func(entry int, key, why string) {
		failed = append(failed, api.BatchFailure{Entry: entry, Key: key, Why: why})
	}
	pushes := make([]batchPush, 0, len(entries))
	for i, e := range entries {
		if len(e.Keys) == 0 {
			fail(i, "", errNoPushKeys.Error())
			continue
		}
		body, err := compactJSON(e.Msg)
		if err != nil {
			for _, k := range e.Keys {
				fail(i, k, errNotJSON.Error())
			}
			continue
		}
		seen := newKeySet(len(e.Keys))
		for _, k := range e.Keys {
			if err := checkKey(k); err != nil {
				fail(i, k, err.Error())
				continue
			}
			if !seen.add(k) {
				continue // a repeated key is pushed once
			}
			pushes = append(pushes, batchPush{entry: i, key: k, body: body, expire: e.Expire})
		}
	}
	if len(pushes) == 0 {
		return failed
	}

	keys := make([]string, len(pushes))
	for i := range pushes {
		keys[i] = pushes[i].key
	}
	unlock := c.order.lockKeys(keys)
	defer unlock()
	if ctx.Err() != nil {
		// The caller gave up while the batch waited for its keys (other
		// pushes to them, storing): nothing done, as on arrival.
		c.stats.pushFailed.Add(int64(len(pushes)))
		why := api.ErrDeadlinePassed.Error()
		for i := range pushes {
			fail(pushes[i].entry, pushes[i].key, why)
		}
		sortFailures(failed)
		return failed
	}
	for i := range pushes {
		pushes[i].mid = c.mids.Next()
	}
	c.storeBatch(ctx, pushes)
	for i := range pushes {
		p := &pushes[i]
		if p.why != "" {
			fail(p.entry, p.key, p.why)
			continue
		}
		c.deliver(p.key, &message{msg: p.body, mid: p.mid})
	}
	sortFailures(failed)
	return failed
}

// keySet finds the repeated keys of one entry. Most entries have one key:
// that needs no map.
type keySet struct {
	one  string
	n    int
	many map[string]struct{}
}

func newKeySet(n int) keySet {
	if n > 1 {
		return keySet{many: make(map[string]struct{}, n)}
	}
	return keySet{}
}

// add adds key and reports whether it was new.
func (s *keySet) add(key string) bool {
	if s.many == nil {
		if s.n > 0 && s.one == key {
			return false
		}
		s.one, s.n = key, 1
		return true
	}
	if _, dup := s.many[key]; dup {
		return false
	}
	s.many[key] = struct{}{}
	return true
}

// storeBatch stores the pushes with expire > 0 through a message node, in
// one SaveBatch call (more when their messages pass api.SaveBatchBytes),
// and marks those not stored (why). A message node
// without SaveBatch (1.0.5, or a gopush node older than it) gets one
// SavePrivate per push, oldNodeStores in flight.
func (c *Comet) storeBatch(ctx context.Context, pushes []batchPush) {
	var idx []int                       // args.Entries[j] is pushes[idx[j]]
	args := &api.MessageSaveBatchArgs{} // its Entries, cut into runs, are sent
	for i := range pushes {
		if p := &pushes[i]; p.expire > 0 {
			idx = append(idx, i)
			args.Entries = append(args.Entries, api.MessageSaveEntry{Key: p.key, Msg: p.body, MsgId: p.mid, Expire: p.expire})
		}
	}
	if len(idx) == 0 {
		return
	}
	off := 0 // of the run in args.Entries (and idx)
	for _, run := range api.SplitSaveBatch(args.Entries) {
		var resp api.MessageSaveBatchResp
		err := c.callStore(ctx, api.MessageSaveBatch, &api.MessageSaveBatchArgs{Entries: run}, &resp)
		if gobrpc.IsNoSuchMethod(err) {
			c.storeBatchOneByOne(ctx, pushes, idx[off:])
			break
		}
		for _, f := range resp.Failed {
			if err == nil && f.Entry >= 0 && f.Entry < len(run) {
				pushes[idx[off+f.Entry]].why = "not stored: " + f.Why
			}
		}
		if err != nil {
			why := fmt.Sprintf("not stored: %v", err)
			for _, i := range idx[off : off+len(run)] {
				pushes[i].why = why
			}
		}
		off += len(run)
	}
	nFailed := 0
	for _, i := range idx {
		if pushes[i].why != "" {
			nFailed++
		}
	}
	c.stats.stored.Add(int64(len(idx) - nFailed))
	if nFailed > 0 {
		c.stats.pushFailed.Add(int64(nFailed))
		c.log.Warn("push batch: messages not stored, not delivered", "failed", nFailed, "stored", len(idx)-nFailed, "first", pushes[firstFailed(pushes, idx)].why)
	}
}

// firstFailed returns the first of idx whose push failed (there is one).
func firstFailed(pushes []batchPush, idx []int) int {
	for _, i := range idx {
		if pushes[i].why != "" {
			return i
		}
	}
	return idx[0]
}

// storeBatchOneByOne stores pushes[idx...] with one SavePrivate each, for a
// message node that has no SaveBatch.
func (c *Comet) storeBatchOneByOne(ctx context.Context, pushes []batchPush, idx []int) {
	var (
		wg    sync.WaitGroup
		slots = make(chan struct{}, oldNodeStores)
	)
	for _, i := range idx {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			p := &pushes[i]
			var reply int
			args := &api.MessageSavePrivateArgs{Key: p.key, Msg: p.body, MsgId: p.mid, Expire: p.expire}
			if err := c.callStore(ctx, api.MessageSavePrivate, args, &reply); err != nil {
				p.why = fmt.Sprintf("not stored: %v", err) // each goroutine its own push
			}
		}()
	}
	wg.Wait()
}

// sortFailures puts failures in entry order, keeping the order of an
// entry's keys (refusals are found before storage failures).
func sortFailures(f []api.BatchFailure) {
	slices.SortStableFunc(f, func(a, b api.BatchFailure) int { return cmp.Compare(a.Entry, b.Entry) })
}
