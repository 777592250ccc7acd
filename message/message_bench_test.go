package message

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkRPCSaveConcurrent is BenchmarkRPCSavePrivate with a fixed
// number of callers sharing one connection, as a comet's concurrent pushes
// share its connection to a message node, and reports the CPU spent per
// save from /proc: this process (the RPC client and the message server
// together) and the Redis server (found by its INFO process_id; 0 when
// Redis does not run on this machine).
//
//	. /tmp/gpsvc/env; go test ./message/ -run '^$' -bench RPCSaveConcurrent -benchtime 20000x
func BenchmarkRPCSaveConcurrent(b *testing.B) {
	for _, callers := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			rs, addr := benchRedis(b)
			cfg := redisConfig(map[string]string{"node1:1": addr}, 20)
			keys := benchKeys(b, addr, 2000)
			c := serve(b, cfg, rs)
			c.mustSave(keys[0], 1, benchMsg, 600) // connect, load the script
			var flushes, entries countingFlushes
			countFlushes(rs, &flushes, &entries)
			redisPid := redisPID(b, addr)
			var n atomic.Int64
			mid := baseMid()
			var wg sync.WaitGroup
			b.ResetTimer()
			selfBefore, redisBefore := procCPU(b, 0), procCPU(b, redisPid)
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var reply int
					for {
						i := n.Add(1)
						if i > int64(b.N) {
							return
						}
						args := &api.MessageSavePrivateArgs{Key: keys[i%int64(len(keys))], Msg: json.RawMessage(benchMsg), MsgId: mid + i, Expire: 600}
						if err := c.call(api.MessageSavePrivate, args, &reply); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			self, red := procCPU(b, 0)-selfBefore, procCPU(b, redisPid)-redisBefore
			b.ReportMetric(float64(self.Microseconds())/float64(b.N), "self-cpu-µs/op")
			b.ReportMetric(float64(red.Microseconds())/float64(b.N), "redis-cpu-µs/op")
			b.ReportMetric(float64((self+red).Microseconds())/float64(b.N), "total-cpu-µs/op")
			if f := flushes.get(); f > 0 {
				b.ReportMetric(float64(entries.get())/float64(f), "saves/flush")
			}
		})
	}
}

// redisPID returns the process id of the Redis server at addr, or 0 when it
// is not a process of this machine.
func redisPID(b *testing.B, addr string) int {
	c, err := redis.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	info, err := redis.String(c.Do("INFO", "server"))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
				return pid
			}
		}
	}
	return 0
}

// procCPU returns the user + system CPU time of process pid (0: this one)
// from /proc; 0 for a process it cannot read.
func procCPU(b *testing.B, pid int) time.Duration {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces) in
	// parentheses: state is field 3, utime 14 and stime 15.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		b.Fatalf("%s: too few fields", path)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}
