package message

import (
	"fmt"
	"hash/fnv"
	"testing"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
)

// A subscriber key that spells a room's or the public set's storage name
// reaches neither (docs/security.md): a private message saved under
// public.key is no public message, deleting the messages of
// room.prefix+rid leaves the room whole, and reading that key's messages
// is an empty answer rather than a storage error.
func TestSubscriberKeysCannotReachRoomsOrPublic(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			// Names short enough to be keys on MySQL too (64 characters).
			h := fnv.New64a()
			h.Write([]byte(testenv.Unique(t)))
			id := fmt.Sprintf("%x", h.Sum64())
			cfg := b.cfg(t, 20)
			cfg.Room.Prefix = "gopush-test:" + id + ":room:"
			cfg.Public.Key = "gopush-test:" + id + ":public"
			testKeySpaces(t, cfg, serveRooms(t, cfg, openStorage(t, cfg)))
		})
	}
}

func testKeySpaces(t *testing.T, cfg *conf.Message, c *caller) {
	{
		base := baseMid()
		if err := c.savePublic(base+1, `{"real":"public"}`, 600); err != nil {
			t.Fatal(err)
		}
		if err := c.join("lobby", "alice", "bob"); err != nil {
			t.Fatal(err)
		}
		roomKey := cfg.Room.Prefix + "lobby"

		// push/private?key=<public key>: stored as that key's own message.
		c.mustSave(cfg.Public.Key, base+2, `{"forged":"broadcast"}`, 600)
		pub := c.mustGetPublic(0)
		if len(pub) != 1 || pub[0].MsgId != base+1 || pub[0].GroupId != api.PublicGroupId {
			t.Fatalf("public messages after a private push to %q: %v", cfg.Public.Key, mids(pub))
		}
		if got := c.mustGet(cfg.Public.Key, 0); !sameMids(got, base+2) {
			t.Fatalf("the key %q lost its own message: %v", cfg.Public.Key, mids(got))
		}

		// msg/get?k=<room key>: nothing, and no WRONGTYPE.
		if got, err := c.get(roomKey, 0); err != nil || len(got) != 0 {
			t.Fatalf("messages of key %q: %v, %v", roomKey, mids(got), err)
		}
		// msg/del key=<room key>: the room stays.
		if err := c.del(roomKey); err != nil {
			t.Fatal(err)
		}
		if keys := c.mustRoomKeys("lobby"); len(keys) != 2 {
			t.Fatalf("room after deleting the messages of %q: %v", roomKey, keys)
		}
		// And the other way: deleting the forged key's messages leaves
		// the public ones.
		if err := c.del(cfg.Public.Key); err != nil {
			t.Fatal(err)
		}
		if pub := c.mustGetPublic(0); len(pub) != 1 {
			t.Fatalf("public messages after deleting key %q: %v", cfg.Public.Key, mids(pub))
		}
		c.del(cfg.Public.Key)
	}
}
