package message

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/api"
	"gopush/internal/testenv"
	"gopush/ketama"
)

func dialRedis(t *testing.T, addr string) redis.Conn {
	t.Helper()
	return dialRedisDB(t, addr, 0)
}

// dialRedisDB connects to database db of the Redis at addr.
func dialRedisDB(t *testing.T, addr string, db int) redis.Conn {
	t.Helper()
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(5*time.Second),
		redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second), redis.DialDatabase(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serveOneRedis serves MessageRPC over the shared Redis, keeping store
// messages per key, and returns a client, a direct connection to that
// Redis, and a key of the test's own (deleted when it ends).
func serveOneRedis(t *testing.T, store int) (c *caller, conn redis.Conn, key string) {
	t.Helper()
	addr := testenv.Redis(t)
	cfg := redisConfig(map[string]string{"node1:1": addr}, store)
	c = serve(t, cfg, openStorage(t, cfg))
	conn = dialRedis(t, addr)
	key = testenv.Unique(t)
	t.Cleanup(func() { conn.Do("DEL", key) })
	return c, conn, key
}

// TestRedisPlacementFollowsKetama: with shards a (weight 1) and b (weight
// 2), every key lands on the shard that the 1.0.5 ring picks, as a direct
// read of each server shows.
func TestRedisPlacementFollowsKetama(t *testing.T) {
	t.Parallel()
	a, b := testenv.StartRedis(t), testenv.StartRedis(t)
	cfg := redisConfig(map[string]string{"a:1": a.Addr(), "b:2": b.Addr()}, 20)
	c := serve(t, cfg, openStorage(t, cfg))
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"a": 1, "b": 2})
	conns := map[string]redis.Conn{"a": dialRedis(t, a.Addr()), "b": dialRedis(t, b.Addr())}

	prefix := testenv.Unique(t)
	count := map[string]int{}
	for i := 0; i < 60; i++ {
		key := fmt.Sprintf("%s-%d", prefix, i)
		c.mustSave(key, baseMid(), `{"p":1}`, 600)
		want := ring.Get(key)
		count[want]++
		for name, conn := range conns {
			n, err := redis.Int(conn.Do("ZCARD", key))
			if err != nil {
				t.Fatal(err)
			}
			if (name == want) != (n == 1) {
				t.Errorf("key %s: shard %s holds %d members; the ring says %s", key, name, n, want)
			}
		}
	}
	if count["a"] == 0 || count["b"] == 0 {
		t.Errorf("keys per shard %v: the test needs keys on both", count)
	}
}

// TestRedisLayout checks the stored form of docs/protocol.md §7: member
// {"msg":..,"expire":..,"mid":..} scored by the mid, and a TTL on the set
// that covers the newest message and is never shortened.
func TestRedisLayout(t *testing.T) {
	t.Parallel()
	c, conn, key := serveOneRedis(t, 20)
	mid := baseMid() + 1

	before := time.Now().Unix()
	c.mustSave(key, mid, `{"hello": "world"}`, 600)
	vals, err := redis.Strings(conn.Do("ZRANGE", key, 0, -1, "WITHSCORES"))
	if err != nil || len(vals) != 2 {
		t.Fatalf("ZRANGE: %v, %v; want one member", vals, err)
	}
	var m struct {
		Msg    json.RawMessage `json:"msg"`
		Expire int64           `json:"expire"`
		Mid    int64           `json:"mid"`
	}
	if err := json.Unmarshal([]byte(vals[0]), &m); err != nil {
		t.Fatalf("member %s: %v", vals[0], err)
	}
	if string(m.Msg) != `{"hello": "world"}` || m.Mid != mid || m.Expire < before+600 || m.Expire > time.Now().Unix()+600 {
		t.Errorf("member %s: want msg as sent, mid %d, expire now+600", vals[0], mid)
	}
	if score, err := strconv.ParseFloat(vals[1], 64); err != nil || score != float64(mid) {
		t.Errorf("score %s, want the mid %d", vals[1], mid)
	}
	ttl, _ := redis.Int(conn.Do("TTL", key))
	if ttl < 590 || ttl > 602 {
		t.Errorf("TTL after a 600 s message: %d, want about 600", ttl)
	}
	c.mustSave(key, mid+1, `{}`, 60)
	if ttl, _ := redis.Int(conn.Do("TTL", key)); ttl < 590 {
		t.Errorf("TTL after adding a 60 s message: %d, want it kept at about 600", ttl)
	}
	c.mustSave(key, mid+2, `{}`, 3600)
	if ttl, _ := redis.Int(conn.Do("TTL", key)); ttl < 3590 {
		t.Errorf("TTL after adding a 3600 s message: %d, want about 3600", ttl)
	}
}

// TestRedisReads105Data: members written by gopush-cluster 1.0.5 (no "mid"
// field, the mid only as the score, and no TTL on the set) are read back,
// and the set gets a TTL that covers its longest-lived member.
func TestRedisReads105Data(t *testing.T) {
	t.Parallel()
	c, conn, key := serveOneRedis(t, 20)

	now := time.Now().Unix()
	old := int64(13996474938346192) // a 1.0.5-era mid, below 2^54
	if _, err := conn.Do("ZADD", key, old, fmt.Sprintf(`{"msg":{"test":1},"expire":%d}`, now+7200)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Do("ZADD", key, old+1000, fmt.Sprintf(`{"msg":"gone","expire":%d}`, now-10)); err != nil {
		t.Fatal(err)
	}
	got := c.mustGet(key, 0)
	if len(got) != 1 || string(got[0].Msg) != `{"test":1}` || got[0].MsgId != int64(float64(old)) {
		t.Fatalf("1.0.5 data: got %v, want the unexpired message with mid %d", got, old)
	}
	if got := c.mustGet(key, old); len(got) != 0 {
		t.Errorf("get after the 1.0.5 mid: %v, want nothing", mids(got))
	}
	// The expired 1.0.5 member is removed in the background.
	testenv.WaitFor(t, 10*time.Second, "the expired member to be removed", func() bool {
		n, err := redis.Int(conn.Do("ZCARD", key))
		return err == nil && n == 1
	})

	c.mustSave(key, baseMid(), `{"new":1}`, 60)
	if ttl, _ := redis.Int(conn.Do("TTL", key)); ttl < 7100 {
		t.Errorf("TTL of a 1.0.5 set after a 60 s save: %d, want it to cover the 7200 s member", ttl)
	}
	if got := c.mustGet(key, 0); len(got) != 2 {
		t.Errorf("after a new save: %d messages, want 2", len(got))
	}
}

// TestRedisExpiredMembersAreCleaned moves the storage clock forward: the
// expired members are neither returned nor kept.
func TestRedisExpiredMembersAreCleaned(t *testing.T) {
	t.Parallel()
	addr := testenv.Redis(t)
	cfg := redisConfig(map[string]string{"node1:1": addr}, 20)
	rs, err := NewRedisStorage(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	conn := dialRedis(t, addr)
	key := testenv.Unique(t)
	t.Cleanup(func() { conn.Do("DEL", key) })
	ctx := context.Background()
	now := time.Now()
	base := baseMid()
	for i, life := range []int64{100, 200, 5000} {
		e := Entry{Key: key, MsgId: base + int64(i), Msg: json.RawMessage(`1`), Expire: now.Unix() + life}
		if err := rs.Save(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	later := now.Add(300 * time.Second)
	rs.now = func() time.Time { return later }
	got, err := rs.Get(ctx, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !sameMids(got, base+2) {
		t.Errorf("300 s later: mids %v, want only base+2", mids(got))
	}
	testenv.WaitFor(t, 10*time.Second, "the expired members to be removed", func() bool {
		n, err := redis.Int(conn.Do("ZCARD", key))
		return err == nil && n == 1
	})
}

// TestRedisShardDown: with shard b stopped, a multi-key save reports
// exactly b's keys as failed, calls for b's keys name the shard, a's keys
// keep working; when b comes back it works again without a restart, and
// what b stored before is still there.
func TestRedisShardDown(t *testing.T) {
	t.Parallel()
	a, b := testenv.StartRedis(t), testenv.StartRedis(t)
	cfg := redisConfig(map[string]string{"a:1": a.Addr(), "b:2": b.Addr()}, 20)
	cfg.Redis.DialTimeout.UnmarshalText([]byte("2s"))
	rs, err := NewRedisStorage(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	c := serve(t, cfg, rs)

	keys, onA, onB := splitKeys(t, testenv.Unique(t), 30, rs.ShardOf)
	base := baseMid()
	c.mustSave(onB[0], base, `"before"`, 600) // stored before the outage

	b.Stop()
	var resp api.MessageSavePrivatesResp
	if err := c.call(api.MessageSavePrivates, &api.MessageSavePrivatesArgs{
		Keys: keys, Msg: json.RawMessage(`"during"`), MsgId: base + 1, Expire: 600}, &resp); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(resp.FKeys))
	if want := slices.Sorted(slices.Values(onB)); !slices.Equal(got, want) {
		t.Errorf("FKeys with b down: %v, want b's keys %v", got, want)
	}
	err = c.save(onB[1], base+2, `{}`, 600)
	if err == nil || !strings.Contains(err.Error(), "redis shard b (tcp@"+b.Addr()+")") {
		t.Errorf("save on the stopped shard: %v, want an error naming shard b and its address", err)
	}
	if _, err := c.get(onB[0], 0); err == nil || !strings.Contains(err.Error(), "redis shard b") {
		t.Errorf("get on the stopped shard: %v, want an error naming shard b", err)
	}
	if got := c.mustGet(onA[0], 0); !sameMids(got, base+1) {
		t.Errorf("key on shard a while b is down: mids %v, want base+1", mids(got))
	}

	b.Start()
	if got := c.mustGet(onB[0], 0); !sameMids(got, base) || string(got[0].Msg) != `"before"` {
		t.Errorf("b's key after b came back: %v, want the message stored before the outage", mids(got))
	}
	resp = api.MessageSavePrivatesResp{}
	if err := c.call(api.MessageSavePrivates, &api.MessageSavePrivatesArgs{
		Keys: keys, Msg: json.RawMessage(`"after"`), MsgId: base + 3, Expire: 600}, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.FKeys) != 0 {
		t.Errorf("FKeys after b came back: %v, want none", resp.FKeys)
	}
	if got := c.mustGet(onB[1], 0); !sameMids(got, base+3) {
		t.Errorf("b's key after b came back: mids %v, want base+3", mids(got))
	}
}

// TestRedisUnixSocketAndPassword: a shard written "unix@/path#password"
// works, and a wrong password is an error naming the shard.
func TestRedisUnixSocketAndPassword(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	admin := dialRedis(t, srv.Addr())
	if _, err := admin.Do("CONFIG", "SET", "requirepass", "s3cret"); err != nil {
		t.Fatal(err)
	}
	cfg := redisConfig(nil, 20)
	cfg.Redis.Source = map[string]string{"sock:1": "unix@" + srv.Socket() + "#s3cret"}
	c := serve(t, cfg, openStorage(t, cfg))
	key := testenv.Unique(t)
	c.mustSave(key, 42, `{"over":"unix"}`, 60)
	if got := c.mustGet(key, 0); !sameMids(got, 42) {
		t.Errorf("over the unix socket: mids %v, want 42", mids(got))
	}

	bad := redisConfig(nil, 20)
	bad.Redis.Source = map[string]string{"tcp:1": "tcp@" + srv.Addr() + "#wrong"}
	cb := serve(t, bad, openStorage(t, bad))
	if err := cb.save(key, 43, `{}`, 60); err == nil || !strings.Contains(err.Error(), "redis shard tcp (tcp@"+srv.Addr()+")") {
		t.Errorf("wrong password: %v, want an error naming the shard", err)
	}
}

// TestRedisShardHung: a shard that accepts nothing and answers nothing
// (paused) costs its keys an error after redis.dialtimeout, not a hang;
// the other shard's keys are stored; after it resumes it works again.
func TestRedisShardHung(t *testing.T) {
	t.Parallel()
	a, b := testenv.StartRedis(t), testenv.StartRedis(t)
	cfg := redisConfig(map[string]string{"a:1": a.Addr(), "b:1": b.Addr()}, 20)
	cfg.Redis.DialTimeout.UnmarshalText([]byte("500ms"))
	rs, err := NewRedisStorage(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	c := serve(t, cfg, rs)

	prefix := testenv.Unique(t)
	var keys, onB []string
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("%s-%d", prefix, i)
		keys = append(keys, k)
		if rs.ShardOf(k) == "b" {
			onB = append(onB, k)
		}
	}
	if len(onB) == 0 || len(onB) == len(keys) {
		t.Fatalf("%d of %d keys on b: need keys on both shards", len(onB), len(keys))
	}
	c.mustSave(onB[0], 1, `{}`, 600) // leaves a pooled connection to b

	b.Pause()
	start := time.Now()
	var resp api.MessageSavePrivatesResp
	if err := c.call(api.MessageSavePrivates, &api.MessageSavePrivatesArgs{
		Keys: keys, Msg: json.RawMessage(`{}`), MsgId: 2, Expire: 600}, &resp); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("SavePrivates with a hung shard took %v", took)
	}
	if got, want := slices.Sorted(slices.Values(resp.FKeys)), slices.Sorted(slices.Values(onB)); !slices.Equal(got, want) {
		t.Errorf("FKeys with b hung: %v, want %v", got, want)
	}
	b.Resume()
	// A timed-out command may still run once the shard wakes up (Redis had
	// it buffered), so mid 2 may or may not be there: FKeys means "not
	// confirmed". Mid 1 must be, and b must take new saves again.
	testenv.WaitFor(t, 20*time.Second, "shard b to answer again", func() bool {
		msgs, err := c.get(onB[0], 0)
		return err == nil && len(msgs) > 0 && msgs[0].MsgId == 1
	})
	c.mustSave(onB[0], 3, `{}`, 600)
	if got := c.mustGet(onB[0], 2); !sameMids(got, 3) {
		t.Errorf("after resume: mids %v, want 3", mids(got))
	}
}

// TestRedisReadIsBounded: a set holding more than storage.store members
// (written with a larger store, or by 1.0.5) answers only the newest
// store of them, ascending, skipping expired ones.
func TestRedisReadIsBounded(t *testing.T) {
	t.Parallel()
	c, conn, key := serveOneRedis(t, 10)

	now := time.Now().Unix()
	for i := int64(1); i <= 50; i++ {
		expire := now + 600
		if i%5 == 0 { // every fifth one has expired
			expire = now - 1
		}
		if _, err := conn.Do("ZADD", key, i, fmt.Sprintf(`{"msg":%d,"expire":%d,"mid":%d}`, i, expire, i)); err != nil {
			t.Fatal(err)
		}
	}
	want := []int64{38, 39, 41, 42, 43, 44, 46, 47, 48, 49}
	if got := c.mustGet(key, 0); !sameMids(got, want...) {
		t.Errorf("50 members, store 10: mids %v, want %v", mids(got), want)
	}
	if got := c.mustGet(key, 46); !sameMids(got, 47, 48, 49) {
		t.Errorf("after 46: mids %v, want 47 48 49", mids(got))
	}
}

// TestRedisCheck names exactly the shards that do not answer.
func TestRedisCheck(t *testing.T) {
	t.Parallel()
	a, b := testenv.StartRedis(t), testenv.StartRedis(t)
	cfg := redisConfig(map[string]string{"a:1": a.Addr(), "b:1": b.Addr()}, 20)
	rs := openStorage(t, cfg)
	if errs := rs.Check(context.Background()); len(errs) != 0 {
		t.Errorf("both shards up: %v", errs)
	}
	b.Stop()
	errs := rs.Check(context.Background())
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "redis shard b (tcp@"+b.Addr()+")") {
		t.Errorf("b stopped: %v, want one error naming b", errs)
	}
}

// TestDecodeMember reads members back exactly: ours (through the fast
// path, even when the message itself holds "expire" and "mid" fields),
// 1.0.5's (mid from the score), and other shapes through the general
// decoder; a member that is not JSON is an error.
func TestDecodeMember(t *testing.T) {
	msgs := []string{`1`, `"s"`, `null`, `{"a":[1,2,{"b":"c"}]}`, `{"x":1,"expire":5,"mid":6}`,
		`"a,\"expire\":1,\"mid\":2}"`, `[{"mid":1},{"expire":2}]`, ` { "sp" : true } `}
	for i, msg := range msgs {
		e := Entry{Key: "k", MsgId: 17956462704899759 + int64(i), Msg: json.RawMessage(msg), Expire: 1764000000 + int64(i)}
		raw := member(e)
		if _, ok := decodeOwnMember(raw); !ok {
			t.Errorf("%s: fast path refused our own member", raw)
		}
		d, err := decodeMember(raw, []byte("1"))
		if err != nil || string(d.Msg) != msg || d.MsgId != e.MsgId || d.expire != e.Expire {
			t.Errorf("%s: got msg %s mid %d expire %d err %v", raw, d.Msg, d.MsgId, d.expire, err)
		}
	}
	others := []struct {
		raw, score string
		msg        string
		mid        int64
		expire     int64
	}{
		{`{"msg":{"test":1},"expire":1400000000}`, "13996474938346192", `{"test":1}`, 13996474938346192, 1400000000},
		{`{"expire":9,"msg":[1],"mid":5}`, "1", `[1]`, 5, 9},
		{`{"msg":2,"expire":3,"mid":4,"extra":true}`, "1", `2`, 4, 3},
		{`{"msg":{"a":,"expire":3,"mid":4}`, "1", "", 0, 0}, // bad JSON in msg
	}
	for _, o := range others {
		d, err := decodeMember([]byte(o.raw), []byte(o.score))
		if o.msg == "" {
			if err == nil {
				t.Errorf("%s: accepted, want an error", o.raw)
			}
			continue
		}
		if err != nil || string(d.Msg) != o.msg || d.MsgId != o.mid || d.expire != o.expire {
			t.Errorf("%s: got msg %s mid %d expire %d err %v", o.raw, d.Msg, d.MsgId, d.expire, err)
		}
	}
	if _, err := decodeMember([]byte("not json"), []byte("1")); err == nil {
		t.Error("a member that is not JSON was accepted")
	}
}
