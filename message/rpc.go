package message

import (
	"context"
	"encoding/json"
	"gopush/api"
	"gopush/conf"
	"log/slog"
	"time"
)

// RPC is the MessageRPC receiver (docs/protocol.md §4). Register it under the name
// api.MessageService. Bad input is refused with a *ParamError, whose text
// the caller receives as an rpc.ServerError starting with "param: ".
type RPC struct {
	store   Storage
	rooms   roomStore // rooms and public messages (room.go); nil: none
	lim     limits
	timeout time.Duration // rpc.timeout: bounds the storage work of one call
	log     *slog.Logger
	now     func() time.Time
	met     *metrics      // nil: not measured
	kind    string        // storage.type, for Health
	ids     idStorage     // saves under push ids (save_id.go); nil: the storage type has none (MySQL)
	idTTL   time.Duration // storage.idttl: life of the id of a push with expire 0
}

// newRPC returns the MessageRPC receiver over store, with cfg's input
// limits and rpc.timeout.
func newRPC(store Storage, cfg *conf.Message, log *slog.Logger) *RPC {
	return &RPC{store: store, lim: limitsFor(cfg), timeout: cfg.RPC.Timeout.D(), log: log, now: time.Now,
		ids: idStorageOf(store), idTTL: cfg.Storage.IdTTL.D()}
}

// callCtx bounds the storage work of one call by rpc.timeout: a caller
// (comet, web) gives up after its own rpc.timeout, and work it no longer
// waits for should not hold connections.
func (r *RPC) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.timeout)
}

// saveCtx is callCtx bounded by the caller's deadline too (0: none). It
// fails when that deadline has passed: the caller gave up on the save, and
// storing it now would surprise it (api/deadline.go).
func (r *RPC) saveCtx(deadline int64) (context.Context, context.CancelFunc, error) {
	if api.DeadlinePassed(deadline, r.now()) {
		return nil, nil, api.ErrDeadlinePassed
	}
	ctx, cancel := r.callCtx()
	dctx, dcancel := api.WithDeadline(ctx, deadline)
	return dctx, func() { dcancel(); cancel() }, nil
}

// Ping answers 0; comet and web use it to tell live message nodes.
func (r *RPC) Ping(_ int, reply *int) (err error) {
	defer r.met.call(mPing, time.Now(), &err)
	*reply = api.OK
	return nil
}

// SavePrivate stores one message for one key.
func (r *RPC) SavePrivate(args *api.MessageSavePrivateArgs, reply *int) (err error) {
	defer r.met.call(mSavePrivate, time.Now(), &err)
	if err := r.checkOne(args.Key, args.MsgId, args.Msg, args.Expire); err != nil {
		return r.refused("SavePrivate", err)
	}
	ctx, cancel, err := r.saveCtx(args.Deadline)
	if err != nil {
		r.log.Warn("save private dropped", "key", args.Key, "mid", args.MsgId, "err", err)
		return err
	}
	defer cancel()
	e := Entry{Key: args.Key, MsgId: args.MsgId, Msg: args.Msg, Expire: expireAt(r.now(), args.Expire)}
	if err := r.store.Save(ctx, e); err != nil {
		r.log.Warn("save private failed", "key", args.Key, "mid", args.MsgId, "err", err)
		return err
	}
	*reply = api.OK
	return nil
}

// SavePrivates stores one message under one mid for several keys and
// answers the keys that could not be stored. A bad key, mid or message
// refuses the whole call and stores nothing.
func (r *RPC) SavePrivates(args *api.MessageSavePrivatesArgs, reply *api.MessageSavePrivatesResp) (err error) {
	defer r.met.call(mSavePrivates, time.Now(), &err)
	mids := make([]int64, len(args.Keys))
	for i := range mids {
		mids[i] = args.MsgId
	}
	fkeys, err := r.saveMany("SavePrivates", args.Keys, mids, args.Msg, args.Expire, args.Deadline)
	reply.FKeys = fkeys
	return err
}

// SavePrivatesEach stores one message for several keys, Keys[i] under
// MsgIds[i], and answers the keys that could not be stored. It is new in
// gopush; 1.0.5 nodes do not have it.
func (r *RPC) SavePrivatesEach(args *api.MessageSavePrivatesEachArgs, reply *api.MessageSavePrivatesResp) (err error) {
	defer r.met.call(mSavePrivatesEach, time.Now(), &err)
	if len(args.Keys) != len(args.MsgIds) {
		return r.refused("SavePrivatesEach", paramErr("%d keys but %d mids", len(args.Keys), len(args.MsgIds)))
	}
	fkeys, err := r.saveMany("SavePrivatesEach", args.Keys, args.MsgIds, args.Msg, args.Expire, args.Deadline)
	reply.FKeys = fkeys
	return err
}

func (r *RPC) saveMany(method string, keys []string, mids []int64, msg json.RawMessage, expire uint, deadline int64) ([]string, error) {
	if err := r.lim.checkMsg(msg); err != nil {
		return nil, r.refused(method, err)
	}
	if err := r.lim.checkExpire(expire); err != nil {
		return nil, r.refused(method, err)
	}
	for i, k := range keys {
		if err := r.lim.checkKey(k); err != nil {
			return nil, r.refused(method, err)
		}
		if err := r.lim.checkMid(mids[i]); err != nil {
			return nil, r.refused(method, err)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	at := expireAt(r.now(), expire)
	es := make([]Entry, len(keys))
	for i, k := range keys {
		es[i] = Entry{Key: k, MsgId: mids[i], Msg: msg, Expire: at}
	}
	ctx, cancel, err := r.saveCtx(deadline)
	if err != nil {
		r.log.Warn("save privates dropped", "method", method, "keys", len(keys), "err", err)
		return nil, err
	}
	defer cancel()
	errs := r.store.SaveMany(ctx, es)
	var fkeys []string
	var first error
	for i, err := range errs {
		if err != nil {
			fkeys = append(fkeys, es[i].Key)
			if first == nil {
				first = err
			}
		}
	}
	if first != nil {
		r.log.Warn("save privates: some keys failed", "method", method, "failed", len(fkeys), "keys", len(keys), "err", first)
	}
	return fkeys, nil
}

// GetPrivate answers the key's unexpired messages newer than MsgId, in
// ascending mid order.
func (r *RPC) GetPrivate(args *api.MessageGetPrivateArgs, reply *api.MessageGetResp) (err error) {
	defer r.met.call(mGetPrivate, time.Now(), &err)
	if err := r.lim.checkKey(args.Key); err != nil {
		return r.refused("GetPrivate", err)
	}
	if err := r.lim.checkMid(args.MsgId); err != nil {
		return r.refused("GetPrivate", err)
	}
	ctx, cancel := r.callCtx()
	defer cancel()
	msgs, err := r.store.Get(ctx, args.Key, args.MsgId)
	if err != nil {
		r.log.Warn("get private failed", "key", args.Key, "mid", args.MsgId, "err", err)
		return err
	}
	reply.Msgs = msgs
	return nil
}

// DelPrivate removes every offline message of the key.
func (r *RPC) DelPrivate(key string, reply *int) (err error) {
	defer r.met.call(mDelPrivate, time.Now(), &err)
	if err := r.lim.checkKey(key); err != nil {
		return r.refused("DelPrivate", err)
	}
	ctx, cancel := r.callCtx()
	defer cancel()
	if err := r.store.Del(ctx, key); err != nil {
		r.log.Warn("del private failed", "key", key, "err", err)
		return err
	}
	*reply = api.OK
	return nil
}

func (r *RPC) checkOne(key string, mid int64, msg json.RawMessage, expire uint) error {
	if err := r.lim.checkKey(key); err != nil {
		return err
	}
	if err := r.lim.checkMid(mid); err != nil {
		return err
	}
	if err := r.lim.checkMsg(msg); err != nil {
		return err
	}
	return r.lim.checkExpire(expire)
}

// refused logs bad input at debug level (it is the caller's problem, and
// the caller sees it) and hands the error back.
func (r *RPC) refused(method string, err error) error {
	r.log.Debug("refused bad input", "method", method, "err", err)
	return err
}
