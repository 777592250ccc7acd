package web

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"gopush/api"
	"gopush/gobrpc"
)

// The work behind the admin push endpoints (docs/protocol.md §3.2, §3.3),
// without HTTP: the handlers in http_admin.go and http_room.go parse the
// request, call one of these, and answer.

// pushOne pushes msg to key through the comet node that serves it, in one
// call with the other pushes to that comet made at the same time
// (pushgroup.go). When
// that comet is absent (no serving instance) or cannot be reached (the
// call was never sent) and expire > 0, the message is kept through a
// message node all the same and the answer's data says so (*api.PushStored;
// nil when the comet took the push).
func (w *Web) pushOne(ctx context.Context, key string, msg json.RawMessage, expire uint) (*api.PushStored, error) {
	node, comet, err := w.cluster.load().lookup(key)
	if err != nil {
		if expire > 0 {
			return w.storeOnly(ctx, key, msg, expire, err)
		}
		return nil, err
	}
	cctx, cancel := w.callCtx(ctx)
	defer cancel()
	// Alone, a PushPrivate call; with other pushes to this comet in flight,
	// one PushBatch with them (pushgroup.go).
	if err := comet.pushes().push(cctx, comet.rpc, key, msg, expire); err != nil {
		err = fmt.Errorf("push to key %q on comet node %s: %w", key, node, err)
		if expire > 0 && gobrpc.NotSent(err) {
			return w.storeOnly(ctx, key, msg, expire, err)
		}
		return nil, err
	}
	return nil, nil
}

// callCtx bounds one push call by rpc.timeout, as the RPC client does: its
// deadline travels with the call so that a comet or message node that gets
// it late drops it (api/deadline.go).
func (w *Web) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, w.cfg.RPC.Timeout.D())
}

// storeOnly keeps msg for key through a message node under a mid of this
// web, because no comet could take it (why). A failure to store fails the
// push with both reasons.
func (w *Web) storeOnly(ctx context.Context, key string, msg json.RawMessage, expire uint, why error) (*api.PushStored, error) {
	m := w.pubMids.Next()
	cctx, cancel := w.callCtx(ctx)
	defer cancel()
	var ret int
	args := &api.MessageSavePrivateArgs{Key: key, Msg: msg, MsgId: m, Expire: expire, Deadline: api.DeadlineOf(cctx)}
	if err := w.msgs.Call(cctx, api.MessageSavePrivate, args, &ret); err != nil {
		return nil, fmt.Errorf("%w; keeping it instead failed: %w", why, err)
	}
	if ret != api.OK {
		return nil, fmt.Errorf("%w; keeping it instead failed: message node answered %d", why, ret)
	}
	w.log.Debug("push stored, not delivered: no comet took it", "key", key, "mid", m, "why", why)
	return &api.PushStored{Stored: true, Mid: m}, nil
}

// pushKeys pushes msg to keys (distinct, not empty): the keys are grouped
// by the comet node that serves them, every node gets one PushPrivates
// call, all in parallel. It returns the keys that failed anywhere (fk) and
// the keys kept but not delivered (sk), each in the order of keys: with
// expire > 0, the keys whose node has no serving comet or whose comet could
// not be dialled are kept through a message node all the same, as pushOne
// does. push/mprivate and push/room (http_room.go) share it.
func (w *Web) pushKeys(ctx context.Context, keys []string, msg json.RawMessage, expire uint) (fk, sk []string) {
	view := w.cluster.load()
	failed := make(map[string]bool)
	var absent []string                 // no comet took them; kept when expire > 0
	groups := make(map[string][]string) // node → its keys
	comets := make(map[string]*cometNode)
	for _, k := range keys {
		node, comet, err := view.lookup(k)
		if err != nil {
			absent = append(absent, k)
			continue
		}
		groups[node] = append(groups[node], k)
		comets[node] = comet
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	cctx, cancel := w.callCtx(ctx)
	defer cancel()
	for node, ks := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := &api.CometPushPrivatesArgs{Keys: ks, Msg: msg, Expire: expire, Deadline: api.DeadlineOf(cctx)}
			resp := &api.CometPushPrivatesResp{}
			err := comets[node].rpc.Call(cctx, api.CometPushPrivates, args, resp)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				w.log.Warn("push to several keys: comet call failed", "node", node, "keys", len(ks), "err", err)
				if gobrpc.NotSent(err) {
					absent = append(absent, ks...)
					return
				}
				for _, k := range ks {
					failed[k] = true
				}
				return
			}
			for _, k := range resp.FKeys {
				failed[k] = true
			}
		}()
	}
	wg.Wait()
	stored := make(map[string]bool)
	if len(absent) > 0 && expire > 0 {
		for _, k := range w.storeKeys(ctx, absent, msg, expire) {
			stored[k] = true
		}
	}
	for _, k := range absent {
		if !stored[k] {
			failed[k] = true
		}
	}
	for _, k := range keys {
		if failed[k] {
			fk = append(fk, k)
		} else if stored[k] {
			sk = append(sk, k)
		}
	}
	return fk, sk
}

// storeKeys keeps msg for keys through a message node, each key under a
// mid of this web, and returns the keys kept.
func (w *Web) storeKeys(ctx context.Context, keys []string, msg json.RawMessage, expire uint) []string {
	mids := make([]int64, len(keys))
	for i := range mids {
		mids[i] = w.pubMids.Next()
	}
	cctx, cancel := w.callCtx(ctx)
	defer cancel()
	args := &api.MessageSavePrivatesEachArgs{Keys: keys, MsgIds: mids, Msg: msg, Expire: expire, Deadline: api.DeadlineOf(cctx)}
	var resp api.MessageSavePrivatesResp
	if err := w.msgs.Call(cctx, api.MessageSavePrivatesEach, args, &resp); err != nil {
		w.log.Warn("push to several keys: keeping the keys no comet took failed", "keys", len(keys), "err", err)
		return nil
	}
	notKept := make(map[string]bool, len(resp.FKeys))
	for _, k := range resp.FKeys {
		notKept[k] = true
	}
	kept := make([]string, 0, len(keys))
	for _, k := range keys {
		if !notKept[k] {
			kept = append(kept, k)
		}
	}
	return kept
}

// pushRoomKeys pushes msg to every key of room rid as a private message,
// as pushKeys does, and returns the keys that failed and those kept but not
// delivered. A room that does not exist, or is empty, gets nothing.
func (w *Web) pushRoomKeys(ctx context.Context, rid string, msg json.RawMessage, expire uint) (fk, sk []string, err error) {
	keys, err := w.keysOfRoom(ctx, rid)
	if err != nil || len(keys) == 0 {
		return nil, nil, err
	}
	fk, sk = w.pushKeys(ctx, keys, msg, expire)
	return fk, sk, nil
}

// broadcast sends msg to every connection of every serving comet as a
// public message (gid 1) under one new mid, which it returns. With expire
// > 0 the message is first kept by a message node (a failure there fails
// the push, and nothing is sent). It returns the comet nodes whose
// Broadcast failed, sorted; the others delivered.
func (w *Web) broadcast(ctx context.Context, msg json.RawMessage, expire uint) (mid int64, failed []string, err error) {
	mid = w.pubMids.Next()
	if expire > 0 {
		var ret int
		args := &api.MessageSavePublicArgs{Msg: msg, MsgId: mid, Expire: expire}
		if err := w.msgs.Call(ctx, api.MessageSavePublic, args, &ret); err != nil {
			return 0, nil, messageErr("keep the public message", err)
		}
	}
	return mid, w.sendBroadcast(ctx, msg, mid), nil
}

// sendBroadcast sends msg under mid to every serving comet, in parallel,
// and returns the comet nodes whose Broadcast failed, sorted.
func (w *Web) sendBroadcast(ctx context.Context, msg json.RawMessage, mid int64) (failed []string) {
	view := w.cluster.load()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, n := range view.nodes {
		if n.rpc == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ret int
			err := n.rpc.Call(ctx, api.CometBroadcast, &api.CometBroadcastArgs{Msg: msg, MsgId: mid}, &ret)
			if err == nil {
				return
			}
			w.log.Warn("push/all: comet broadcast failed", "node", name, "mid", mid, "err", err)
			mu.Lock()
			failed = append(failed, name)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(failed)
	return failed
}

// failedKeys is the data of an answer listing the keys that failed (fk)
// and those kept but not delivered (sk): nil (no data) when there are
// neither.
func failedKeys(fk, sk []string) any {
	if len(fk) == 0 && len(sk) == 0 {
		return nil
	}
	if fk == nil {
		fk = []string{}
	}
	return api.FailedKeysData{FKeys: fk, SKeys: sk}
}
