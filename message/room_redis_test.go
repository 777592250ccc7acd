package message

import (
	"fmt"
	"net/rpc"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/conf"
	"gopush/internal/testenv"
	"gopush/ketama"
)

// TestRoomPlacementFollowsKetama: with shards a (weight 1) and b (weight
// 2), every room's set is named room.prefix+id and sits on the shard the
// ring picks for the room id.
func TestRoomPlacementFollowsKetama(t *testing.T) {
	t.Parallel()
	a, b := testenv.StartRedis(t), testenv.StartRedis(t)
	cfg := roomConfig(t, map[string]string{"a:1": a.Addr(), "b:2": b.Addr()}, 100)
	c := serveRooms(t, cfg, openStorage(t, cfg))
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"a": 1, "b": 2})
	db := cfg.Redis.RoomDB
	conns := map[string]redis.Conn{"a": dialRedisDB(t, a.Addr(), db), "b": dialRedisDB(t, b.Addr(), db)}
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
