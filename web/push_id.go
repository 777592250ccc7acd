package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"gopush/api"
	"gopush/gobrpc"
)

// Pushes under a push id (docs/protocol.md §3.2, §9.27; docs/reliability.md
// "Push ids"): the optional id parameter of the admin push endpoints. A
// retry with the same id (for one key: the same key and id) within the
// message's lifetime stores and delivers nothing new and answers the first
// push's mid. A push that fails answers, beside its usual code, data.retry:
// "safe" when nothing was done, "same-id" when the outcome is unknown.

// parsePushId reads the optional id parameter: absent → "", a present one
// must be a valid push id (api.CheckPushId).
func parsePushId(q url.Values) (string, error) {
	if _, ok := q["id"]; !ok {
		return "", nil
	}
	id := q.Get("id")
	if err := api.CheckPushId(id); err != nil {
		return "", errParam("id: %v", err)
	}
	return id, nil
}

// noIdsErr turns a message node's "ids need Redis" (a MySQL cluster) into
// a parameter error: no retry can make the push with an id work.
func noIdsErr(err error) error {
	if err != nil && strings.Contains(err.Error(), api.NoPushIds) {
		return errParam("id: %s (the message nodes keep messages in MySQL)", api.NoPushIds)
	}
	return err
}

// retryError is a failed push under an id with its retry advice (data.retry
// of the answer).
type retryError struct {
	err    error
	advice string // api.RetrySafe or api.RetrySameId
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// withAdvice wraps a push failure with its retry advice: "safe" when
// nothing can have been done (no comet, the call never sent, dropped or
// refused before it took effect, no message node), "same-id" otherwise (a
// call that was sent and got no answer in time, or failed on the far side
// after it may have stored). A parameter error is left alone (65534, no
// data).
func withAdvice(err error) error {
	if err == nil {
		return nil
	}
	var pe *paramError
	if errors.As(err, &pe) {
		return err
	}
	advice := api.RetrySameId
	if notDone(err) {
		advice = api.RetrySafe
	}
	return &retryError{err: err, advice: advice}
}

// notDone reports whether err says for sure that a push did nothing:
// no comet for the key, a call never sent, no live message node (here, or
// at the comet: its error comes back as text), or a call dropped because
// its deadline had passed (at the comet, the message node, or inside
// Redis).
func notDone(err error) bool {
	msg := err.Error()
	return errors.Is(err, errNoNode) || gobrpc.NotSent(err) || gobrpc.IsNoSuchMethod(err) ||
		errors.Is(err, gobrpc.ErrNoMessageNode) ||
		strings.Contains(msg, gobrpc.ErrNoMessageNode.Error()) ||
		strings.Contains(msg, api.ErrDeadlinePassed.Error())
}

// retryData is the data of an error answer: data.retry for a push under
// an id, nil (no data) for anything else.
func retryData(err error) any {
	var re *retryError
	if errors.As(err, &re) {
		return api.RetryData{Retry: re.advice}
	}
	return nil
}

// pushOneId is pushOne under push id: the key's comet pushes through
// CometRPC.PushPrivateId and answers the mid (the first one, with dup, for
// a retry). An absent or unreachable comet with expire > 0 is handled as
// pushOne does, the message kept under the id. A 1.0.5 comet has no
// PushPrivateId: the push then goes without the id (not deduplicated; the
// answer has no mid), logged once.
func (w *Web) pushOneId(ctx context.Context, key, id string, msg json.RawMessage, expire uint) (*api.PushIdData, error) {
	node, comet, err := w.cluster.load().lookup(key)
	if err != nil {
		if expire > 0 {
			return w.storeOnlyId(ctx, key, id, msg, expire, err)
		}
		return nil, withAdvice(err)
	}
	cctx, cancel := w.callCtx(ctx)
	defer cancel()
	args := &api.CometPushPrivateIdArgs{Key: key, Msg: msg, Expire: expire, Deadline: api.DeadlineOf(cctx), Id: id}
	var reply api.PushIdReply
	err = comet.rpc.Call(cctx, api.CometPushPrivateId, args, &reply)
	if gobrpc.IsNoSuchMethod(err) {
		w.oldCometIds.Do(func() {
			w.log.Warn("a comet has no PushPrivateId (1.0.5): pushes with an id to its keys are not deduplicated", "node", node)
		})
		stored, err := w.pushOne(ctx, key, msg, expire)
		if err != nil {
			return nil, withAdvice(err)
		}
		if stored != nil {
			return &api.PushIdData{Mid: stored.Mid, Stored: true, Delivered: new(bool)}, nil
		}
		return nil, nil
	}
	if err != nil {
		err = noIdsErr(fmt.Errorf("push to key %q under id %q on comet node %s: %w", key, id, node, err))
		if expire > 0 && gobrpc.NotSent(err) {
			return w.storeOnlyId(ctx, key, id, msg, expire, err)
		}
		return nil, withAdvice(err)
	}
	return &api.PushIdData{Mid: reply.Mid, Dup: reply.Dup}, nil
}

// storeOnlyId is storeOnly under push id: MessageRPC.SavePrivateId keeps
// the message and records the id, or finds the id recorded (a retry: the
// first attempt's outcome stands, its mid is answered). A message node
// without SavePrivateId (1.0.5) keeps it without the id.
func (w *Web) storeOnlyId(ctx context.Context, key, id string, msg json.RawMessage, expire uint, why error) (*api.PushIdData, error) {
	m := w.pubMids.Next()
	cctx, cancel := w.callCtx(ctx)
	defer cancel()
	args := &api.MessageSavePrivateIdArgs{Key: key, Msg: msg, MsgId: m, Expire: expire, Deadline: api.DeadlineOf(cctx), Id: id}
	var reply api.PushIdReply
	err := w.msgs.Call(cctx, api.MessageSavePrivateId, args, &reply)
	if gobrpc.IsNoSuchMethod(err) {
		stored, err := w.storeOnly(ctx, key, msg, expire, why)
		if err != nil {
			return nil, withAdvice(err)
		}
		return &api.PushIdData{Mid: stored.Mid, Stored: true, Delivered: new(bool)}, nil
	}
	if err != nil {
		// The advice is the keeping's: it is the step that may have taken effect.
		if pe := noIdsErr(err); pe != err {
			return nil, pe
		}
		err = messageErr("keep the message", err)
		full := fmt.Errorf("%w; keeping it instead failed: %w", why, err)
		if adv := withAdvice(err); adv != err {
			return nil, &retryError{err: full, advice: adv.(*retryError).advice}
		}
		return nil, full
	}
	if reply.Dup {
		w.log.Debug("push with id: a retry, kept before", "key", key, "id", id, "first_mid", reply.Mid, "why", why)
		return &api.PushIdData{Mid: reply.Mid, Dup: true}, nil
	}
	w.log.Debug("push with id stored, not delivered: no comet took it", "key", key, "id", id, "mid", m, "why", why)
	return &api.PushIdData{Mid: m, Stored: true, Delivered: new(bool)}, nil
}

// idKeyPushes bounds the pushes in flight for one push/mprivate or
// push/room under an id, which go key by key.
const idKeyPushes = 16

// pushKeysId is pushKeys under push id: every key is pushed on its own
// with pushOneId (the id is per key: a retry of the batch pushes again
// only the keys whose first push did not take). It returns the keys that
// failed (fk) and those kept but not delivered (sk), in the order of keys.
func (w *Web) pushKeysId(ctx context.Context, keys []string, id string, msg json.RawMessage, expire uint) (fk, sk []string) {
	type outcome struct{ failed, stored bool }
	out := make([]outcome, len(keys))
	var wg sync.WaitGroup
	slots := make(chan struct{}, idKeyPushes)
	for i, k := range keys {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			data, err := w.pushOneId(ctx, k, id, msg, expire)
			if err != nil {
				w.log.Debug("push to several keys under an id: a key failed", "key", k, "id", id, "err", err)
				out[i].failed = true
				return
			}
			out[i].stored = data != nil && data.Stored
		}()
	}
	wg.Wait()
	for i, k := range keys {
		switch {
		case out[i].failed:
			fk = append(fk, k)
		case out[i].stored:
			sk = append(sk, k)
		}
	}
	return fk, sk
}

// broadcastId is push/all under push id. The message node keeps the
// public message and records the id in one step (MessageRPC.SavePublicId;
// with expire 0 only the id), then every serving comet gets it. A retry
// (the id known) stores nothing and broadcasts again under the FIRST mid:
// the first attempt may have been kept without being sent (its answer
// came after web gave up), and a client that had it drops a public mid
// not above its last one (docs/protocol.md §2.3). The answer is push/all's
// plus "dup":true on a retry.
func (w *Web) broadcastId(ctx context.Context, id string, msg json.RawMessage, expire uint) (any, error) {
	cctx, cancel := w.callCtx(ctx)
	args := &api.MessageSavePublicIdArgs{Msg: msg, MsgId: w.pubMids.Next(), Expire: expire, Deadline: api.DeadlineOf(cctx), Id: id}
	var reply api.PushIdReply
	err := w.msgs.Call(cctx, api.MessageSavePublicId, args, &reply)
	cancel()
	if err != nil {
		if pe := noIdsErr(err); pe != err {
			return nil, pe
		}
		return nil, withAdvice(messageErr("keep the public message under its id", err))
	}
	data := map[string]any{"mid": reply.Mid}
	if reply.Dup {
		data["dup"] = true
	}
	if failed := w.sendBroadcast(ctx, msg, reply.Mid); len(failed) > 0 {
		data["fn"] = failed
	}
	return data, nil
}
