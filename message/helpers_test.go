package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/rpc"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// redisConfig returns a message config with Redis shards ("name:weight" →
// host:port) and store messages per key.
func redisConfig(shards map[string]string, store int) *conf.Message {
	cfg := conf.DefaultMessage()
	cfg.Storage.Type = "redis"
	cfg.Storage.Store = store
	cfg.Redis.Source = map[string]string{}
	for k, addr := range shards {
		cfg.Redis.Source[k] = "tcp@" + addr
	}
	return cfg
}

// mysqlConfig returns a message config with MySQL shards ("name:weight" →
// DSN) and store messages per key.
func mysqlConfig(shards map[string]string, store int) *conf.Message {
	cfg := conf.DefaultMessage()
	cfg.Storage.Type = "mysql"
	cfg.Storage.Store = store
	cfg.MySQL.Source = shards
	return cfg
}

// backend opens one storage type on the shared test services.
type backend struct {
	name string
	cfg  func(t *testing.T, store int) *conf.Message
}

var backends = []backend{
	{"redis", func(t *testing.T, store int) *conf.Message {
		return redisConfig(map[string]string{"node1:1": testenv.Redis(t)}, store)
	}},
	{"mysql", func(t *testing.T, store int) *conf.Message {
		return mysqlConfig(map[string]string{"node1:1": testenv.MySQLDatabase(t)}, store)
	}},
}

// openStorage opens cfg's storage, closed when the test ends.
func openStorage(t testing.TB, cfg *conf.Message) Storage {
	t.Helper()
	s, err := OpenStorage(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// serve serves MessageRPC over store on a loopback port and returns a
// client connected to it over TCP.
func serve(t testing.TB, cfg *conf.Message, store Storage) *caller {
	t.Helper()
	return serveRPC(t, newRPC(store, cfg, testLogger(t)))
}

// serveRPC serves rcvr as MessageRPC on a loopback port, stopped when the
// test ends, and returns a client connected to it over TCP.
func serveRPC(t testing.TB, rcvr any) *caller {
	t.Helper()
	srv, err := gobrpc.Serve(api.MessageService, rcvr, []string{"127.0.0.1:0"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	c := gobrpc.NewClient(srv.Addrs()[0], 10*time.Second)
	t.Cleanup(func() {
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	return &caller{t: t, c: c}
}

// caller makes MessageRPC calls.
type caller struct {
	t testing.TB
	c *gobrpc.Client
}

func (c *caller) call(method string, args, reply any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return c.c.Call(ctx, method, args, reply)
}

func (c *caller) save(key string, mid int64, msg string, expire uint) error {
	var reply int
	return c.call(api.MessageSavePrivate, &api.MessageSavePrivateArgs{
		Key: key, Msg: json.RawMessage(msg), MsgId: mid, Expire: expire}, &reply)
}

func (c *caller) mustSave(key string, mid int64, msg string, expire uint) {
	c.t.Helper()
	if err := c.save(key, mid, msg, expire); err != nil {
		c.t.Fatalf("SavePrivate(%q, %d): %v", key, mid, err)
	}
}

func (c *caller) get(key string, after int64) ([]*api.Message, error) {
	var reply api.MessageGetResp
	err := c.call(api.MessageGetPrivate, &api.MessageGetPrivateArgs{Key: key, MsgId: after}, &reply)
	return reply.Msgs, err
}

func (c *caller) mustGet(key string, after int64) []*api.Message {
	c.t.Helper()
	msgs, err := c.get(key, after)
	if err != nil {
		c.t.Fatalf("GetPrivate(%q, %d): %v", key, after, err)
	}
	return msgs
}

func (c *caller) del(key string) error {
	var reply int
	return c.call(api.MessageDelPrivate, key, &reply)
}

// mids lists the mids of msgs.
func mids(msgs []*api.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.MsgId
	}
	return out
}

func sameMids(got []*api.Message, want ...int64) bool {
	g := mids(got)
	if len(g) != len(want) {
		return false
	}
	for i := range g {
		if g[i] != want[i] {
			return false
		}
	}
	return true
}

// baseMid is a realistic mid (100 ns units since the epoch, about 1.8e16)
// chosen so that base+1 and base+2 have the same float64 value, which is
// the score Redis keeps for both.
func baseMid() int64 {
	b := time.Now().UnixNano() / 100
	for float64(b+1) != float64(b+2) {
		b++
	}
	return b
}

// wantParamError fails unless err is a remote error starting with "param: ".
func wantParamError(t *testing.T, what string, err error) {
	t.Helper()
	var se rpc.ServerError
	if err == nil {
		t.Errorf("%s: accepted, want a parameter error", what)
		return
	}
	if !errors.As(err, &se) || !strings.HasPrefix(string(se), "param: ") {
		t.Errorf("%s: error %q (%T), want an rpc.ServerError starting with \"param: \"", what, err, err)
	}
}

func msgN(n int) string { return fmt.Sprintf(`{"n":%d}`, n) }

// splitKeys returns n keys <prefix>-<i>, and those of them that shardOf
// puts on shard "a" and on the other shard. It fails the test unless both
// shards get some.
func splitKeys(t testing.TB, prefix string, n int, shardOf func(string) string) (keys, onA, onB []string) {
	t.Helper()
	for i := range n {
		k := fmt.Sprintf("%s-%d", prefix, i)
		keys = append(keys, k)
		if shardOf(k) == "a" {
			onA = append(onA, k)
		} else {
			onB = append(onB, k)
		}
	}
	if len(onA) == 0 || len(onB) == 0 {
		t.Fatalf("keys per shard a=%d b=%d: need both", len(onA), len(onB))
	}
	return keys, onA, onB
}
