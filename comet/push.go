package comet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"gopush/api"
	"gopush/gobrpc"
	"slices"
	"sync"
)

// caller is what pushes need from the message-node pool.
type caller interface {
	Call(ctx context.Context, method string, args, reply any) error
}

// closer is the pool's Close.
type closer interface{ Close() }

// orderLocks keeps pushes to one key in order: a push holds its key's
// stripe from taking a mid until its frames are queued, across the
// MessageRPC call that stores it, so a later push to the key can neither
// get a smaller mid nor overtake it. Striping by a hash of the key needs no
// per-key state, so keys that are offline cost nothing.
type orderLocks struct {
	stripes [orderStripes]sync.Mutex
}

// orderStripes is many, so that two keys rarely share one: a PushBatch
// holds the stripes of all its keys while it stores (push_batch.go), and
// web sends concurrent single pushes as PushBatch calls, so a live batch
// waits for a stored one only when one of its keys shares a stripe with
// one of the stored batch's (128 KiB of mutexes).
const orderStripes = 16384

func (o *orderLocks) stripe(key string) int { return int(hashKey(key) % orderStripes) }

// lockKey locks the stripe of one key and returns it for the caller to
// unlock (lockKeys without its allocations).
func (o *orderLocks) lockKey(key string) *sync.Mutex {
	m := &o.stripes[o.stripe(key)]
	m.Lock()
	return m
}

// lockKeys locks the stripes of keys in ascending order (so that two
// batches cannot deadlock) and returns the function that unlocks them.
func (o *orderLocks) lockKeys(keys []string) (unlock func()) {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, o.stripe(k))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		o.stripes[i].Lock()
	}
	return func() {
		for _, i := range idx {
			o.stripes[i].Unlock()
		}
	}
}

// Push errors returned to the RPC caller.
var (
	errEmptyKey   = errors.New("empty key")
	errLongKey    = fmt.Errorf("key longer than %d bytes", api.MaxKeyLen)
	errNotJSON    = errors.New("message is not valid JSON")
	errNoStorage  = errors.New("no message node to store the message")
	errNoPushKeys = errors.New("no keys")
)

func checkKey(key string) error {
	switch {
	case key == "":
		return errEmptyKey
	case len(key) > api.MaxKeyLen:
		return errLongKey
	}
	return nil
}

// pushPrivate gives msg a mid, stores it when expire > 0 (a storage failure
// fails the push and delivers nothing), then queues it to every connection
// of key.
func (c *Comet) pushPrivate(ctx context.Context, key string, msg json.RawMessage, expire uint) error {
	if err := checkKey(key); err != nil {
		return err
	}
	body, err := compactJSON(msg)
	if err != nil {
		return errNotJSON
	}
	stripe := c.order.lockKey(key)
	defer stripe.Unlock()
	mid := c.mids.Next()
	if expire > 0 {
		// Grouped with the saves of other keys made meanwhile into one
		// SaveBatch call; this key's stripe, held, keeps its order.
		if err := c.saves.save(ctx, api.MessageSaveEntry{Key: key, Msg: body, MsgId: mid, Expire: expire}); err != nil {
			c.stats.pushFailed.Add(1)
			c.log.Warn("push failed: message not stored", "key", key, "mid", mid, "err", err)
			return fmt.Errorf("storing the message of key %q: %w", key, err)
		}
		c.stats.stored.Add(1)
	}
	c.deliver(key, &message{msg: body, mid: mid})
	return nil
}

// pushPrivates pushes msg to several keys, each with its own mid. Keys it
// could not store (or that are empty or too long) are returned and get
// nothing; the others are delivered. A repeated key is pushed once.
func (c *Comet) pushPrivates(ctx context.Context, keys []string, msg json.RawMessage, expire uint) ([]string, error) {
	body, err := compactJSON(msg)
	if err != nil {
		return nil, errNotJSON
	}
	var failed []string
	valid := make([]string, 0, len(keys))
	seen := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		if checkKey(k) != nil {
			failed = append(failed, k)
			continue
		}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		valid = append(valid, k)
	}
	if len(valid) == 0 {
		return failed, nil
	}

	unlock := c.order.lockKeys(valid)
	defer unlock()
	mids := make([]int64, len(valid))
	for i := range mids {
		mids[i] = c.mids.Next()
	}
	var notStored map[string]struct{}
	if expire > 0 {
		fkeys, err := c.storeEach(ctx, valid, mids, body, expire)
		if err != nil {
			c.stats.pushFailed.Add(int64(len(valid)))
			c.log.Warn("push to several keys failed: messages not stored", "keys", len(valid), "err", err)
			return append(failed, valid...), nil
		}
		c.stats.stored.Add(int64(len(valid) - len(fkeys)))
		if len(fkeys) > 0 {
			c.stats.pushFailed.Add(int64(len(fkeys)))
			notStored = make(map[string]struct{}, len(fkeys))
			for _, k := range fkeys {
				notStored[k] = struct{}{}
			}
		}
	}
	if len(notStored) > 0 {
		keep := 0
		for i, k := range valid {
			if _, bad := notStored[k]; bad {
				failed = append(failed, k)
				continue
			}
			valid[keep], mids[keep] = k, mids[i]
			keep++
		}
		valid, mids = valid[:keep], mids[:keep]
	}
	c.deliverEach(valid, mids, body)
	return failed, nil
}

// deliverEach queues body to every connection of keys[i] under mids[i]
// (one message per key; the frames of each built once), on the calling
// goroutine, visiting the connections in accept order as fanOut does (it
// makes the writes cheaper; see there): spread over cores, the shares'
// lookups and counters fought over the same cache lines and cost more CPU
// per delivery than they saved (docs/performance.md, Round two).
func (c *Comet) deliverEach(keys []string, mids []int64, body json.RawMessage) {
	if len(keys) == 0 {
		return
	}
	msgs := make([]message, len(keys)) // one allocation for all
	to := make([]connByID, 0, len(keys))
	for i, k := range keys {
		m := &msgs[i]
		m.msg, m.mid = body, mids[i]
		for _, cn := range c.hub.conns(k) {
			to = append(to, connByID{id: cn.id, cn: cn, m: m})
		}
	}
	sortByID(to)
	n := 0
	for _, d := range to {
		if d.cn.sendMessage(d.m) {
			n++
		}
	}
	c.stats.pushed.Add(int64(len(keys)))
	c.stats.framesQueued.Add(int64(n))
}

// storeEach stores body for keys, keys[i] under mids[i], and returns the
// keys the node could not store. A 1.0.5 message node does not know
// SavePrivatesEach; then every key is stored under one new mid (larger than
// all of mids, so the order of each key is kept) and mids is updated to it.
func (c *Comet) storeEach(ctx context.Context, keys []string, mids []int64, body json.RawMessage, expire uint) ([]string, error) {
	var resp api.MessageSavePrivatesResp
	args := &api.MessageSavePrivatesEachArgs{Keys: keys, MsgIds: mids, Msg: body, Expire: expire}
	err := c.callStore(ctx, api.MessageSavePrivatesEach, args, &resp)
	if err == nil || !gobrpc.IsNoSuchMethod(err) {
		return resp.FKeys, err
	}
	return c.storeOneByOne(ctx, keys, mids, body, expire), nil
}

// oldNodeStores bounds the SavePrivate calls in flight for one batch sent
// to a 1.0.5 message node.
const oldNodeStores = 16

// storeOneByOne stores a batch on a 1.0.5 message node, which has no
// SavePrivatesEach: its SavePrivates takes one mid for all keys, and keys
// pushed together must not share one (docs/protocol.md §9.8), so every key gets its own
// SavePrivate call. It returns the keys that could not be stored.
func (c *Comet) storeOneByOne(ctx context.Context, keys []string, mids []int64, body json.RawMessage, expire uint) []string {
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
		slots  = make(chan struct{}, oldNodeStores)
	)
	for i, key := range keys {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			var reply int
			args := &api.MessageSavePrivateArgs{Key: key, Msg: body, MsgId: mids[i], Expire: expire}
			if err := c.callStore(ctx, api.MessageSavePrivate, args, &reply); err != nil {
				mu.Lock()
				failed = append(failed, key)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}

func (c *Comet) callStore(ctx context.Context, method string, args, reply any) error {
	if c.store == nil {
		return errNoStorage
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RPC.Timeout.D())
	defer cancel()
	// The message node drops a save it gets after this call gave up.
	dl := api.DeadlineOf(ctx)
	switch a := args.(type) {
	case *api.MessageSavePrivateArgs:
		a.Deadline = dl
	case *api.MessageSavePrivatesArgs:
		a.Deadline = dl
	case *api.MessageSavePrivatesEachArgs:
		a.Deadline = dl
	case *api.MessageSaveBatchArgs:
		a.Deadline = dl
	case *api.MessageSavePrivateIdArgs:
		a.Deadline = dl
	}
	return c.store.Call(ctx, method, args, reply)
}

// deliver queues m to every connection of key, each in the form and
// protocol it wants; the frames are built once for all of them.
func (c *Comet) deliver(key string, m *message) {
	c.stats.pushed.Add(1)
	for _, cn := range c.hub.conns(key) {
		if cn.sendMessage(m) {
			c.stats.framesQueued.Add(1)
		}
	}
}
