package message

import (
	"cmp"
	"slices"
	"time"

	"gopush/api"
)

// SaveBatch stores many messages, each entry with its own key, mid,
// message and expiry, through the storage's SaveMany (one pipeline or
// multi-row INSERT per shard), and answers the entries not stored. Unlike
// the other save methods, a bad entry (empty or over-long key, negative
// mid, message empty, too large or not JSON, expire 0) does not refuse the
// call: it fails alone, with its reason, and the others are stored. It is
// new in gopush (docs/protocol.md §4.3); 1.0.5 nodes do not have it.
func (r *RPC) SaveBatch(args *api.MessageSaveBatchArgs, reply *api.MessageSaveBatchResp) (err error) {
	defer r.met.call(mSaveBatch, time.Now(), &err)
	if args == nil {
		return r.refused("SaveBatch", paramErr("no arguments"))
	}
	now := r.now()
	es := make([]Entry, 0, len(args.Entries))
	idx := make([]int, 0, len(args.Entries)) // es[j] is args.Entries[idx[j]]
	var failed []api.BatchFailure
	for i, a := range args.Entries {
		if err := r.checkOne(a.Key, a.MsgId, a.Msg, a.Expire); err != nil {
			failed = append(failed, api.BatchFailure{Entry: i, Key: a.Key, Why: err.Error()})
			continue
		}
		if api.DeadlinePassed(a.Deadline, now) {
			// Its caller has given up: storing it now would surprise it.
			failed = append(failed, api.BatchFailure{Entry: i, Key: a.Key, Why: api.ErrDeadlinePassed.Error()})
			continue
		}
		es = append(es, Entry{Key: a.Key, MsgId: a.MsgId, Msg: a.Msg, Expire: expireAt(now, a.Expire)})
		idx = append(idx, i)
	}
	if len(failed) > 0 {
		r.log.Debug("save batch: entries refused", "refused", len(failed), "entries", len(args.Entries), "first", failed[0].Why)
	}
	if len(es) > 0 {
		ctx, cancel, err := r.saveCtx(args.Deadline)
		if err != nil {
			r.log.Warn("save batch dropped", "entries", len(args.Entries), "err", err)
			return err
		}
		defer cancel()
		errs := r.store.SaveMany(ctx, es)
		var first error
		n := 0
		for j, err := range errs {
			if err == nil {
				continue
			}
			failed = append(failed, api.BatchFailure{Entry: idx[j], Key: es[j].Key, Why: err.Error()})
			n++
			if first == nil {
				first = err
			}
		}
		if first != nil {
			r.log.Warn("save batch: some entries not stored", "failed", n, "entries", len(es), "err", first)
		}
	}
	// Refused entries were listed before those the storage failed.
	slices.SortFunc(failed, func(a, b api.BatchFailure) int { return cmp.Compare(a.Entry, b.Entry) })
	reply.Failed = failed
	return nil
}
