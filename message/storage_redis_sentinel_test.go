package message

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"gopush/conf"
	"gopush/internal/testenv"
)

// A shard watched by Sentinels: messages saved (and acknowledged by the
// replica, redis.wait = 1) before the primary dies are still there after
// the Sentinels promote the replica, and saves work again within a bounded
// time, without restarting anything. (An old primary that comes back is
// made a replica by the Sentinels some 10–15 s later; the test does not
// wait for it.)
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	sh := testenv.StartSentinelShard(t)
	open := func(wait int) *RedisStorage {
		cfg := conf.DefaultMessage()
		cfg.Storage.Store = 100
		cfg.Redis.Source = map[string]string{"a:1": sh.Source()}
		cfg.Redis.DialTimeout = conf.Duration(time.Second)
		cfg.Redis.Wait = wait
		cfg.Redis.WaitTimeout = conf.Duration(2 * time.Second)
		rs, err := NewRedisStorage(cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs.Close() })
		return rs
	}
	acked, plain := open(1), open(0)

	key := testenv.Unique(t) + "-k"
	exp := time.Now().Add(time.Hour).Unix()
	save := func(rs *RedisStorage, mid int64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return rs.Save(ctx, Entry{Key: key, Msg: []byte(fmt.Sprintf(`{"n":%d}`, mid)), MsgId: mid, Expire: exp})
	}
	// saveSoon saves mid, retrying for at most 30 s, and returns how long
	// it took.
	saveSoon := func(rs *RedisStorage, mid int64, what string) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			err := save(rs, mid)
			if err == nil {
				return time.Since(start)
			}
			if time.Since(start) > 30*time.Second {
				t.Fatalf("%s: saves still fail after %v: %v", what, time.Since(start), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for mid := int64(1); mid <= 5; mid++ {
		if err := save(acked, mid); err != nil {
			t.Fatalf("acknowledged save %d before the failover: %v", mid, err)
		}
	}
	old := sh.Primary()
	if old != sh.Servers[0] {
		t.Fatalf("the Sentinels name %v as master, want the first server", old)
	}
	old.Kill()

	took := saveSoon(plain, 6, "after the primary died")
	t.Logf("saves work again %v after the primary was killed", took.Round(10*time.Millisecond))
	if p := sh.Primary(); p != sh.Servers[1] {
		t.Fatalf("after the failover the Sentinels name %v, want the replica", p)
	}
	// The promoted replica has no replica of its own: an acknowledged
	// save cannot be acknowledged, and says so.
	if err := save(acked, 7); !errors.Is(err, errUnacknowledged) {
		t.Errorf("acknowledged save with no replica left = %v, want %v", err, errUnacknowledged)
	}

	ms, err := plain.Get(context.Background(), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	for _, m := range ms {
		got[m.MsgId] = true
	}
	for _, want := range []int64{1, 2, 3, 4, 5, 6} {
		if !got[want] {
			t.Errorf("message %d is missing after the failover (have %v)", want, got)
		}
	}
}

// With redis.wait above the number of replicas a shard has, a save is
// refused (the primary keeps it, but it is not acknowledged) rather than
// answered as safe.
func TestRedisWaitUnacknowledgedFails(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	cfg := redisConfig(map[string]string{"a:1": r.Addr()}, 20)
	cfg.Redis.Wait = 1
	cfg.Redis.WaitTimeout = conf.Duration(100 * time.Millisecond)
	rs, err := NewRedisStorage(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	err = rs.Save(context.Background(), Entry{Key: testenv.Unique(t), Msg: []byte(`{}`), MsgId: 1, Expire: time.Now().Add(time.Hour).Unix()})
	if err == nil || !errors.Is(err, errUnacknowledged) {
		t.Fatalf("Save with wait=1 and no replica = %v, want %v", err, errUnacknowledged)
	}
}
