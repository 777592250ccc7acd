package message

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/api"
	"gopush/conf"
	"gopush/ketama"
)

// saveScript adds one member to a key's sorted set, trims the set to the
// newest ARGV[3] members (answering how many it removed) and makes sure the set lives at least ARGV[4]
// seconds (it never shortens a longer TTL). A set written by gopush-cluster
// 1.0.5 has no TTL; it gets one that covers its longest-lived member, read
// from the members' "expire" fields (ARGV[5] is now in unix seconds).
//
// The trim goes by score, a double: mids less than about 4 apart share one,
// and among equal scores Redis orders members by their bytes, so at the
// edge of the kept window an older message can outlive a newer one by a
// few hundred nanoseconds of mid. Reads sort by the exact mid.
//
// KEYS[1] key; ARGV: mid, member, store, seconds to live, now.
var saveScript = redis.NewScript(1, saveLua)

// saveLua is the source of saveScript (storage_redis_id.go builds on it).
const saveLua = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local trimmed = redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
local want = tonumber(ARGV[4])
local ttl = redis.call('TTL', KEYS[1])
if ttl == -1 then
  local now = tonumber(ARGV[5])
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local ok, v = pcall(cjson.decode, m)
    if ok and type(v) == 'table' and tonumber(v.expire) then
      local left = tonumber(v.expire) - now + 1
      if left > want then want = left end
    end
  end
end
if ttl < want then
  redis.call('EXPIRE', KEYS[1], want)
end
return trimmed
`

// saveNoTTLScript is saveScript for redis.keyttl = false: it adds and
// trims, and leaves the set's TTL alone (none on a set written by 1.0.5 or
// by gopush in this mode), as a 1.0.5 message node does. Same KEYS and
// ARGV as saveScript; the last two are not used.
var saveNoTTLScript = redis.NewScript(1, saveNoTTLLua)

// saveNoTTLLua is the source of saveNoTTLScript.
const saveNoTTLLua = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
`

// cleanQueue is how many expired members may wait for removal; more are
// dropped (the next read finds them again, and the set's TTL ends them).
const cleanQueue = 1024

// readPages bounds how many pages of a set one read walks through when
// expired members fill a page.
const readPages = 4

// redisShard is one Redis server of redis.source.
type redisShard struct {
	name    string
	addr    string // network@address, without the password, for errors
	pool    *redis.Pool
	timeout time.Duration // read/write timeout of a command (redis.timeout of the dial)

	// wait > 0: a save is acknowledged by that many replicas (WAIT) within
	// waitTimeout, or fails.
	wait        int
	waitTimeout time.Duration

	saves *groupCommit // coalesces concurrent saves (nil on room shards)
}

// errUnacknowledged: the primary stored a message but too few replicas
// acknowledged it in time; a failover may still lose it.
var errUnacknowledged = errors.New("not acknowledged by enough replicas")

// acknowledge waits, when the shard asks for acknowledged writes, until
// redis.wait replicas have every write made so far on conn.
func (s *redisShard) acknowledge(conn redis.Conn) error {
	if s.wait <= 0 {
		return nil
	}
	n, err := redis.Int(redis.DoWithTimeout(conn, s.waitTimeout+s.timeout, "WAIT", s.wait, s.waitTimeout.Milliseconds()))
	if err != nil {
		return err
	}
	if n < s.wait {
		return fmt.Errorf("%w: %d of %d replicas within %v", errUnacknowledged, n, s.wait, s.waitTimeout)
	}
	return nil
}

// budget is how long a command may take: what is left of ctx, at most the
// shard's timeout. The store path reads with this timeout instead of
// redigo's DoContext or ReceiveContext, which start a goroutine per command
// to watch ctx: a goroutine start, its stack growth and a wake-up per
// stored message. A ctx cancelled while a command runs no longer aborts
// it; its deadline still does.
func (s *redisShard) budget(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t := s.timeout
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return 0, context.DeadlineExceeded
		}
		if t <= 0 || left < t {
			t = left
		}
	}
	return t, nil
}

func (s *redisShard) wrap(err error) error {
	return fmt.Errorf("redis shard %s (%s): %w", s.name, s.addr, err)
}

// staleMember is an expired member waiting to be removed.
type staleMember struct {
	shard  *redisShard
	key    string
	member []byte
}

// RedisStorage keeps messages in Redis sorted sets (docs/protocol.md §7), sharded by
// a ketama ring over the shard names.
type RedisStorage struct {
	ring   *ketama.Ring
	shards map[string]*redisShard
	// roomShards are the same servers in database redis.roomdb, where
	// rooms and public messages live: no subscriber key (database 0) can
	// name them.
	roomShards map[string]*redisShard
	store      int
	save       *redis.Script // saveScript, or saveNoTTLScript when redis.keyttl is off
	log        *slog.Logger
	now        func() time.Time
	met        atomic.Pointer[metrics] // nil: not measured (metrics.go)

	clean     chan staleMember
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	idDB int // redis.roomdb: where push ids are recorded (storage_redis_id.go)
}

// NewRedisStorage builds the shards of cfg.Redis.Source. Connections are
// made on first use, so a shard that is down at start-up only fails the
// calls for its keys.
func NewRedisStorage(cfg *conf.Message, log *slog.Logger) (*RedisStorage, error) {
	if len(cfg.Redis.Source) == 0 {
		return nil, errors.New("redis.source: no shard")
	}
	rs := &RedisStorage{
		shards:     make(map[string]*redisShard),
		roomShards: make(map[string]*redisShard),
		store:      cfg.Storage.Store,
		save:       saveScript,
		log:        log,
		now:        time.Now,
		clean:      make(chan staleMember, cleanQueue),
		done:       make(chan struct{}),
		idDB:       cfg.Redis.RoomDB,
	}
	b := ketama.New(ketama.DefaultBase)
	for k, src := range cfg.Redis.Source {
		name, weight, err := conf.ParseShardName(k)
		if err != nil {
			return nil, fmt.Errorf("redis.source: %w", err)
		}
		if _, dup := rs.shards[name]; dup {
			return nil, fmt.Errorf("redis.source: shard name %q is used twice", name)
		}
		addr, err := conf.ParseRedisAddr(src)
		if err != nil {
			return nil, fmt.Errorf("redis.source.%s: %w", k, err)
		}
		rs.shards[name] = &redisShard{
			name:        name,
			addr:        addr.Network + "@" + addr.Address,
			pool:        newRedisPool(addr, cfg, 0),
			timeout:     cfg.Redis.DialTimeout.D(),
			wait:        cfg.Redis.Wait,
			waitTimeout: cfg.Redis.WaitTimeout.D(),
		}
		rs.roomShards[name] = &redisShard{
			name:    name,
			addr:    fmt.Sprintf("%s@%s db %d", addr.Network, addr.Address, cfg.Redis.RoomDB),
			pool:    newRedisPool(addr, cfg, cfg.Redis.RoomDB),
			timeout: cfg.Redis.DialTimeout.D(),
		}
		s := rs.shards[name]
		s.saves = newGroupCommit(cfg.Storage.Batch, s.wrap, func(ctx context.Context, es []Entry, errs []error) {
			rs.flushSaves(ctx, s, es, errs)
		})
		b.Add(name, weight)
	}
	rs.ring = b.Build()
	if cfg.Redis.KeyTTL {
		log.Info("redis key sets get a TTL that covers their newest message (redis.keyttl = true)")
	} else {
		rs.save = saveNoTTLScript
		log.Info("redis key sets get no TTL, as 1.0.5 message nodes write them (redis.keyttl = false)")
	}
	rs.wg.Add(1)
	go rs.cleaner()
	return rs, nil
}

// newRedisPool returns a pool of connections to addr that use database db.
func newRedisPool(addr conf.RedisAddr, cfg *conf.Message, db int) *redis.Pool {
	timeout := cfg.Redis.DialTimeout.D()
	opts := []redis.DialOption{
		redis.DialConnectTimeout(timeout),
		redis.DialReadTimeout(timeout),
		redis.DialWriteTimeout(timeout),
		redis.DialDatabase(db),
	}
	if addr.Password != "" {
		opts = append(opts, redis.DialPassword(addr.Password))
	}
	dial := func(ctx context.Context) (redis.Conn, error) {
		return redis.DialContext(ctx, addr.Network, addr.Address, opts...)
	}
	var sm *sentinelMaster
	if addr.Network == "sentinel" {
		sm = newSentinelMaster(addr, timeout)
		dial = func(ctx context.Context) (redis.Conn, error) { return sm.dial(ctx, opts...) }
	}
	return &redis.Pool{
		MaxIdle:     cfg.Redis.Idle,
		MaxActive:   cfg.Redis.Active,
		IdleTimeout: cfg.Redis.Timeout.D(),
		Wait:        true,
		DialContext: dial,
		// A connection that sat idle may be dead (the shard restarted):
		// check it before use, so the first call after a restart works.
		// One to a master that has since been demoted is dropped at once.
		TestOnBorrow: func(c redis.Conn, since time.Time) error {
			if sm != nil && !sm.current(c) {
				return errDemoted
			}
			if time.Since(since) < time.Second {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}
}

// ShardOf returns the name of the shard that holds key.
func (rs *RedisStorage) ShardOf(key string) string { return rs.ring.Get(key) }

func (rs *RedisStorage) shard(key string) *redisShard { return rs.shards[rs.ring.Get(key)] }

// roomShard returns the shard of a room id or of the public key, in the
// room database.
func (rs *RedisStorage) roomShard(name string) *redisShard { return rs.roomShards[rs.ring.Get(name)] }

// member is the stored form of a message: {"msg":..,"expire":..,"mid":..}.
func member(e Entry) []byte {
	b := make([]byte, 0, len(e.Msg)+64)
	b = append(b, `{"msg":`...)
	b = append(b, e.Msg...)
	b = append(b, `,"expire":`...)
	b = strconv.AppendInt(b, e.Expire, 10)
	b = append(b, `,"mid":`...)
	b = strconv.AppendInt(b, e.MsgId, 10)
	return append(b, '}')
}

func (rs *RedisStorage) saveArgs(e Entry, now int64) []any {
	ttl := e.Expire - now + 1
	if ttl < 1 {
		ttl = 1
	}
	return []any{e.Key, e.MsgId, member(e), rs.store, ttl, now}
}

// Save stores one message. Saves made at the same time on one shard share
// one pipelined round trip (groupcommit.go).
func (rs *RedisStorage) Save(ctx context.Context, e Entry) error {
	return rs.shard(e.Key).saves.saveOne(ctx, e)
}

// SaveMany stores several messages, through each shard's group commit,
// the shards in parallel. errs[i] is nil when es[i] was stored.
func (rs *RedisStorage) SaveMany(ctx context.Context, es []Entry) []error {
	return saveByShard(ctx, es, func(e Entry) *groupCommit { return rs.shard(e.Key).saves })
}

// saveByShard stores es through the group commit that shardOf picks for
// each entry, the shards in parallel, and returns one error per entry.
func saveByShard(ctx context.Context, es []Entry, shardOf func(Entry) *groupCommit) []error {
	errs := make([]error, len(es))
	if len(es) == 0 {
		return errs
	}
	first := shardOf(es[0])
	var byShard map[*groupCommit][]int
	for i := 1; i < len(es); i++ {
		if g := shardOf(es[i]); g != first || byShard != nil {
			if byShard == nil {
				byShard = map[*groupCommit][]int{first: make([]int, i)}
				for j := range i {
					byShard[first][j] = j
				}
			}
			byShard[g] = append(byShard[g], i)
		}
	}
	if byShard == nil { // one shard: no copies
		first.save(ctx, es, errs)
		return errs
	}
	var wg sync.WaitGroup
	for g, idx := range byShard {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := make([]Entry, len(idx))
			for j, i := range idx {
				sub[j] = es[i]
			}
			subErrs := make([]error, len(idx))
			g.save(ctx, sub, subErrs)
			for j, i := range idx {
				errs[i] = subErrs[j]
			}
		}()
	}
	wg.Wait()
	return errs
}

// flushSaves is the shard's group commit flush: it stores es in one
// pipelined round trip (one EVALSHA each) on one connection, then waits
// for the replicas' acknowledgement once for all of them when redis.wait
// asks for it, and writes each entry's outcome into errs.
func (rs *RedisStorage) flushSaves(ctx context.Context, s *redisShard, es []Entry, errs []error) {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		fill(errs, s.wrap(err))
		return
	}
	defer conn.Close()
	timeout, err := s.budget(ctx)
	if err != nil {
		fill(errs, s.wrap(err))
		return
	}
	if err := rs.sendBatch(conn, timeout, s, es, errs, rs.now().Unix()); err != nil {
		return
	}
	if err := s.acknowledge(conn); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = s.wrap(err)
			}
		}
	}
}

// sendBatch pipelines the saves of es, each read back within timeout. It
// returns an error only when the connection broke; every entry has its
// outcome in errs.
func (rs *RedisStorage) sendBatch(conn redis.Conn, timeout time.Duration, s *redisShard, es []Entry, errs []error, now int64) error {
	todo := make([]int, len(es))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; attempt < 2 && len(todo) > 0; attempt++ {
		for _, i := range todo {
			rs.save.SendHash(conn, rs.saveArgs(es[i], now)...)
		}
		if err := conn.Flush(); err != nil {
			for _, i := range todo {
				errs[i] = s.wrap(err)
			}
			return err
		}
		var noScript []int
		for n, i := range todo {
			v, err := redis.ReceiveWithTimeout(conn, timeout)
			switch {
			case err == nil:
				errs[i] = nil
				if n, ok := v.(int64); ok {
					rs.met.Load().trimmed(s.name, int(n))
				}
			case conn.Err() != nil: // the connection broke: the rest are lost too
				for _, j := range todo[n:] {
					errs[j] = s.wrap(err)
				}
				return err
			case strings.HasPrefix(err.Error(), "NOSCRIPT"):
				noScript = append(noScript, i)
				errs[i] = s.wrap(err)
			default:
				errs[i] = s.wrap(err)
			}
		}
		if len(noScript) == 0 {
			return nil
		}
		// The shard does not know the script yet (first use, or it was
		// restarted): load it and send those entries again.
		if err := rs.save.Load(conn); err != nil {
			for _, i := range noScript {
				errs[i] = s.wrap(err)
			}
			if conn.Err() != nil {
				return err
			}
			return nil
		}
		todo = noScript
	}
	return nil
}

// Get returns the key's newest unexpired messages with a mid above after,
// at most storage.store of them, in ascending mid order. Expired members
// are queued for removal.
func (rs *RedisStorage) Get(ctx context.Context, key string, after int64) ([]*api.Message, error) {
	s := rs.shard(key)
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer conn.Close()

	now := rs.now().Unix()
	page := rs.store + 8
	// Scores are doubles and mids are above 2^53, so the score of a newer
	// member may equal float64(after): ask down to float64(after)
	// inclusive and compare the exact mids below.
	min := strconv.FormatInt(after, 10)
	var out []*api.Message
	for p := 0; p < readPages && len(out) < rs.store; p++ {
		vals, err := redis.ByteSlices(redis.DoContext(conn, ctx, "ZREVRANGEBYSCORE", key, "+inf", min,
			"WITHSCORES", "LIMIT", p*page, page))
		if err != nil {
			return nil, s.wrap(err)
		}
		out = rs.appendLive(out, s, key, vals, after, now)
		if len(vals)/2 < page {
			break
		}
	}
	return newestAscending(out, rs.store), nil
}

// appendLive appends to out the messages of vals (members and scores of
// the sorted set key, as ZRANGE ... WITHSCORES returns them) whose exact
// mid is above after and that have not expired at now. Expired members are
// queued for removal; a member that cannot be decoded is logged and
// skipped.
func (rs *RedisStorage) appendLive(out []*api.Message, s *redisShard, key string, vals [][]byte, after, now int64) []*api.Message {
	for i := 0; i+1 < len(vals); i += 2 {
		m, err := decodeMember(vals[i], vals[i+1])
		if err != nil {
			rs.log.Warn("skipping a stored message that cannot be read", "key", key, "shard", s.name, "err", err)
			continue
		}
		if m.MsgId <= after {
			continue
		}
		if m.expire <= now {
			rs.queueClean(s, key, vals[i])
			continue
		}
		out = append(out, &m.Message)
	}
	return out
}

// newestAscending returns the newest n of msgs in ascending mid order.
// Members with equal scores come back in byte order, not mid order, and a
// save retried in another second leaves two members with one mid: sort by
// the exact mid, drop repeats, keep the newest.
func newestAscending(msgs []*api.Message, n int) []*api.Message {
	slices.SortFunc(msgs, func(a, b *api.Message) int { return cmp.Compare(a.MsgId, b.MsgId) })
	msgs = slices.CompactFunc(msgs, func(a, b *api.Message) bool { return a.MsgId == b.MsgId })
	if len(msgs) > n {
		msgs = msgs[len(msgs)-n:]
	}
	return msgs
}

type decoded struct {
	api.Message
	expire int64
}

func decodeMember(raw, score []byte) (decoded, error) {
	if d, ok := decodeOwnMember(raw); ok {
		return d, nil
	}
	var d decoded
	// Mid is absent in members written by gopush-cluster 1.0.5; the
	// score (a double, so not always exact) stands in for it then.
	var m struct {
		Msg    json.RawMessage `json:"msg"`
		Expire int64           `json:"expire"`
		Mid    *int64          `json:"mid"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return d, fmt.Errorf("member %.64q: %w", raw, err)
	}
	if len(m.Msg) == 0 {
		return d, fmt.Errorf("member %.64q has no msg", raw)
	}
	d.Msg, d.expire, d.GroupId = m.Msg, m.Expire, api.PrivateGroupId
	if m.Mid != nil {
		d.MsgId = *m.Mid
		return d, nil
	}
	f, err := strconv.ParseFloat(string(score), 64)
	if err != nil {
		return d, fmt.Errorf("member %.64q: bad score %q", raw, score)
	}
	d.MsgId = int64(f)
	return d, nil
}

// decodeOwnMember reads a member in exactly the form member() writes,
// {"msg":<json>,"expire":<int>,"mid":<int>}, without a full JSON decode
// (which is most of a read's CPU): the two numbers are the tail, and
// whatever is between them and {"msg": is the message, checked to be JSON.
// Anything else is left to the general decoder.
func decodeOwnMember(raw []byte) (decoded, bool) {
	var d decoded
	const head, exp, mid = `{"msg":`, `,"expire":`, `,"mid":`
	if !bytes.HasPrefix(raw, []byte(head)) || !bytes.HasSuffix(raw, []byte("}")) {
		return d, false
	}
	body := raw[len(head) : len(raw)-1]
	i := bytes.LastIndex(body, []byte(mid))
	if i < 0 {
		return d, false
	}
	m, err := strconv.ParseInt(string(body[i+len(mid):]), 10, 64)
	if err != nil {
		return d, false
	}
	body = body[:i]
	j := bytes.LastIndex(body, []byte(exp))
	if j < 0 {
		return d, false
	}
	e, err := strconv.ParseInt(string(body[j+len(exp):]), 10, 64)
	if err != nil || !json.Valid(body[:j]) {
		return d, false
	}
	d.Msg, d.MsgId, d.expire, d.GroupId = body[:j], m, e, api.PrivateGroupId
	return d, true
}

func (rs *RedisStorage) queueClean(s *redisShard, key string, raw []byte) {
	select {
	case rs.clean <- staleMember{shard: s, key: key, member: raw}:
	default: // queue full: the next read or the set's TTL will do it
	}
}

// cleaner removes expired members queued by Get, one at a time.
func (rs *RedisStorage) cleaner() {
	defer rs.wg.Done()
	for {
		select {
		case <-rs.done:
			return
		case m := <-rs.clean:
			ctx, cancel := context.WithTimeout(context.Background(), backgroundTimeout)
			conn, err := m.shard.pool.GetContext(ctx)
			if err == nil {
				var n int
				n, err = redis.Int(redis.DoContext(conn, ctx, "ZREM", m.key, m.member))
				conn.Close()
				rs.met.Load().expired(m.shard.name, n)
			}
			cancel()
			if err != nil {
				rs.log.Debug("removing an expired message failed", "key", m.key, "err", m.shard.wrap(err))
			}
		}
	}
}

// Del removes the key's set.
func (rs *RedisStorage) Del(ctx context.Context, key string) error {
	s := rs.shard(key)
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return s.wrap(err)
	}
	defer conn.Close()
	if _, err := redis.DoContext(conn, ctx, "DEL", key); err != nil {
		return s.wrap(err)
	}
	return nil
}

// Check pings every shard, in parallel.
func (rs *RedisStorage) Check(ctx context.Context) []error { return shardErrors(rs.CheckShards(ctx)) }

// CheckShards pings every shard, in parallel, and answers by shard.
func (rs *RedisStorage) CheckShards(ctx context.Context) map[string]error {
	return checkShards(rs.shards, func(s *redisShard) error {
		conn, err := s.pool.GetContext(ctx)
		if err == nil {
			_, err = redis.DoContext(conn, ctx, "PING")
			conn.Close()
		}
		if err != nil {
			return s.wrap(err)
		}
		return nil
	})
}

// Close refuses saves from now on, stops the cleaner and closes every
// shard's pool.
func (rs *RedisStorage) Close() error {
	rs.closeOnce.Do(func() {
		for _, s := range rs.shards {
			s.saves.close()
		}
		close(rs.done)
		rs.wg.Wait()
		for _, s := range rs.shards {
			s.pool.Close()
		}
		for _, s := range rs.roomShards {
			s.pool.Close()
		}
	})
	return nil
}
