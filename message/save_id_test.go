package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/api"
	"gopush/internal/testenv"
)

func (c *caller) saveId(key, id string, mid int64, msg string, expire uint, deadline int64) (api.PushIdReply, error) {
	var reply api.PushIdReply
	err := c.call(api.MessageSavePrivateId, &api.MessageSavePrivateIdArgs{
		Key: key, Msg: json.RawMessage(msg), MsgId: mid, Expire: expire, Deadline: deadline, Id: id}, &reply)
	return reply, err
}

// A save retried with the same key and id stores nothing new and answers
// the first save's mid; another id, or the same id for another key, is a
// new message. Both redis.keyttl modes.
func TestSavePrivateIdStoresOnce(t *testing.T) {
	t.Parallel()
	for _, keyTTL := range []bool{true, false} {
		t.Run(fmt.Sprintf("keyttl=%v", keyTTL), func(t *testing.T) {
			addr := testenv.Redis(t)
			cfg := redisConfig(map[string]string{"node1:1": addr}, 20)
			cfg.Redis.KeyTTL = keyTTL
			c := serve(t, cfg, openStorage(t, cfg))
			conn := dialRedis(t, addr)
			idConn := dialRedisDB(t, addr, cfg.Redis.RoomDB)
			key, other := testenv.Unique(t)+"-k", testenv.Unique(t)+"-o"
			t.Cleanup(func() {
				conn.Do("DEL", key, other)
				idConn.Do("DEL", pushIdKey(key, "a"), pushIdKey(key, "b"), pushIdKey(other, "a"))
			})
			m := baseMid()

			r, err := c.saveId(key, "a", m, `{"n":1}`, 600, 0)
			if err != nil || r.Dup || r.Mid != m {
				t.Fatalf("first save = %+v, %v; want mid %d, not dup", r, err, m)
			}
			for i := range 3 { // retries under new mids, as a comet makes them
				r, err = c.saveId(key, "a", m+10+int64(i), `{"n":1}`, 600, 0)
				if err != nil || !r.Dup || r.Mid != m {
					t.Fatalf("retry %d = %+v, %v; want the first mid %d, dup", i, r, err, m)
				}
			}
			if n, _ := redis.Int(conn.Do("ZCARD", key)); n != 1 {
				t.Errorf("the key's set holds %d messages after a save and 3 retries, want 1", n)
			}
			if msgs := c.mustGet(key, 0); !sameMids(msgs, m) {
				t.Errorf("stored mids %v, want [%d]", mids(msgs), m)
			}
			if r, err := c.saveId(key, "b", m+20, `{"n":2}`, 600, 0); err != nil || r.Dup || r.Mid != m+20 {
				t.Errorf("another id = %+v, %v; want a new message", r, err)
			}
			if r, err := c.saveId(other, "a", m+30, `{"n":3}`, 600, 0); err != nil || r.Dup || r.Mid != m+30 {
				t.Errorf("the same id for another key = %+v, %v; want a new message", r, err)
			}
			// The id lives as long as the message, in the rooms' database.
			ttl, _ := redis.Int(idConn.Do("TTL", pushIdKey(key, "a")))
			if ttl < 590 || ttl > 601 {
				t.Errorf("the id's TTL is %d s, want the message's 600 s", ttl)
			}
			if n, _ := redis.Int(conn.Do("EXISTS", pushIdKey(key, "a"))); n != 0 {
				t.Errorf("the id is recorded in database 0, where a subscriber key could name it")
			}
		})
	}
}

// With expire 0 nothing is stored, but the id is recorded for
// storage.idttl, so that a retry of an online-only push is recognised.
func TestSavePrivateIdExpireZeroRecordsOnlyTheId(t *testing.T) {
	t.Parallel()
	addr := testenv.Redis(t)
	cfg := redisConfig(map[string]string{"node1:1": addr}, 20)
	cfg.Storage.IdTTL.UnmarshalText([]byte("42s"))
	c := serve(t, cfg, openStorage(t, cfg))
	conn := dialRedis(t, addr)
	idConn := dialRedisDB(t, addr, cfg.Redis.RoomDB)
	key := testenv.Unique(t)
	t.Cleanup(func() { conn.Do("DEL", key); idConn.Do("DEL", pushIdKey(key, "x")) })
	m := baseMid()
	if r, err := c.saveId(key, "x", m, `{}`, 0, 0); err != nil || r.Dup || r.Mid != m {
		t.Fatalf("save with expire 0 = %+v, %v", r, err)
	}
	if r, err := c.saveId(key, "x", m+5, `{}`, 0, 0); err != nil || !r.Dup || r.Mid != m {
		t.Fatalf("retry with expire 0 = %+v, %v; want dup of %d", r, err, m)
	}
	if n, _ := redis.Int(conn.Do("EXISTS", key)); n != 0 {
		t.Errorf("expire 0 stored a message")
	}
	if ttl, _ := redis.Int(idConn.Do("TTL", pushIdKey(key, "x"))); ttl < 35 || ttl > 42 {
		t.Errorf("the id's TTL is %d s, want storage.idttl 42 s", ttl)
	}
}

// A save that reaches Redis after its caller's deadline stores nothing
// and records no id, even though it arrived at the message node in time:
// Redis was frozen while the save waited in its socket, and the script
// compares the deadline with Redis's clock when it finally runs. Without
// that check the message would be stored after the caller had answered
// 65535, and a retry would deliver it a second time.
func TestSaveIdScriptChecksDeadline(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	cfg := redisConfig(map[string]string{"a:1": r.Addr()}, 20)
	rs, err := NewRedisStorage(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	key := testenv.Unique(t)
	exp := time.Now().Add(time.Hour).Unix()
	m := baseMid()
	// Warm up the pool and the script cache.
	if _, _, err := rs.SaveId(context.Background(), Entry{Key: key, MsgId: m, Msg: []byte(`{"n":0}`), Expire: exp}, "warm", time.Minute, 0); err != nil {
		t.Fatal(err)
	}

	r.Pause()
	deadline := time.Now().Add(300 * time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	_, _, err = rs.SaveId(ctx, Entry{Key: key, MsgId: m + 1, Msg: []byte(`{"n":1}`), Expire: exp}, "late", time.Minute, deadline.UnixNano())
	cancel()
	if err == nil {
		t.Fatal("a save to a frozen Redis succeeded")
	}
	time.Sleep(200 * time.Millisecond) // past the deadline
	r.Resume()

	conn := dialRedis(t, r.Addr())
	idConn := dialRedisDB(t, r.Addr(), cfg.Redis.RoomDB)
	// The frozen save is in Redis's socket buffer: it runs now, late.
	testenv.WaitFor(t, 10*time.Second, "Redis to answer", func() bool {
		_, err := conn.Do("PING")
		return err == nil
	})
	time.Sleep(100 * time.Millisecond)
	if n, _ := redis.Int(conn.Do("ZCARD", key)); n != 1 {
		t.Errorf("the key holds %d messages, want only the one saved before the freeze", n)
	}
	if n, _ := redis.Int(idConn.Do("EXISTS", pushIdKey(key, "late"))); n != 0 {
		t.Errorf("the late save recorded its id")
	}
	// A retry with the same id, in time, stores it.
	mid, dup, err := rs.SaveId(context.Background(), Entry{Key: key, MsgId: m + 2, Msg: []byte(`{"n":1}`), Expire: exp}, "late", time.Minute, time.Now().Add(5*time.Second).UnixNano())
	if err != nil || dup || mid != m+2 {
		t.Errorf("retry after the thaw = %d, %v, %v; want a new message", mid, dup, err)
	}
	// And one whose deadline has passed when the script runs is refused
	// with ErrDeadlinePassed (the message node's check on arrival is
	// bypassed here by calling the storage directly).
	_, _, err = rs.SaveId(context.Background(), Entry{Key: key, MsgId: m + 3, Msg: []byte(`{"n":3}`), Expire: exp}, "past", time.Minute, time.Now().Add(-time.Second).UnixNano())
	if !errors.Is(err, api.ErrDeadlinePassed) {
		t.Errorf("save with a passed deadline = %v, want ErrDeadlinePassed", err)
	}
	if n, _ := redis.Int(conn.Do("ZCARD", key)); n != 2 {
		t.Errorf("the key holds %d messages, want 2", n)
	}
}

// Bad ids are refused as parameter errors; MySQL storage answers that ids
// need Redis.
func TestSavePrivateIdRefusals(t *testing.T) {
	t.Parallel()
	c, _, key := serveOneRedis(t, 20)
	m := baseMid()
	for _, id := range []string{"", strings.Repeat("x", api.MaxPushIdLen+1), "a b", "é", "a\nb"} {
		_, err := c.saveId(key, id, m, `{}`, 60, 0)
		wantParamError(t, fmt.Sprintf("id %q", id), err)
	}
	if _, err := c.saveId(key, strings.Repeat("x", api.MaxPushIdLen), m, `not json`, 60, 0); err == nil {
		t.Errorf("a message that is not JSON was accepted")
	}
	_, err := c.saveId(key, "late", m, `{}`, 60, time.Now().Add(-time.Second).UnixNano())
	if err == nil || !strings.Contains(err.Error(), api.ErrDeadlinePassed.Error()) {
		t.Errorf("a save whose deadline passed = %v, want %q", err, api.ErrDeadlinePassed)
	}

	mcfg := mysqlConfig(map[string]string{"node1:1": testenv.MySQLDatabase(t)}, 20)
	mc := serve(t, mcfg, openStorage(t, mcfg))
	if _, err := mc.saveId(key, "a", m, `{}`, 60, 0); err == nil || !strings.Contains(err.Error(), "need storage.type = redis") {
		t.Errorf("a save with id on MySQL = %v, want %q", err, errNoIds)
	}
}

// A public message saved under an id is kept once: a retry answers the
// first mid with Dup and stores nothing; expire 0 records the id only.
// MySQL answers that ids need Redis.
func TestSavePublicIdStoresOnce(t *testing.T) {
	t.Parallel()
	cfg := withRoomNames(t, redisConfig(map[string]string{"node1:1": testenv.Redis(t)}, 20), 100)
	c := serveRooms(t, cfg, openStorage(t, cfg))
	save := func(id string, mid int64, expire uint) (api.PushIdReply, error) {
		var reply api.PushIdReply
		err := c.call(api.MessageSavePublicId, &api.MessageSavePublicIdArgs{Msg: json.RawMessage(`{"all":1}`), MsgId: mid,
			Expire: expire, Id: id, Deadline: time.Now().Add(5 * time.Second).UnixNano()}, &reply)
		return reply, err
	}
	m := baseMid()
	if r, err := save("p1", m, 600); err != nil || r.Dup || r.Mid != m {
		t.Fatalf("first save = %+v, %v", r, err)
	}
	for i := range 2 {
		if r, err := save("p1", m+10+int64(i), 600); err != nil || !r.Dup || r.Mid != m {
			t.Fatalf("retry %d = %+v, %v; want dup of %d", i, r, err, m)
		}
	}
	if r, err := save("p2", m+20, 0); err != nil || r.Dup {
		t.Fatalf("expire 0 = %+v, %v", r, err)
	}
	if r, err := save("p2", m+21, 0); err != nil || !r.Dup || r.Mid != m+20 {
		t.Fatalf("expire-0 retry = %+v, %v; want dup of %d", r, err, m+20)
	}
	if msgs := c.mustGetPublic(0); !sameMids(msgs, m) {
		t.Errorf("public messages %v, want only [%d]", mids(msgs), m)
	}
	_, err := save("bad id", m, 600)
	wantParamError(t, "a bad id", err)

	mcfg := withRoomNames(t, mysqlConfig(map[string]string{"node1:1": testenv.MySQLDatabase(t)}, 20), 100)
	mc := serveRooms(t, mcfg, openStorage(t, mcfg))
	var reply api.PushIdReply
	err = mc.call(api.MessageSavePublicId, &api.MessageSavePublicIdArgs{Msg: json.RawMessage(`1`), MsgId: m, Expire: 60, Id: "x"}, &reply)
	if err == nil || !strings.Contains(err.Error(), api.NoPushIds) {
		t.Errorf("public save with id on MySQL = %v, want %q", err, api.NoPushIds)
	}
}
