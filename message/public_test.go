package message

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
)

func (c *caller) savePublic(mid int64, msg string, expire uint) error {
	var reply int
	return c.call(api.MessageSavePublic, &api.MessageSavePublicArgs{Msg: json.RawMessage(msg), MsgId: mid, Expire: expire}, &reply)
}

func (c *caller) getPublic(after int64) ([]*api.Message, error) {
	var reply api.MessageGetResp
	err := c.call(api.MessageGetPublic, &api.MessageGetPublicArgs{MsgId: after}, &reply)
	return reply.Msgs, err
}

func (c *caller) mustGetPublic(after int64) []*api.Message {
	c.t.Helper()
	msgs, err := c.getPublic(after)
	if err != nil {
		c.t.Fatalf("GetPublic(%d): %v", after, err)
	}
	return msgs
}

// TestPublicKeepsTheNewest: public.store messages are kept, returned in
// ascending order with gid 1 and their exact mids (above 2^53), newer than
// the mid asked for; the set gets a TTL.
func TestPublicKeepsTheNewest(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cfg := withRoomNames(t, b.cfg(t, 20), 100)
			cfg.Public.Store = 5
			testPublicKeepsTheNewest(t, cfg, serveRooms(t, cfg, openStorage(t, cfg)))
		})
	}
}

func testPublicKeepsTheNewest(t *testing.T, cfg *conf.Message, c *caller) {

	if msgs := c.mustGetPublic(0); len(msgs) != 0 {
		t.Fatalf("no public message saved yet, got %d", len(msgs))
	}
	base := baseMid() // base+1 and base+2 share one float64 score
	for i := int64(1); i <= 8; i++ {
		if err := c.savePublic(base+i, msgN(int(i)), 600); err != nil {
			t.Fatal(err)
		}
	}
	msgs := c.mustGetPublic(0)
	if !sameMids(msgs, base+4, base+5, base+6, base+7, base+8) {
		t.Fatalf("mids %v, want the newest 5 from %d", mids(msgs), base+4)
	}
	for i, m := range msgs {
		if m.GroupId != api.PublicGroupId || string(m.Msg) != msgN(i+4) {
			t.Errorf("message %d: gid %d msg %s", i, m.GroupId, m.Msg)
		}
	}
	if got := c.mustGetPublic(base + 6); !sameMids(got, base+7, base+8) {
		t.Errorf("after %d: mids %v", base+6, mids(got))
	}
	if got := c.mustGetPublic(base + 8); len(got) != 0 {
		t.Errorf("after the newest: %v", mids(got))
	}
	if cfg.Storage.Type != "redis" {
		return
	}
	conn := dialRedisDB(t, testenv.Redis(t), cfg.Redis.RoomDB)
	t.Cleanup(func() { conn.Do("DEL", cfg.Public.Key) })
	if n, _ := redis.Int(conn.Do("ZCARD", cfg.Public.Key)); n != 5 {
		t.Errorf("the public set holds %d members, want 5", n)
	}
	if ttl, _ := redis.Int(conn.Do("TTL", cfg.Public.Key)); ttl < 590 || ttl > 601 {
		t.Errorf("the public set's TTL is %d, want about 600", ttl)
	}
}

// TestPublicExpires: an expired public message is not returned; a live one
// next to it is.
func TestPublicExpires(t *testing.T) {
	t.Parallel()
	forRoomBackends(t, 100, func(t *testing.T, cfg *conf.Message, c *caller) {
		testPublicExpires(t, c)
	})
}

func testPublicExpires(t *testing.T, c *caller) {
	base := baseMid()
	if err := c.savePublic(base+1, `{"short":1}`, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.savePublic(base+2, `{"long":1}`, 600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs := c.mustGetPublic(0)
		if sameMids(msgs, base+2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("3+ seconds after the 1-second message expired: mids %v", mids(msgs))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPublicBadInput: bad public messages are parameter errors.
func TestPublicBadInput(t *testing.T) {
	t.Parallel()
	forRoomBackends(t, 100, func(t *testing.T, _ *conf.Message, c *caller) { testPublicBadInput(t, c) })
}

func testPublicBadInput(t *testing.T, c *caller) {
	wantParamError(t, "not JSON", c.savePublic(1, `{"a":`, 60))
	wantParamError(t, "empty", c.savePublic(1, ``, 60))
	wantParamError(t, "negative mid", c.savePublic(-1, `{}`, 60))
	wantParamError(t, "expire 0", c.savePublic(1, `{}`, 0))
	_, err := c.getPublic(-5)
	wantParamError(t, "get after a negative mid", err)
	if msgs := c.mustGetPublic(0); len(msgs) != 0 {
		t.Errorf("refused saves stored %d messages", len(msgs))
	}
}
