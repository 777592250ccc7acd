package message

import (
	"context"
	"errors"
	"time"

	"gopush/api"
)

// Push ids (docs/protocol.md §9.27, docs/reliability.md "Push ids"): a
// save under an id stores the message and records the id in one step; a
// save whose id is recorded already stores nothing and answers the first
// mid.

// idStorage is a Storage that can save under a push id.
type idStorage interface {
	// SaveId stores e (nothing when e.Expire is 0) and records id for e.Key
	// in one atomic step, unless the (e.Key, id) pair is recorded already:
	// then it stores nothing and answers the recorded mid with dup true.
	// The record lives as long as the message, or idTTL when e.Expire is
	// 0. deadline (unix nanoseconds, 0: none) is checked by the storage
	// engine itself when the step runs: a step that runs after it stores
	// nothing and fails with api.ErrDeadlinePassed.
	SaveId(ctx context.Context, e Entry, id string, idTTL time.Duration, deadline int64) (mid int64, dup bool, err error)
}

// errNoIds answers a save under an id on a storage type that cannot keep
// ids.
var errNoIds = errors.New(api.NoPushIds)

// idStorageOf returns the id saver behind s, or nil when its type has none.
func idStorageOf(s Storage) idStorage {
	if m, ok := s.(measuredStorage); ok {
		s = m.Storage
	}
	ids, _ := s.(idStorage)
	return ids
}

// SavePrivateId stores one message for one key under a push id, or with
// Expire 0 only records the id (for storage.idttl). A retry with the same
// key and id within the record's life stores nothing and answers the
// first mid with Dup. It is new in gopush; 1.0.5 nodes do not have it.
func (r *RPC) SavePrivateId(args *api.MessageSavePrivateIdArgs, reply *api.PushIdReply) (err error) {
	defer r.met.call(mSavePrivateId, time.Now(), &err)
	if err := r.checkId(args); err != nil {
		return r.refused("SavePrivateId", err)
	}
	if r.ids == nil {
		return errNoIds
	}
	ctx, cancel, err := r.saveCtx(args.Deadline)
	if err != nil {
		r.log.Warn("save private with id dropped", "key", args.Key, "id", args.Id, "mid", args.MsgId, "err", err)
		return err
	}
	defer cancel()
	e := Entry{Key: args.Key, MsgId: args.MsgId, Msg: args.Msg}
	if args.Expire > 0 {
		e.Expire = expireAt(r.now(), args.Expire)
	}
	mid, dup, err := r.ids.SaveId(ctx, e, args.Id, r.idTTL, args.Deadline)
	if err != nil {
		r.log.Warn("save private with id failed", "key", args.Key, "id", args.Id, "mid", args.MsgId, "err", err)
		return err
	}
	if dup {
		r.log.Debug("save private with id: a retry, nothing stored", "key", args.Key, "id", args.Id, "first_mid", mid)
	}
	reply.Mid, reply.Dup = mid, dup
	return nil
}

// checkId checks a SavePrivateId call: as SavePrivate, except that Expire
// may be 0, and the id must be a valid push id.
func (r *RPC) checkId(args *api.MessageSavePrivateIdArgs) error {
	if err := api.CheckPushId(args.Id); err != nil {
		return paramErr("%v", err)
	}
	if err := r.lim.checkKey(args.Key); err != nil {
		return err
	}
	if err := r.lim.checkMid(args.MsgId); err != nil {
		return err
	}
	return r.lim.checkMsg(args.Msg)
}

// publicIdStorage is a room store that can keep a public message under a
// push id (Redis).
type publicIdStorage interface {
	// SavePublicId is idStorage.SaveId for the public messages' set.
	SavePublicId(ctx context.Context, e Entry, id string, idTTL time.Duration, deadline int64) (mid int64, dup bool, err error)
}

// SavePublicId keeps a public message (push/all) under a push id, or with
// Expire 0 only records the id: a retry with the same id within the
// record's life stores nothing and answers the first mid with Dup. New in
// gopush.
func (r *RPC) SavePublicId(args *api.MessageSavePublicIdArgs, reply *api.PushIdReply) (err error) {
	defer r.met.call(mSavePublicId, time.Now(), &err)
	if args == nil {
		return r.refused("SavePublicId", paramErr("no arguments"))
	}
	if err := api.CheckPushId(args.Id); err != nil {
		return r.refused("SavePublicId", paramErr("%v", err))
	}
	if err := r.lim.checkMid(args.MsgId); err != nil {
		return r.refused("SavePublicId", err)
	}
	if err := r.lim.checkMsg(args.Msg); err != nil {
		return r.refused("SavePublicId", err)
	}
	ids, ok := r.roomsOf().(publicIdStorage)
	if !ok {
		return errNoIds
	}
	ctx, cancel, err := r.saveCtx(args.Deadline)
	if err != nil {
		r.log.Warn("save public with id dropped", "id", args.Id, "mid", args.MsgId, "err", err)
		return err
	}
	defer cancel()
	e := Entry{MsgId: args.MsgId, Msg: args.Msg}
	if args.Expire > 0 {
		e.Expire = expireAt(r.now(), args.Expire)
	}
	mid, dup, err := ids.SavePublicId(ctx, e, args.Id, r.idTTL, args.Deadline)
	if err != nil {
		r.log.Warn("save public with id failed", "id", args.Id, "mid", args.MsgId, "err", err)
		return err
	}
	reply.Mid, reply.Dup = mid, dup
	return nil
}
