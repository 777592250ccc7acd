package web

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"

	"gopush/api"
	"gopush/gobrpc"
)

// The work behind push/batch (docs/protocol.md §3.11): every (entry, key)
// push is routed on the ring as pushKeys routes keys, each comet node gets
// its share of the batch in one CometRPC.PushBatch call, all nodes in
// parallel; the pushes no comet could take are kept through a message node
// when their expire > 0.

// batchPush is one (entry, key) push of a batch. Its index in the
// flattened list names it everywhere below.
type batchPush struct {
	entry  int // index of its entry in the request
	key    string
	item   *batchItem
	stored bool  // kept through a message node, not delivered
	mid    int64 // when stored: the mid it was kept under
	why    string
}

// cometShare is what one comet node gets of a batch: its entries, each
// with the keys the node serves, and for every such key the push it is.
type cometShare struct {
	node   *cometNode
	args   api.CometPushBatchArgs
	pushes [][]int // pushes[i][j]: the push of args.Entries[i].Keys[j]
}

// pushBatch pushes every item to each of its keys and returns the pushes
// that failed and those kept but not delivered, each in request order.
func (w *Web) pushBatch(ctx context.Context, items []batchItem) (failed, stored []api.BatchPush) {
	view := w.cluster.load()
	n := 0
	for i := range items {
		n += len(items[i].keys)
	}
	pushes := make([]batchPush, 0, n)
	shares := make(map[string]*cometShare)
	var absent []int // pushes no comet took; kept when expire > 0
	share := func(name string, node *cometNode) *cometShare {
		s := shares[name]
		if s == nil {
			s = &cometShare{node: node}
			shares[name] = s
		}
		return s
	}
	for i := range items {
		it := &items[i]
		if len(it.keys) == 1 { // the common case: no grouping within the entry
			p := len(pushes)
			pushes = append(pushes, batchPush{entry: i, key: it.keys[0], item: it})
			name, node, err := view.lookup(it.keys[0])
			if err != nil {
				pushes[p].why = err.Error()
				absent = append(absent, p)
				continue
			}
			s := share(name, node)
			s.args.Entries = append(s.args.Entries, api.CometPushEntry{Keys: it.keys, Msg: it.msg, Expire: it.expire})
			s.pushes = append(s.pushes, []int{p})
			continue
		}
		// Several keys: one entry per node, with that node's keys.
		at := make(map[string]int) // node → index of this entry in its share
		for _, k := range it.keys {
			p := len(pushes)
			pushes = append(pushes, batchPush{entry: i, key: k, item: it})
			name, node, err := view.lookup(k)
			if err != nil {
				pushes[p].why = err.Error()
				absent = append(absent, p)
				continue
			}
			s := share(name, node)
			j, ok := at[name]
			if !ok {
				j = len(s.args.Entries)
				at[name] = j
				s.args.Entries = append(s.args.Entries, api.CometPushEntry{Msg: it.msg, Expire: it.expire})
				s.pushes = append(s.pushes, nil)
			}
			s.args.Entries[j].Keys = append(s.args.Entries[j].Keys, k)
			s.pushes[j] = append(s.pushes[j], p)
		}
	}

	var mu sync.Mutex // guards absent; every push is written by one goroutine only
	var wg sync.WaitGroup
	for name, s := range shares {
		wg.Add(1)
		go func() {
			defer wg.Done()
			notSent := w.pushShare(ctx, name, s, pushes)
			if len(notSent) > 0 {
				mu.Lock()
				absent = append(absent, notSent...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	w.keepAbsent(ctx, pushes, absent)

	for i := range pushes {
		p := &pushes[i]
		switch {
		case p.stored:
			stored = append(stored, api.BatchPush{Index: p.entry, Key: p.key, Mid: p.mid})
		case p.why != "":
			failed = append(failed, api.BatchPush{Index: p.entry, Key: p.key, Why: p.why})
		}
	}
	return failed, stored
}

// pushShare sends one comet node its share in one PushBatch call and marks
// the pushes that failed. It returns the pushes the call never reached the
// comet with (it could not be dialled): nothing happened to them. A comet
// without PushBatch (1.0.5) gets one PushPrivate per push.
func (w *Web) pushShare(ctx context.Context, name string, s *cometShare, pushes []batchPush) (notSent []int) {
	if s.node.noBatch.Load() {
		return w.pushShareOneByOne(ctx, name, s, pushes)
	}
	cctx, cancel := w.callCtx(ctx)
	defer cancel()
	s.args.Deadline = api.DeadlineOf(cctx)
	var resp api.CometPushBatchResp
	err := s.node.rpc.Call(cctx, api.CometPushBatch, &s.args, &resp)
	switch {
	case err == nil:
		for _, f := range resp.Failed {
			if p, ok := s.pushOf(f.Entry, f.Key); ok {
				pushes[p].why = f.Why
			}
		}
		return nil
	case gobrpc.IsNoSuchMethod(err):
		w.log.Info("push/batch: comet has no PushBatch (1.0.5?); pushing one by one", "node", name)
		s.node.noBatch.Store(true)
		return w.pushShareOneByOne(ctx, name, s, pushes)
	}
	why := fmt.Sprintf("comet node %s: %v", name, err)
	w.log.Warn("push/batch: comet call failed", "node", name, "entries", len(s.args.Entries), "err", err)
	for _, ps := range s.pushes {
		for _, p := range ps {
			pushes[p].why = why
			if gobrpc.NotSent(err) {
				notSent = append(notSent, p)
			}
		}
	}
	return notSent
}

// pushOf returns the push of key in the share's entry i.
func (s *cometShare) pushOf(i int, key string) (int, bool) {
	if i < 0 || i >= len(s.pushes) {
		return 0, false
	}
	for j, k := range s.args.Entries[i].Keys {
		if k == key {
			return s.pushes[i][j], true
		}
	}
	return 0, false
}

// batchLanes is how many PushPrivate calls a share sent one by one has in
// flight: pushes to one key go down one lane, in order.
const batchLanes = 16

var laneSeed = maphash.MakeSeed()

// pushShareOneByOne sends the share as one PushPrivate per push, for a
// comet without PushBatch: batchLanes lanes in parallel, the pushes to a
// key all in the same lane, in their order.
func (w *Web) pushShareOneByOne(ctx context.Context, name string, s *cometShare, pushes []batchPush) (notSent []int) {
	var lanes [batchLanes][]int
	for _, ps := range s.pushes {
		for _, p := range ps {
			l := maphash.String(laneSeed, pushes[p].key) % batchLanes
			lanes[l] = append(lanes[l], p)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, lane := range lanes {
		if len(lane) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, p := range lane {
				bp := &pushes[p]
				cctx, cancel := w.callCtx(ctx)
				args := &api.CometPushPrivateArgs{Key: bp.key, Msg: bp.item.msg, Expire: bp.item.expire, Deadline: api.DeadlineOf(cctx)}
				var ret int
				err := s.node.rpc.Call(cctx, api.CometPushPrivate, args, &ret)
				cancel()
				switch {
				case err != nil:
					bp.why = fmt.Sprintf("comet node %s: %v", name, err)
					if gobrpc.NotSent(err) {
						mu.Lock()
						notSent = append(notSent, p)
						mu.Unlock()
					}
				case ret != api.OK:
					bp.why = fmt.Sprintf("comet node %s answered %d", name, ret)
				}
			}
		}()
	}
	wg.Wait()
	return notSent
}

// keepAbsent keeps the pushes no comet took (absent, each with why set)
// through a message node when their expire > 0, each under a mid of this
// web, in as few calls as possible: one SaveBatch (more when their
// messages pass api.SaveBatchBytes; one SavePrivate each, oldMessageStores
// in flight, on a message node without it). A push kept
// is marked stored; the others keep their why.
func (w *Web) keepAbsent(ctx context.Context, pushes []batchPush, absent []int) {
	slices.Sort(absent) // mids in request order
	var keep []int
	args := &api.MessageSaveBatchArgs{} // its Entries, cut into runs, are sent
	for _, p := range absent {
		bp := &pushes[p]
		if bp.item.expire == 0 {
			continue
		}
		bp.mid = w.pubMids.Next()
		keep = append(keep, p)
		args.Entries = append(args.Entries, api.MessageSaveEntry{Key: bp.key, Msg: bp.item.msg, MsgId: bp.mid, Expire: bp.item.expire})
	}
	if len(keep) == 0 {
		return
	}
	notKept := make([]string, len(keep)) // why keep[j] was not kept
	off := 0                             // of the run in args.Entries
	for _, run := range api.SplitSaveBatch(args.Entries) {
		cctx, cancel := w.callCtx(ctx)
		var resp api.MessageSaveBatchResp
		err := w.msgs.Call(cctx, api.MessageSaveBatch, &api.MessageSaveBatchArgs{Entries: run, Deadline: api.DeadlineOf(cctx)}, &resp)
		cancel()
		if gobrpc.IsNoSuchMethod(err) {
			w.keepOneByOne(ctx, args.Entries[off:], notKept[off:])
			break
		}
		for _, f := range resp.Failed {
			if err == nil && f.Entry >= 0 && f.Entry < len(run) {
				notKept[off+f.Entry] = f.Why
			}
		}
		if err != nil {
			for j := off; j < off+len(run); j++ {
				notKept[j] = err.Error()
			}
		}
		off += len(run)
	}
	for j, p := range keep {
		bp := &pushes[p]
		if notKept[j] != "" {
			bp.why = fmt.Sprintf("%s; keeping it instead failed: %s", bp.why, notKept[j])
			bp.mid = 0
			continue
		}
		bp.stored = true
		bp.why = ""
	}
}

// oldMessageStores bounds the SavePrivate calls in flight when a message
// node has no SaveBatch.
const oldMessageStores = 16

// keepOneByOne stores es with one SavePrivate each and writes in notKept[j]
// why es[j] was not stored.
func (w *Web) keepOneByOne(ctx context.Context, es []api.MessageSaveEntry, notKept []string) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, oldMessageStores)
	for j := range es {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			e := &es[j]
			cctx, cancel := w.callCtx(ctx)
			defer cancel()
			args := &api.MessageSavePrivateArgs{Key: e.Key, Msg: e.Msg, MsgId: e.MsgId, Expire: e.Expire, Deadline: api.DeadlineOf(cctx)}
			var ret int
			if err := w.msgs.Call(cctx, api.MessageSavePrivate, args, &ret); err != nil {
				notKept[j] = err.Error() // each goroutine its own j
			} else if ret != api.OK {
				notKept[j] = fmt.Sprintf("message node answered %d", ret)
			}
		}()
	}
	wg.Wait()
}
