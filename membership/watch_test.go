package membership

import (
	"context"
	"encoding/json"
	"path"
	"reflect"
	"sync"
	"testing"
	"time"

	"gopush/api"
	"gopush/internal/testenv"

	"github.com/go-zookeeper/zk"
)

// recorder keeps the latest value a watcher published.
type recorder[T any] struct {
	mu     sync.Mutex
	latest T
	calls  int
}

func (r *recorder[T]) set(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latest = v
	r.calls++
}

func (r *recorder[T]) get() (T, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latest, r.calls
}

func cometData(weight int, rpcAddr string) []byte {
	b, _ := json.Marshal(api.CometNodeData{RPC: []string{rpcAddr}, TCP: []string{"127.0.0.1:1"}, WS: []string{"127.0.0.1:2"}, Weight: weight})
	return b
}

func register(t *testing.T, z *ZK, parent string, data []byte) *Registration {
	t.Helper()
	r, err := Register(context.Background(), z, parent, data, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// serving returns node's serving child and weight in v ("" if none).
func serving(v CometView, node string) (string, int) {
	inst := v.Serving[node]
	if inst == nil {
		return "", v.Weights[node]
	}
	return inst.Child, v.Weights[node]
}

func TestWatchComets(t *testing.T) {
	t.Parallel()
	peek := testenv.ZKConn(t)
	root := testenv.ZKRoot(t)
	t.Cleanup(func() { testenv.ZKDeleteAll(t, peek, root) })
	watcherZK := dialTestZK(t)
	procA, procB, procC := dialTestZK(t), dialTestZK(t), dialTestZK(t)

	var rec recorder[CometView]
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		WatchComets(ctx, watcherZK, root, testLog(t), rec.set)
	}()
	defer func() { cancel(); <-stopped }()
	until := func(what string, cond func(CometView) bool) CometView {
		t.Helper()
		var v CometView
		waitFor(t, what, func() bool {
			var n int
			v, n = rec.get()
			return n > 0 && cond(v)
		})
		return v
	}

	// The path does not exist yet: an empty view.
	until("empty view", func(v CometView) bool { return len(v.Weights) == 0 && len(v.Serving) == 0 })

	// A node joins.
	a := register(t, procA, root+"/node1", cometData(2, "127.0.0.1:101"))
	v := until("node1 joins", func(v CometView) bool { c, w := serving(v, "node1"); return c != "" && w == 2 })
	if inst := v.Serving["node1"]; inst.Node != "node1" || inst.Child != path.Base(a.Path()) || inst.Data.RPC[0] != "127.0.0.1:101" {
		t.Errorf("serving node1 = %+v, want child %s with rpc 127.0.0.1:101", inst, a.Path())
	}

	// A standby registers under the same node: the first child keeps serving.
	b := register(t, procB, root+"/node1", cometData(3, "127.0.0.1:102"))
	// A second node, and a node whose only instance has bad data.
	c := register(t, procC, root+"/node2", cometData(4, "127.0.0.1:103"))
	if err := EnsurePath(peek, root+"/node3"); err != nil {
		t.Fatal(err)
	}
	if _, err := peek.Create(root+"/node3/", []byte("{not json"), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	v = until("node2 and node3 join", func(v CometView) bool { return len(v.Weights) == 3 && v.Weights["node2"] == 4 })
	if c, w := serving(v, "node1"); c != path.Base(a.Path()) || w != 2 {
		t.Errorf("node1 served by %s weight %d; want the first instance %s, weight 2", c, w, a.Path())
	}
	if inst := v.Serving["node3"]; inst != nil || v.Weights["node3"] != 1 {
		t.Errorf("node3 (bad data only): serving %+v weight %d; want none, weight 1", inst, v.Weights["node3"])
	}

	// ReadComets sees the same tree.
	rv, err := ReadComets(procA, root)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rv, v) {
		t.Errorf("ReadComets = %+v; watcher has %+v", rv, v)
	}

	// The serving instance leaves: the standby takes over with its weight.
	a.Close()
	until("standby takes over", func(v CometView) bool {
		c, w := serving(v, "node1")
		return c == path.Base(b.Path()) && w == 3
	})

	// node2's only instance leaves: node2 stays on the ring with its last
	// weight, without a serving instance.
	c.Close()
	v = until("node2 has no instance", func(v CometView) bool { return v.Serving["node2"] == nil })
	if w, ok := v.Weights["node2"]; !ok || w != 4 {
		t.Errorf("node2 weight = %d, %v; want 4 kept", w, ok)
	}

	// The node is pruned: it leaves the ring.
	testenv.ZKDeleteAll(t, peek, root+"/node2")
	until("node2 pruned", func(v CometView) bool { _, ok := v.Weights["node2"]; return !ok })

	// Weight change: the instance comes back with another weight.
	b.Close()
	register(t, procB, root+"/node1", cometData(5, "127.0.0.1:102"))
	until("node1 weight 5", func(v CometView) bool { _, w := serving(v, "node1"); return w == 5 })

	// The watcher's session expires: it carries on in the new one.
	id, pw := watcherZK.Session()
	testenv.ExpireSession(t, testenv.ZK(t), id, pw)
	waitFor(t, "watcher has a new session", func() bool { s := watcherZK.SessionID(); return s != 0 && s != id })
	register(t, procC, root+"/node4", cometData(1, "127.0.0.1:104"))
	until("node4 seen after expiry", func(v CometView) bool { c, _ := serving(v, "node4"); return c != "" })

	// Views are published only on change.
	_, before := rec.get()
	time.Sleep(300 * time.Millisecond)
	if _, after := rec.get(); after != before {
		t.Errorf("%d views published without any change", after-before)
	}
}

func TestReadCometsMissingPath(t *testing.T) {
	t.Parallel()
	z := dialTestZK(t)
	v, err := ReadComets(z, testenv.ZKRoot(t))
	if err != nil || len(v.Weights) != 0 {
		t.Errorf("ReadComets(missing) = %+v, %v; want empty, nil", v, err)
	}
	if _, err := ReadComets(z, "relative"); err == nil {
		t.Error("ReadComets with a relative path succeeded")
	}
}

func TestWatchMessages(t *testing.T) {
	t.Parallel()
	peek := testenv.ZKConn(t)
	root := testenv.ZKRoot(t)
	t.Cleanup(func() { testenv.ZKDeleteAll(t, peek, root) })
	watcherZK := dialTestZK(t)
	proc := dialTestZK(t)

	var rec recorder[[]api.MessageNode]
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		WatchMessages(ctx, watcherZK, root, testLog(t), rec.set)
	}()
	defer func() { cancel(); <-stopped }()
	weights := func(nodes []api.MessageNode) []int {
		var ws []int
		for _, n := range nodes {
			ws = append(ws, n.Data.Weight)
		}
		return ws
	}
	until := func(what string, want ...int) []api.MessageNode {
		t.Helper()
		var nodes []api.MessageNode
		waitFor(t, what, func() bool {
			var n int
			nodes, n = rec.get()
			return n > 0 && reflect.DeepEqual(weights(nodes), want)
		})
		return nodes
	}
	until("empty list")

	msgData := func(w int, addr string) []byte {
		b, _ := json.Marshal(api.MessageNodeData{RPC: []string{addr}, Weight: w})
		return b
	}
	m1 := register(t, proc, root, msgData(1, "127.0.0.1:201"))
	m2 := register(t, proc, root, msgData(2, "127.0.0.1:202"))
	for _, bad := range []string{"nope", `{"rpc":[],"weight":1}`, `{"rpc":["x:1"],"weight":0}`} {
		if _, err := peek.Create(root+"/", []byte(bad), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	nodes := until("two nodes", 1, 2)
	if nodes[0].Child != path.Base(m1.Path()) || nodes[1].Data.RPC[0] != "127.0.0.1:202" {
		t.Errorf("nodes = %+v", nodes)
	}
	m1.Close()
	until("one node", 2)

	id, pw := watcherZK.Session()
	testenv.ExpireSession(t, testenv.ZK(t), id, pw)
	waitFor(t, "watcher has a new session", func() bool { s := watcherZK.SessionID(); return s != 0 && s != id })
	register(t, proc, root, msgData(3, "127.0.0.1:203"))
	until("node added after expiry", 2, 3)
	m2.Close()
	until("node removed after expiry", 3)
}
