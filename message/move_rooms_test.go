package message

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"

	"github.com/gomodule/redigo/redis"

	"gopush/internal/testenv"
)

// scripts/move-rooms-db.sh moves rooms and public messages written by an
// earlier version (in database 0) to redis.roomdb, where this version
// finds them; a subscriber key with the room prefix stays.
func TestMoveRoomsScriptMovesEarlierData(t *testing.T) {
	t.Parallel()
	addr := testenv.Redis(t)
	cfg := roomConfig(t, map[string]string{"node1:1": addr}, 100)
	db0, db1 := dialRedisDB(t, addr, 0), dialRedisDB(t, addr, cfg.Redis.RoomDB)
	room, sub := cfg.Room.Prefix+"lobby", cfg.Room.Prefix+"a-subscriber-key"
	t.Cleanup(func() {
		for _, c := range []redis.Conn{db0, db1} {
			c.Do("DEL", room, sub, cfg.Public.Key)
		}
	})
	base := baseMid()
	member := `{"msg":{"old":"public"},"expire":99999999999,"mid":` + strconv.FormatInt(base, 10) + `}`
	for _, cmd := range [][]any{
		{"SADD", room, "alice", "bob"},
		{"ZADD", sub, base, `{"msg":{"p":1},"expire":99999999999}`},
		{"ZADD", cfg.Public.Key, base, member},
	} {
		if _, err := db0.Do(cmd[0].(string), cmd[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("../scripts/move-rooms-db.sh", addr)
	cmd.Env = append(os.Environ(), "ROOM_PREFIX="+cfg.Room.Prefix, "PUBLIC_KEY="+cfg.Public.Key, "ROOM_DB="+strconv.Itoa(cfg.Redis.RoomDB))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("move-rooms-db.sh: %v\n%s", err, out)
	}
	c := serveRooms(t, cfg, openStorage(t, cfg))
	if keys := c.mustRoomKeys("lobby"); !slices.Equal(keys, []string{"alice", "bob"}) {
		t.Fatalf("room after the move: %v", keys)
	}
	if pub := c.mustGetPublic(0); len(pub) != 1 || pub[0].MsgId != base {
		t.Fatalf("public messages after the move: %v", mids(pub))
	}
	if n, _ := redis.Int(db0.Do("EXISTS", sub)); n != 1 {
		t.Fatal("the subscriber key with the room prefix was moved")
	}
}
