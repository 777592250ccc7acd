package message

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"gopush/api"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

func daemonConfig(t *testing.T) *conf.Message {
	cfg := redisConfig(map[string]string{"node1:1": testenv.Redis(t)}, 20)
	cfg.RPC.Bind = conf.AddrList{"127.0.0.1:0", "127.0.0.1:0"}
	cfg.Node.Weight = 3
	cfg.ZooKeeper.Addr = conf.AddrList{testenv.ZK(t)}
	cfg.ZooKeeper.Timeout = conf.Duration(4 * time.Second)
	cfg.ZooKeeper.Message.Path = testenv.ZKRoot(t) + "/message"
	return cfg
}

func startDaemon(t *testing.T, cfg *conf.Message) *Daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := Start(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

// registered returns the message nodes under parent and their data.
func registered(t *testing.T, conn *zk.Conn, parent string) map[string]api.MessageNodeData {
	t.Helper()
	children, _, err := conn.Children(parent)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Fatal(err)
	}
	out := map[string]api.MessageNodeData{}
	for _, c := range children {
		raw, _, err := conn.Get(parent + "/" + c)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var d api.MessageNodeData
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("node %s holds %q: %v", c, raw, err)
		}
		out[parent+"/"+c] = d
	}
	return out
}

// TestDaemonRegistration: the ephemeral node appears with the RPC
// addresses and weight, every rpc.bind address serves MessageRPC, the node
// comes back after the session expires, and it is gone after Close.
func TestDaemonRegistration(t *testing.T) {
	t.Parallel()
	cfg := daemonConfig(t)
	conn := testenv.ZKConn(t)
	t.Cleanup(func() { testenv.ZKDeleteAll(t, conn, path.Dir(cfg.ZooKeeper.Message.Path)) })
	d := startDaemon(t, cfg)
	parent := cfg.ZooKeeper.Message.Path

	nodes := registered(t, conn, parent)
	data, ok := nodes[d.RegisteredPath()]
	if len(nodes) != 1 || !ok {
		t.Fatalf("nodes under %s: %v, want just %s", parent, nodes, d.RegisteredPath())
	}
	if !slices.Equal(data.RPC, d.Addrs()) || data.Weight != 3 {
		t.Errorf("node data %+v, want rpc %v weight 3", data, d.Addrs())
	}
	stat, err := existsStat(conn, d.RegisteredPath())
	if err != nil || stat.EphemeralOwner == 0 {
		t.Errorf("node %s: ephemeral owner %v (err %v), want an ephemeral node", d.RegisteredPath(), stat, err)
	}
	for _, addr := range d.Addrs() {
		c := gobrpc.NewClient(addr, 5*time.Second)
		reply := -1
		err := c.Call(context.Background(), api.MessagePing, 0, &reply)
		c.Close()
		if err != nil || reply != 0 {
			t.Errorf("Ping on %s: %d, %v", addr, reply, err)
		}
	}

	first := d.RegisteredPath()
	id, passwd := d.ZK().Session()
	testenv.ExpireSession(t, testenv.ZK(t), id, passwd)
	testenv.WaitFor(t, 30*time.Second, "the node to come back after the session expired", func() bool {
		nodes := registered(t, conn, parent)
		_, back := nodes[d.RegisteredPath()]
		return len(nodes) == 1 && back && d.RegisteredPath() != first
	})
	if d.ZK().SessionID() == id {
		t.Errorf("session id %#x unchanged after expiry", id)
	}

	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if nodes := registered(t, conn, parent); len(nodes) != 0 {
		t.Errorf("nodes after Close: %v, want none", nodes)
	}
}

func existsStat(conn *zk.Conn, p string) (*zk.Stat, error) {
	ok, stat, err := conn.Exists(p)
	if err == nil && !ok {
		err = zk.ErrNoNode
	}
	return stat, err
}

// TestDaemonStartFailsCleanly: a bind address in use fails Start with an
// error and leaves nothing registered.
func TestDaemonStartFailsCleanly(t *testing.T) {
	t.Parallel()
	cfg := daemonConfig(t)
	busyCfg := daemonConfig(t)
	conn := testenv.ZKConn(t)
	t.Cleanup(func() {
		testenv.ZKDeleteAll(t, conn, path.Dir(busyCfg.ZooKeeper.Message.Path))
		testenv.ZKDeleteAll(t, conn, path.Dir(cfg.ZooKeeper.Message.Path))
	})
	busy := startDaemon(t, busyCfg)
	cfg.RPC.Bind = conf.AddrList{busy.Addrs()[0]}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d, err := Start(ctx, cfg, testLogger(t)); err == nil {
		d.Close(context.Background())
		t.Fatal("Start on a busy address succeeded")
	}
	if nodes := registered(t, conn, cfg.ZooKeeper.Message.Path); len(nodes) != 0 {
		t.Errorf("nodes after a failed start: %v", nodes)
	}
}

// TestDaemonCloseOrder: Close removes the ZooKeeper node at once, even
// while a call is still running, and then lets that call finish and
// answer before it returns.
func TestDaemonCloseOrder(t *testing.T) {
	t.Parallel()
	shard := testenv.StartRedis(t)
	cfg := daemonConfig(t)
	cfg.Redis.Source = map[string]string{"s:1": "tcp@" + shard.Addr()}
	cfg.Redis.DialTimeout = conf.Duration(20 * time.Second)
	conn := testenv.ZKConn(t)
	t.Cleanup(func() { testenv.ZKDeleteAll(t, conn, path.Dir(cfg.ZooKeeper.Message.Path)) })
	d := startDaemon(t, cfg)
	c := gobrpc.NewClient(d.Addrs()[0], 30*time.Second)
	defer c.Close()
	var ok int
	if err := c.Call(context.Background(), api.MessageSavePrivate, &api.MessageSavePrivateArgs{
		Key: "k", Msg: json.RawMessage(`{"x":1}`), MsgId: 7, Expire: 600}, &ok); err != nil {
		t.Fatal(err)
	}

	shard.Pause() // the next call waits on Redis
	type result struct {
		msgs []*api.Message
		err  error
	}
	got := make(chan result, 1)
	go func() {
		var resp api.MessageGetResp
		err := c.Call(context.Background(), api.MessageGetPrivate, &api.MessageGetPrivateArgs{Key: "k"}, &resp)
		got <- result{resp.Msgs, err}
	}()
	pool := d.store.(*RedisStorage).shards["s"].pool
	testenv.WaitFor(t, 10*time.Second, "the call to wait on Redis", func() bool {
		st := pool.Stats()
		return st.ActiveCount-st.IdleCount == 1
	})

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		closed <- d.Close(ctx)
	}()
	testenv.WaitFor(t, 10*time.Second, "the node to leave ZooKeeper while the call runs", func() bool {
		return len(registered(t, conn, cfg.ZooKeeper.Message.Path)) == 0
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a call was still running", err)
	case r := <-got:
		t.Fatalf("the call ended (%v, %v) while Redis was paused", r.msgs, r.err)
	default:
	}

	shard.Resume()
	r := <-got
	if r.err != nil || len(r.msgs) != 1 || r.msgs[0].MsgId != 7 {
		t.Errorf("in-flight GetPrivate across Close: %v, %v; want the stored message", r.msgs, r.err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
}
