package comet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"gopush/api"
	"gopush/gobrpc"
)

// Pushes under a push id (docs/protocol.md §9.27, docs/reliability.md
// "Push ids"). comet stores the message through MessageRPC.SavePrivateId,
// which records the id with the message in one step; when the message node
// answers that the id was known (a retry), comet stores nothing and
// answers the first mid. What it delivers then:
//
//   - when this comet delivered that (key, id) under that mid itself (it
//     remembers the last pushIdMemory of them), nothing: the key's
//     connections here have it;
//   - otherwise it delivers the message again under the FIRST mid: the
//     first attempt may have been stored without being delivered (its
//     comet's save timed out after Redis ran it), or delivered by another
//     comet before a migration. A client that already has that mid drops
//     it (a mid not above the last one, §2.3); one that had not gets it.

// pushIdMemory bounds how many (key, id) pairs a comet remembers having
// delivered. A retry comes within seconds of its first attempt; an older
// pair forgotten only costs a frame the client drops.
const pushIdMemory = 1 << 16

// pushIds remembers the (key, id) pairs this comet delivered, with their
// mid, the oldest forgotten first. The zero value is ready.
type pushIds struct {
	mu    sync.Mutex
	mids  map[string]int64
	order []string // ring of the map's keys, oldest at next
	next  int

	oldNode sync.Once // "message node without SavePrivateId" logged once
}

func pushIdPair(key, id string) string { return key + "\x00" + id }

// delivered records that (key, id) was delivered here under mid.
func (p *pushIds) delivered(key, id string, mid int64) {
	k := pushIdPair(key, id)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mids == nil {
		p.mids = make(map[string]int64)
		p.order = make([]string, pushIdMemory)
	}
	if _, ok := p.mids[k]; !ok {
		if old := p.order[p.next]; old != "" {
			delete(p.mids, old)
		}
		p.order[p.next] = k
		p.next = (p.next + 1) % len(p.order)
	}
	p.mids[k] = mid
}

// deliveredAs reports whether (key, id) was delivered here under mid.
func (p *pushIds) deliveredAs(key, id string, mid int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.mids[pushIdPair(key, id)]
	return ok && m == mid
}

// pushPrivateId pushes msg to key under push id: a new id is pushed as
// pushPrivate does (stored when expire > 0, then delivered) and its mid
// answered; a known id stores nothing and answers the first mid, with dup
// true. The id is recorded (through the message node) even with expire 0.
// Without a message node, or with a 1.0.5 one (no SavePrivateId), the
// push goes as without an id: it is not deduplicated.
func (c *Comet) pushPrivateId(ctx context.Context, key, id string, msg json.RawMessage, expire uint) (mid int64, dup bool, err error) {
	if err := checkKey(key); err != nil {
		return 0, false, err
	}
	if err := api.CheckPushId(id); err != nil {
		return 0, false, err
	}
	body, err := compactJSON(msg)
	if err != nil {
		return 0, false, errNotJSON
	}
	unlock := c.order.lockKeys([]string{key})
	defer unlock()
	mid = c.mids.Next()
	if c.store == nil {
		if expire > 0 {
			c.stats.pushFailed.Add(1)
			return 0, false, errNoStorage
		}
		c.deliver(key, &message{msg: body, mid: mid}) // no node to record the id: not deduplicated
		return mid, false, nil
	}
	var reply api.PushIdReply
	args := &api.MessageSavePrivateIdArgs{Key: key, Msg: body, MsgId: mid, Expire: expire, Id: id}
	err = c.callStore(ctx, api.MessageSavePrivateId, args, &reply)
	if gobrpc.IsNoSuchMethod(err) {
		c.pushIds.oldNode.Do(func() {
			c.log.Warn("the message node has no SavePrivateId (1.0.5): pushes with an id are not deduplicated", "err", err)
		})
		err = nil
		if expire > 0 {
			var ret int
			old := &api.MessageSavePrivateArgs{Key: key, Msg: body, MsgId: mid, Expire: expire}
			err = c.callStore(ctx, api.MessageSavePrivate, old, &ret)
		}
		reply = api.PushIdReply{Mid: mid}
	}
	if err != nil {
		c.stats.pushFailed.Add(1)
		c.log.Warn("push with id failed: not stored", "key", key, "id", id, "mid", mid, "err", err)
		return 0, false, fmt.Errorf("storing the message of key %q under push id %q: %w", key, id, err)
	}
	if reply.Dup {
		if !c.pushIds.deliveredAs(key, id, reply.Mid) {
			c.deliver(key, &message{msg: body, mid: reply.Mid})
			c.pushIds.delivered(key, id, reply.Mid)
		}
		return reply.Mid, true, nil
	}
	if expire > 0 {
		c.stats.stored.Add(1)
	}
	c.deliver(key, &message{msg: body, mid: mid})
	c.pushIds.delivered(key, id, mid)
	return mid, false, nil
}

// PushPrivateId pushes one message to one key under a push id and answers
// its mid (the first push's for a retry, with Dup). New in gopush; a 1.0.5
// comet does not have it, and web then pushes without the id.
func (r *RPC) PushPrivateId(args *api.CometPushPrivateIdArgs, reply *api.PushIdReply) error {
	if args == nil {
		return errors.New("CometRPC.PushPrivateId: no arguments")
	}
	r.c.stats.rpcPushPrivate.Add(1)
	ctx, cancel, err := r.pushCtx("PushPrivateId", args.Deadline, 1)
	if err != nil {
		return err
	}
	defer cancel()
	mid, dup, err := r.c.pushPrivateId(ctx, args.Key, args.Id, args.Msg, args.Expire)
	if err != nil {
		return err
	}
	reply.Mid, reply.Dup = mid, dup
	return nil
}
