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
