package message

import (
	"errors"
	"fmt"
	"net/rpc"
	"slices"
	"strings"
	"sync"
	"testing"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
)

// roomConfig is a Redis config with rooms and a public set of this test's
// own.
func roomConfig(t *testing.T, shards map[string]string, max int) *conf.Message {
	return withRoomNames(t, redisConfig(shards, 20), max)
}

func withRoomNames(t *testing.T, cfg *conf.Message, max int) *conf.Message {
	cfg.Room.Prefix = "gopush-test:" + testenv.Unique(t) + ":room:"
	cfg.Room.Max = max
	cfg.Public.Key = "gopush-test:" + testenv.Unique(t) + ":public"
	return cfg
}

// forRoomBackends runs test once per storage type, as a parallel subtest,
// with rooms of at most max keys.
func forRoomBackends(t *testing.T, max int, test func(t *testing.T, cfg *conf.Message, c *caller)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cfg := withRoomNames(t, b.cfg(t, 20), max)
			test(t, cfg, serveRooms(t, cfg, openStorage(t, cfg)))
		})
	}
}

// serveRooms serves MessageRPC with rooms over cfg's storage and returns a
// client.
func serveRooms(t *testing.T, cfg *conf.Message, store Storage) *caller {
	t.Helper()
	return serveRPC(t, withRooms(newRPC(store, cfg, testLogger(t)), cfg, store))
}

func (c *caller) join(room string, keys ...string) error {
	var reply int
	return c.call(api.MessageRoomJoin, &api.MessageRoomArgs{Room: room, Keys: keys}, &reply)
}

func (c *caller) leave(room string, keys ...string) error {
	var reply int
	return c.call(api.MessageRoomLeave, &api.MessageRoomArgs{Room: room, Keys: keys}, &reply)
}

func (c *caller) roomKeys(room string) ([]string, error) {
	var reply api.MessageRoomKeysResp
	err := c.call(api.MessageRoomKeys, room, &reply)
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
	return c.call(api.MessageRoomDel, room, &reply)
}

func isRoomFull(err error) bool {
	var se rpc.ServerError
	return err != nil && asServerError(err, &se) && strings.HasPrefix(string(se), api.RoomFullPrefix)
}

func asServerError(err error, se *rpc.ServerError) bool { return errors.As(err, se) }

// TestRoomJoinLeaveKeysDel walks a room through its life over RPC.
func TestRoomJoinLeaveKeysDel(t *testing.T) {
	t.Parallel()
	forRoomBackends(t, 100, func(t *testing.T, _ *conf.Message, c *caller) {
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
	})
}

// TestRoomLargeJoinAndLeave joins and removes more keys than one SADD or
// SREM chunk carries.
func TestRoomLargeJoinAndLeave(t *testing.T) {
	t.Parallel()
	forRoomBackends(t, 10000, func(t *testing.T, _ *conf.Message, c *caller) {
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
	})
}

// TestRoomOverLimitJoinsNothing: a join that would pass room.max is
// refused whole with the room-full error, also when joins race.
func TestRoomOverLimitJoinsNothing(t *testing.T) {
	t.Parallel()
	forRoomBackends(t, 5, func(t *testing.T, _ *conf.Message, c *caller) {
		room := "full-" + testenv.Unique(t)
		t.Cleanup(func() { c.roomDel(room) })

		if err := c.join(room, "a", "b", "c"); err != nil {
			t.Fatal(err)
		}
		err := c.join(room, "d", "e", "f")
		if !isRoomFull(err) {
			t.Fatalf("joining 3 more to a room of 3 with max 5: %v, want a %q error", err, api.RoomFullPrefix)
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
	})
}

// TestRoomBadInput: bad room ids and keys are refused as parameter errors
// and change nothing.
func TestRoomBadInput(t *testing.T) {
	t.Parallel()
	forRoomBackends(t, 100, func(t *testing.T, _ *conf.Message, c *caller) {
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
	})
}
