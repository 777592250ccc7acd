package message

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"gopush/internal/testenv"
)

// Save on a shard that stopped answering gives up at the caller's
// deadline (not the longer redis timeout), and once the shard answers
// again the next Save works: the timed-out connection is not reused.
func TestRedisSaveBoundedByDeadline(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	cfg := redisConfig(map[string]string{"a:1": r.Addr()}, 20)
	cfg.Redis.DialTimeout.UnmarshalText([]byte("20s"))
	rs, err := NewRedisStorage(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	key := fmt.Sprintf("%s-k", testenv.Unique(t))
	exp := time.Now().Add(time.Hour).Unix()
	if err := rs.Save(context.Background(), Entry{Key: key, Msg: []byte(`{"n":1}`), MsgId: 1, Expire: exp}); err != nil {
		t.Fatal(err)
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := rs.Save(cancelled, Entry{Key: key, Msg: []byte(`{}`), MsgId: 2, Expire: exp}); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a cancelled context = %v, want Canceled", err)
	}

	r.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	err = rs.Save(ctx, Entry{Key: key, Msg: []byte(`{"n":3}`), MsgId: 3, Expire: exp})
	took := time.Since(start)
	cancel()
	r.Resume()
	if err == nil {
		t.Fatal("Save on a paused shard succeeded")
	}
	if took > 10*time.Second {
		t.Errorf("Save on a paused shard took %v; the deadline was 300ms", took)
	}

	testenv.WaitFor(t, 20*time.Second, "Save to work again", func() bool {
		return rs.Save(context.Background(), Entry{Key: key, Msg: []byte(`{"n":4}`), MsgId: 4, Expire: exp}) == nil
	})
	msgs, err := rs.Get(context.Background(), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) == 0 || msgs[0].MsgId != 1 || msgs[len(msgs)-1].MsgId != 4 {
		t.Errorf("stored mids %v, want 1 first and 4 last", mids(msgs))
	}
}

// rpc.timeout in message.toml bounds the storage work of one call: with a
// shard that stopped answering, SavePrivate and GetPrivate fail after
// rpc.timeout (here 300ms), not after a fixed 5 s or the 20 s redis
// timeout.
func TestRPCTimeoutBoundsACall(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	cfg := redisConfig(map[string]string{"a:1": r.Addr()}, 20)
	cfg.Redis.DialTimeout.UnmarshalText([]byte("20s"))
	cfg.RPC.Timeout.UnmarshalText([]byte("300ms"))
	c := serve(t, cfg, openStorage(t, cfg))
	key := testenv.Unique(t)
	c.mustSave(key, baseMid(), `{"n":1}`, 600) // leaves a pooled connection

	r.Pause()
	defer r.Resume()
	for name, call := range map[string]func() error{
		"SavePrivate": func() error { return c.save(key, baseMid()+1, `{"n":2}`, 600) },
		"GetPrivate":  func() error { _, err := c.get(key, 0); return err },
	} {
		start := time.Now()
		err := call()
		took := time.Since(start)
		if err == nil {
			t.Errorf("%s on a paused shard succeeded", name)
		}
		if took < 250*time.Millisecond || took > 2500*time.Millisecond {
			t.Errorf("%s on a paused shard failed after %v, want about rpc.timeout (300ms)", name, took)
		}
	}
}
