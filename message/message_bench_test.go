package message

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/gomodule/redigo/redis"

	"gopush/api"
	"gopush/internal/testenv"
)

// Benchmarks against the real Redis of GOPUSH_TEST_REDIS. The RPC ones go
// through MessageRPC over a loopback TCP connection, as a comet's calls do;
// the Storage ones call the Redis storage directly.

const benchMsg = `{"title":"hello","body":"a message of a typical size for a push notification","n":12345}`

func benchRedis(b *testing.B) (*RedisStorage, string) {
	addr := testenv.Redis(b)
	cfg := redisConfig(map[string]string{"node1:1": addr}, 20)
	rs, err := NewRedisStorage(cfg, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rs.Close() })
	return rs, addr
}

// benchKeys returns n fresh keys, deleted from Redis when the benchmark ends.
func benchKeys(b *testing.B, addr string, n int) []string {
	prefix := testenv.Unique(b)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	b.Cleanup(func() {
		c, err := redis.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer c.Close()
		for _, k := range keys {
			c.Do("DEL", k)
		}
	})
	return keys
}

func BenchmarkRPCSavePrivate(b *testing.B) {
	rs, addr := benchRedis(b)
	cfg := redisConfig(map[string]string{"node1:1": addr}, 20)
	keys := benchKeys(b, addr, 1000)
	c := serve(b, cfg, rs)
	var n atomic.Int64
	mid := baseMid()
	b.SetBytes(int64(len(benchMsg)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var reply int
		for pb.Next() {
			i := n.Add(1)
			args := &api.MessageSavePrivateArgs{Key: keys[i%int64(len(keys))], Msg: json.RawMessage(benchMsg), MsgId: mid + i, Expire: 600}
			if err := c.call(api.MessageSavePrivate, args, &reply); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRPCGetPrivate(b *testing.B) {
	rs, addr := benchRedis(b)
	cfg := redisConfig(map[string]string{"node1:1": addr}, 20)
	keys := benchKeys(b, addr, 100)
	c := serve(b, cfg, rs)
	mid := baseMid()
	for _, k := range keys {
		for j := 0; j < 20; j++ {
			c.mustSave(k, mid+int64(j), benchMsg, 600)
		}
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			var resp api.MessageGetResp
			err := c.call(api.MessageGetPrivate, &api.MessageGetPrivateArgs{Key: keys[i%int64(len(keys))], MsgId: mid + 9}, &resp)
			if err != nil || len(resp.Msgs) != 10 {
				b.Fatalf("GetPrivate: %d messages, %v; want 10", len(resp.Msgs), err)
			}
		}
	})
}

func BenchmarkStorageSave(b *testing.B) {
	rs, addr := benchRedis(b)
	keys := benchKeys(b, addr, 1000)
	ctx := context.Background()
	mid := baseMid()
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			e := Entry{Key: keys[i%int64(len(keys))], MsgId: mid + i, Msg: json.RawMessage(benchMsg), Expire: 1 << 40}
			if err := rs.Save(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkStorageGet(b *testing.B) {
	rs, addr := benchRedis(b)
	keys := benchKeys(b, addr, 100)
	ctx := context.Background()
	mid := baseMid()
	for _, k := range keys {
		for j := 0; j < 20; j++ {
			if err := rs.Save(ctx, Entry{Key: k, MsgId: mid + int64(j), Msg: json.RawMessage(benchMsg), Expire: 1 << 40}); err != nil {
				b.Fatal(err)
			}
		}
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			msgs, err := rs.Get(ctx, keys[i%int64(len(keys))], 0)
			if err != nil || len(msgs) != 20 {
				b.Fatalf("Get: %d messages, %v; want 20", len(msgs), err)
			}
		}
	})
}

// BenchmarkStorageSaveMany100 stores one message for 100 keys in one
// pipelined call, as SavePrivates does.
func BenchmarkStorageSaveMany100(b *testing.B) {
	rs, addr := benchRedis(b)
	keys := benchKeys(b, addr, 100)
	ctx := context.Background()
	mid := baseMid()
	es := make([]Entry, len(keys))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, k := range keys {
			es[j] = Entry{Key: k, MsgId: mid + int64(i), Msg: json.RawMessage(benchMsg), Expire: 1 << 40}
		}
		for _, err := range rs.SaveMany(ctx, es) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
