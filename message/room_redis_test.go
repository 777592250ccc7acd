package message

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/conf"
	"gopush/internal/testenv"
	"gopush/ketama"
	"gopush/myrpc"
)

// roomConfig is a Redis config on the shared Redis with rooms and a public
// set of this test's own.
func roomConfig(t *testing.T, shards map[string]string, max int) *conf.Message {
	cfg := redisConfig(shards, 20)
	cfg.Room.Prefix = "gopush-test:" + testenv.Unique(t) + ":room:"
	cfg.Room.Max = max
	cfg.Public.Key = "gopush-test:" + testenv.Unique(t) + ":public"
	return cfg
}

// serveRooms serves MessageRPC with rooms over cfg's storage and returns a
// client.
func serveRooms(t *testing.T, cfg *conf.Message, store Storage) *caller {
	t.Helper()
	srv, err := myrpc.Serve(myrpc.MessageService, withRooms(newRPC(store, limitsFor(cfg), testLogger(t)), cfg, store),
		[]string{"127.0.0.1:0"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	c := myrpc.NewClient(srv.Addrs()[0], 10*time.Second)
	t.Cleanup(func() {
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	return &caller{t: t, c: c}
}

func (c *caller) join(room string, keys ...string) error {
	var reply int
	return c.call(myrpc.MessageRoomJoin, &myrpc.MessageRoomArgs{Room: room, Keys: keys}, &reply)
}

func (c *caller) leave(room string, keys ...string) error {
	var reply int
	return c.call(myrpc.MessageRoomLeave, &myrpc.MessageRoomArgs{Room: room, Keys: keys}, &reply)
}

func (c *caller) roomKeys(room string) ([]string, error) {
	var reply myrpc.MessageRoomKeysResp
	err := c.call(myrpc.MessageRoomKeys, room, &reply)
	return reply.Keys, err
}

func (c *caller) mustRoomKeys(room string) []string {
	c.t.Helper()
	keys, err := c.roomKeys(room)
	if err != nil {
		c.t.Fatalf("RoomKeys(%q): %v", room, err)
	}
	return keys
}

func (c *caller) roomDel(room string) error {
	var reply int
	return c.call(myrpc.MessageRoomDel, room, &reply)
}

func isRoomFull(err error) bool {
	var se rpc.ServerError
	return err != nil && asServerError(err, &se) && strings.HasPrefix(string(se), myrpc.RoomFullPrefix)
}

func asServerError(err error, se *rpc.ServerError) bool { return errors.As(err, se) }

// TestRoomJoinLeaveKeysDel walks a room through its life over RPC.
func TestRoomJoinLeaveKeysDel(t *testing.T) {
	t.Parallel()
	cfg := roomConfig(t, map[string]string{"node1:1": testenv.Redis(t)}, 100)
	c := serveRooms(t, cfg, openStorage(t, cfg))
	room := "r-" + testenv.Unique(t)
	t.Cleanup(func() { c.roomDel(room) })

	if keys := c.mustRoomKeys(room); len(keys) != 0 {
		t.Fatalf("a room that does not exist has keys %q", keys)
	}
	if err := c.join(room, "k3", "k1", "k2", "k1"); err != nil {
		t.Fatal(err)
	}
	if err := c.join(room, "k2", "k4"); err != nil { // k2 again: no change
		t.Fatal(err)
	}
	if got, want := c.mustRoomKeys(room), []string{"k1", "k2", "k3", "k4"}; !slices.Equal(got, want) {
		t.Fatalf("keys %q, want %q", got, want)
	}
	if err := c.leave(room, "k2", "nobody"); err != nil {
		t.Fatal(err)
	}
	if got, want := c.mustRoomKeys(room), []string{"k1", "k3", "k4"}; !slices.Equal(got, want) {
		t.Fatalf("after leave: keys %q, want %q", got, want)
	}
	if err := c.roomDel(room); err != nil {
		t.Fatal(err)
	}
	if keys := c.mustRoomKeys(room); len(keys) != 0 {
		t.Fatalf("after del: keys %q", keys)
	}
	if err := c.roomDel(room); err != nil {
		t.Fatalf("deleting a room that does not exist: %v", err)
	}
}

// TestRoomLargeJoinAndLeave joins and removes more keys than one SADD or
// SREM chunk carries.
func TestRoomLargeJoinAndLeave(t *testing.T) {
	t.Parallel()
	cfg := roomConfig(t, map[string]string{"node1:1": testenv.Redis(t)}, 10000)
	c := serveRooms(t, cfg, openStorage(t, cfg))
	room := "big-" + testenv.Unique(t)
	t.Cleanup(func() { c.roomDel(room) })
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%05d", i)
	}
	if err := c.join(room, keys...); err != nil {
		t.Fatal(err)
	}
	if got := c.mustRoomKeys(room); !slices.Equal(got, keys) {
		t.Fatalf("room holds %d keys, want all %d in order", len(got), len(keys))
	}
	if err := c.leave(room, keys[:7500]...); err != nil {
		t.Fatal(err)
	}
	if got := c.mustRoomKeys(room); !slices.Equal(got, keys[7500:]) {
		t.Fatalf("after leaving 7500: %d keys, want %d", len(got), 2500)
	}
}

// TestRoomOverLimitJoinsNothing: a join that would pass room.max is
// refused whole with the room-full error, also when joins race.
func TestRoomOverLimitJoinsNothing(t *testing.T) {
	t.Parallel()
	cfg := roomConfig(t, map[string]string{"node1:1": testenv.Redis(t)}, 5)
	c := serveRooms(t, cfg, openStorage(t, cfg))
	room := "full-" + testenv.Unique(t)
	t.Cleanup(func() { c.roomDel(room) })

	if err := c.join(room, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	err := c.join(room, "d", "e", "f")
	if !isRoomFull(err) {
		t.Fatalf("joining 3 more to a room of 3 with max 5: %v, want a %q error", err, myrpc.RoomFullPrefix)
	}
	if got := c.mustRoomKeys(room); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("after a refused join the room holds %q", got)
	}
	if err := c.join(room, "a", "b", "d", "e"); err != nil { // 2 new: exactly 5
		t.Fatalf("a join reaching the limit exactly: %v", err)
	}
	if err := c.join(room, "a", "e"); err != nil { // nothing new at the limit
		t.Fatalf("joining members again at the limit: %v", err)
	}
	if err := c.join("other-"+room, "1", "2", "3", "4", "5", "6"); !isRoomFull(err) {
		t.Fatalf("joining 6 keys at once with max 5: %v", err)
	}

	// Racing joins of one new key each: exactly max-has of them succeed.
	race := "race-" + testenv.Unique(t)
	t.Cleanup(func() { c.roomDel(race) })
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, full := 0, 0
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.join(race, fmt.Sprintf("k%d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case isRoomFull(err):
				full++
			default:
				t.Errorf("join: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 5 || full != 7 || len(c.mustRoomKeys(race)) != 5 {
		t.Errorf("12 racing joins with max 5: %d joined, %d refused, room holds %d", ok, full, len(c.mustRoomKeys(race)))
	}
}

// TestRoomBadInput: bad room ids and keys are refused as parameter errors
// and change nothing.
func TestRoomBadInput(t *testing.T) {
	t.Parallel()
	cfg := roomConfig(t, map[string]string{"node1:1": testenv.Redis(t)}, 100)
	c := serveRooms(t, cfg, openStorage(t, cfg))
	for _, room := range []string{"", strings.Repeat("r", 65), "a b", "a/b", "é", "a\x00b", "r*"} {
		wantParamError(t, fmt.Sprintf("join room %q", room), c.join(room, "k"))
		wantParamError(t, fmt.Sprintf("leave room %q", room), c.leave(room, "k"))
		_, err := c.roomKeys(room)
		wantParamError(t, fmt.Sprintf("keys of room %q", room), err)
		wantParamError(t, fmt.Sprintf("del room %q", room), c.roomDel(room))
	}
	room := "Ok_room.1:x-" + strings.Repeat("z", 64-len("Ok_room.1:x-"))
	t.Cleanup(func() { c.roomDel(room) })
	wantParamError(t, "join no keys", c.join(room))
	wantParamError(t, "join an empty key", c.join(room, "a", ""))
	wantParamError(t, "join a key over the limit", c.join(room, "a", strings.Repeat("k", redisMaxKey+1)))
	wantParamError(t, "leave an empty key", c.leave(room, ""))
	if keys := c.mustRoomKeys(room); len(keys) != 0 {
		t.Errorf("refused joins left keys %q", keys)
	}
	if err := c.join(room, "a"); err != nil {
		t.Errorf("a 64-character room id of every allowed character: %v", err)
	}
}

// TestRoomPlacementFollowsKetama: with shards a (weight 1) and b (weight
// 2), every room's set is named room.prefix+id and sits on the shard the
// ring picks for the room id.
func TestRoomPlacementFollowsKetama(t *testing.T) {
	t.Parallel()
	a, b := testenv.StartRedis(t), testenv.StartRedis(t)
	cfg := roomConfig(t, map[string]string{"a:1": a.Addr(), "b:2": b.Addr()}, 100)
	c := serveRooms(t, cfg, openStorage(t, cfg))
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"a": 1, "b": 2})
	conns := map[string]redis.Conn{"a": dialRedis(t, a.Addr()), "b": dialRedis(t, b.Addr())}
	count := map[string]int{}
	for i := 0; i < 40; i++ {
		room := fmt.Sprintf("room-%d", i)
		if err := c.join(room, "k1", "k2"); err != nil {
			t.Fatal(err)
		}
		want := ring.Get(room)
		count[want]++
		for name, conn := range conns {
			n, err := redis.Int(conn.Do("SCARD", cfg.Room.Prefix+room))
			if err != nil {
				t.Fatal(err)
			}
			if (name == want) != (n == 2) {
				t.Errorf("room %s: shard %s holds %d keys; the ring says %s", room, name, n, want)
			}
		}
	}
	if count["a"] == 0 || count["b"] == 0 {
		t.Errorf("rooms per shard %v: the test needs rooms on both", count)
	}
}

// TestRoomShardDown: with one shard stopped, its rooms answer an error
// naming the shard (not a parameter error) and the other shard's rooms
// keep working; once it is back, so are its rooms.
func TestRoomShardDown(t *testing.T) {
	t.Parallel()
	a, b := testenv.StartRedis(t), testenv.StartRedis(t)
	cfg := roomConfig(t, map[string]string{"a:1": a.Addr(), "b:1": b.Addr()}, 100)
	cfg.Redis.DialTimeout = conf.Duration(time.Second)
	c := serveRooms(t, cfg, openStorage(t, cfg))
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"a": 1, "b": 1})
	var onA, onB string
	for i := 0; onA == "" || onB == ""; i++ {
		room := fmt.Sprintf("room-%d", i)
		if ring.Get(room) == "a" {
			onA = room
		} else {
			onB = room
		}
	}
	for _, room := range []string{onA, onB} {
		if err := c.join(room, "k1"); err != nil {
			t.Fatal(err)
		}
	}
	a.Stop()
	err := c.join(onA, "k2")
	var se rpc.ServerError
	if err == nil || !asServerError(err, &se) || strings.HasPrefix(string(se), "param: ") ||
		!strings.Contains(string(se), "redis shard a") {
		t.Errorf("join to a room on a stopped shard: %v, want an error naming shard a", err)
	}
	if _, err := c.roomKeys(onA); err == nil {
		t.Errorf("keys of a room on a stopped shard: no error")
	}
	if err := c.join(onB, "k2"); err != nil {
		t.Errorf("join to a room on the live shard: %v", err)
	}
	if got := c.mustRoomKeys(onB); !slices.Equal(got, []string{"k1", "k2"}) {
		t.Errorf("room on the live shard holds %q", got)
	}
	a.Start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		keys, err := c.roomKeys(onA)
		if err == nil {
			if !slices.Equal(keys, []string{"k1"}) {
				t.Errorf("room on the restarted shard holds %q, want [k1]", keys)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("room on the restarted shard still fails: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRoomsNeedRedis: MySQL storage keeps no rooms and says so.
func TestRoomsNeedRedis(t *testing.T) {
	t.Parallel()
	cfg := mysqlConfig(map[string]string{"node1:1": testenv.MySQLDatabase(t)}, 20)
	c := serveRooms(t, cfg, openStorage(t, cfg))
	err := c.join("room", "k")
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("join on MySQL storage: %v, want \"not supported\"", err)
	}
	var reply int
	err = c.call(myrpc.MessageSavePublic, &myrpc.MessageSavePublicArgs{Msg: []byte(`{"a":1}`), MsgId: 1, Expire: 60}, &reply)
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("save public on MySQL storage: %v, want \"not supported\"", err)
	}
}
