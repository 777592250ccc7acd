package message

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/api"
	"gopush/internal/testenv"
)

// serveRedisKeyTTL is serveOneRedis with redis.keyttl set to keyTTL. It
// also returns what the storage logged.
func serveRedisKeyTTL(t *testing.T, keyTTL bool) (c *caller, conn redis.Conn, key string, logged *syncBuffer) {
	t.Helper()
	addr := testenv.Redis(t)
	cfg := redisConfig(map[string]string{"node1:1": addr}, 20)
	cfg.Redis.KeyTTL = keyTTL
	logged = &syncBuffer{}
	store, err := OpenStorage(cfg, slog.New(slog.NewTextHandler(logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	c = serve(t, cfg, store)
	conn = dialRedis(t, addr)
	key = testenv.Unique(t)
	t.Cleanup(func() { conn.Do("DEL", key) })
	return c, conn, key, logged
}

// syncBuffer is a log destination that goroutines may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// zadd105 adds a member the way a gopush-cluster 1.0.5 message node does:
// ZADD with the mid as the score, {"msg":..,"expire":..} (no "mid"), and
// no TTL on the set.
func zadd105(t *testing.T, conn redis.Conn, key string, mid int64, msg string, expire int64) {
	t.Helper()
	if _, err := conn.Do("ZADD", key, mid, fmt.Sprintf(`{"msg":%s,"expire":%d}`, msg, expire)); err != nil {
		t.Fatal(err)
	}
}

func ttlOf(t *testing.T, conn redis.Conn, key string) int {
	t.Helper()
	ttl, err := redis.Int(conn.Do("TTL", key))
	if err != nil {
		t.Fatal(err)
	}
	return ttl
}

// saveMany stores msg under mid for one key through SavePrivates, the
// pipelined path.
func (c *caller) saveMany(key string, mid int64, msg string, expire uint) {
	c.t.Helper()
	var reply api.MessageSavePrivatesResp
	err := c.call(api.MessageSavePrivates, &api.MessageSavePrivatesArgs{
		Keys: []string{key}, Msg: json.RawMessage(msg), MsgId: mid, Expire: expire}, &reply)
	if err != nil || len(reply.FKeys) != 0 {
		c.t.Fatalf("SavePrivates(%q): %v, failed %v", key, err, reply.FKeys)
	}
}

// With redis.keyttl = false, message writes a key's set as 1.0.5 does: on
// a set 1.0.5 wrote (no TTL), saves through either RPC leave it without
// one, and every message reads back.
func TestRedisKeyTTLOffLeavesSetsWithoutTTL(t *testing.T) {
	t.Parallel()
	c, conn, key, logged := serveRedisKeyTTL(t, false)
	if !strings.Contains(logged.String(), "level=INFO") || !strings.Contains(logged.String(), "redis.keyttl = false") {
		t.Errorf("no INFO line naming the mode at start: %q", logged.String())
	}
	now := time.Now().Unix()
	zadd105(t, conn, key, baseMid(), `{"old":1}`, now+600)
	c.mustSave(key, baseMid()+10, `{"new":1}`, 30)
	c.saveMany(key, baseMid()+20, `{"new":2}`, 3600)
	if ttl := ttlOf(t, conn, key); ttl != -1 {
		t.Errorf("TTL of the key after gopush saves with keyttl off: %d, want -1 (none)", ttl)
	}
	if got := c.mustGet(key, 0); len(got) != 3 {
		t.Errorf("read back %d messages, want 3", len(got))
	}
	// A set gopush writes alone in this mode has no TTL either.
	alone := key + "-alone"
	t.Cleanup(func() { conn.Do("DEL", alone) })
	c.mustSave(alone, baseMid(), `{}`, 30)
	if ttl := ttlOf(t, conn, alone); ttl != -1 {
		t.Errorf("TTL of a set only gopush wrote, keyttl off: %d, want -1", ttl)
	}
}

// With redis.keyttl = true (the default), a set 1.0.5 wrote gets a TTL
// that covers its longest-lived member, and later saves never shorten it.
func TestRedisKeyTTLOnCoversAndNeverShortens(t *testing.T) {
	t.Parallel()
	c, conn, key, logged := serveRedisKeyTTL(t, true)
	if !strings.Contains(logged.String(), "redis.keyttl = true") {
		t.Errorf("no line naming the mode at start: %q", logged.String())
	}
	now := time.Now().Unix()
	zadd105(t, conn, key, baseMid(), `{"old":1}`, now+7200)
	c.mustSave(key, baseMid()+10, `{"new":1}`, 60)
	if ttl := ttlOf(t, conn, key); ttl < 7190 || ttl > 7202 {
		t.Errorf("TTL after a 60 s save on a 1.0.5 set holding a 7200 s member: %d, want about 7200", ttl)
	}
	c.saveMany(key, baseMid()+20, `{"new":2}`, 30)
	c.mustSave(key, baseMid()+30, `{"new":3}`, 1)
	if ttl := ttlOf(t, conn, key); ttl < 7190 {
		t.Errorf("TTL after shorter saves: %d, want it kept at about 7200", ttl)
	}
	c.mustSave(key, baseMid()+40, `{"new":4}`, 9000)
	if ttl := ttlOf(t, conn, key); ttl < 8990 {
		t.Errorf("TTL after a 9000 s save: %d, want about 9000", ttl)
	}
}

// The loss seen in a mixed cluster, as a rule on the key: gopush stores a
// 30 s message, then a 1.0.5 node adds a 600 s one to the same set (ZADD,
// no TTL change). With keyttl off the key has no TTL, so the 600 s
// message outlives the 30 s; with keyttl on the key would expire with the
// 30 s message and take the 600 s one with it.
func TestRedisKeyTTLOffKeepsWhat105AddsLater(t *testing.T) {
	t.Parallel()
	for _, keyTTL := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyttl=%v", keyTTL), func(t *testing.T) {
			t.Parallel()
			c, conn, key, _ := serveRedisKeyTTL(t, keyTTL)
			c.mustSave(key, baseMid(), `{"via":"gopush"}`, 30)
			zadd105(t, conn, key, baseMid()+10, `{"via":"1.0.5"}`, time.Now().Unix()+600)
			ttl := ttlOf(t, conn, key)
			if !keyTTL && ttl != -1 {
				t.Fatalf("keyttl off: TTL %d after a gopush save and a 1.0.5 add, want -1: the 600 s message would be lost", ttl)
			}
			if keyTTL && (ttl < 0 || ttl > 31) {
				t.Fatalf("keyttl on: TTL %d, want at most 31 (what makes the mixed cluster lose the 600 s message)", ttl)
			}
			if got := c.mustGet(key, 0); len(got) != 2 {
				t.Fatalf("read back %d messages, want 2", len(got))
			}
		})
	}
}

// redis.keyttl concerns key sets only: with it off, the public set still
// gets a TTL covering its newest message.
func TestRedisKeyTTLOffKeepsPublicTTL(t *testing.T) {
	t.Parallel()
	addr := testenv.Redis(t)
	cfg := withRoomNames(t, redisConfig(map[string]string{"node1:1": addr}, 20), 100)
	cfg.Redis.KeyTTL = false
	c := serveRooms(t, cfg, openStorage(t, cfg))
	conn := dialRedisDB(t, addr, cfg.Redis.RoomDB)
	t.Cleanup(func() { conn.Do("DEL", cfg.Public.Key) })
	if err := c.savePublic(baseMid(), `{"all":1}`, 600); err != nil {
		t.Fatal(err)
	}
	if ttl := ttlOf(t, conn, cfg.Public.Key); ttl < 590 || ttl > 601 {
		t.Errorf("public set's TTL with keyttl off: %d, want about 600", ttl)
	}
}
