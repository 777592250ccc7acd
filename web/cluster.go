package web

import (
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/ketama"
	"gopush/membership"
)

// cometNode is the serving instance of one comet node.
type cometNode struct {
	name  string // node name, as on the ring
	child string // the instance's ZooKeeper child ("node/sequence"), unique per instance
	data  api.CometNodeData
	rpc   caller // nil when the instance registered no RPC address
	// noBatch is set once the instance answered that it has no
	// CometRPC.PushBatch (a 1.0.5 comet): push/batch then pushes one by one.
	noBatch atomic.Bool
	// group coalesces the single pushes to the instance (pushgroup.go);
	// made on first use (pushes), kept across views while the instance
	// stays.
	group atomic.Pointer[cometPushes]
}

// clusterView is one immutable picture of the comets: the ring, the weights
// it was built from and the serving instance of every node that has one.
// Request paths load it once and never lock; the watcher builds a new one
// on every change.
type clusterView struct {
	ring    *ketama.Ring
	weights map[string]int        // ring membership (docs/protocol.md §6)
	nodes   map[string]*cometNode // node → serving instance; absent: none
}

var emptyView = &clusterView{
	ring:    ketama.New(ketama.DefaultBase).Build(),
	weights: map[string]int{},
	nodes:   map[string]*cometNode{},
}

// lookup returns the node that the ring gives key and its serving instance,
// or errNoNode when there is no node or it has no instance with an RPC
// client.
func (v *clusterView) lookup(key string) (string, *cometNode, error) {
	name := v.ring.Get(key)
	if name == "" {
		return "", nil, errNoNode
	}
	n := v.nodes[name]
	if n == nil || n.rpc == nil {
		return name, nil, errNoNode
	}
	return name, n, nil
}

// cluster holds the current clusterView and the RPC clients of the serving
// comet instances. update is called by one goroutine (the comet watcher);
// load by any number.
type cluster struct {
	log     *slog.Logger
	timeout time.Duration  // deadline of one RPC call
	opts    gobrpc.Options // of every comet's client (set before the first update)
	met     *metrics       // set before the first update; nil: not measured
	cur     atomic.Pointer[clusterView]
	changed chan struct{} // signalled (non-blocking) after each update

	mu      sync.Mutex                // guards clients and closed
	clients map[string]*gobrpc.Client // "child rpcaddr" → client
	closed  bool
}

func newCluster(log *slog.Logger, timeout time.Duration) *cluster {
	c := &cluster{
		log:     log,
		timeout: timeout,
		changed: make(chan struct{}, 1),
		clients: make(map[string]*gobrpc.Client),
	}
	c.cur.Store(emptyView)
	return c
}

// load returns the current view.
func (c *cluster) load() *clusterView { return c.cur.Load() }

// update builds a view from what the watcher saw and swaps it in. Clients of
// instances that stay are kept; those of instances that left are closed
// after the swap, so no request picks them up any more.
func (c *cluster) update(v membership.CometView) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	b := ketama.New(ketama.DefaultBase)
	weights := make(map[string]int, len(v.Weights))
	for name, w := range v.Weights {
		b.Add(name, w)
		weights[name] = w
	}
	prevView := c.cur.Load()
	nodes := make(map[string]*cometNode, len(v.Serving))
	keep := make(map[string]*gobrpc.Client, len(v.Serving))
	for name, inst := range v.Serving {
		if inst == nil {
			continue
		}
		child := inst.Child
		if !strings.HasPrefix(child, "/") {
			child = name + "/" + child // sequence numbers repeat across nodes
		}
		n := &cometNode{name: name, child: child, data: inst.Data}
		if len(inst.Data.RPC) > 0 {
			id := child + " " + inst.Data.RPC[0]
			cl := c.clients[id]
			if cl == nil {
				cl = gobrpc.NewClientWith(inst.Data.RPC[0], c.timeout, c.opts)
			}
			keep[id] = cl
			if p := prevView.nodes[name]; p != nil && p.child == child && len(p.data.RPC) > 0 && p.data.RPC[0] == inst.Data.RPC[0] {
				n.group.Store(p.group.Load()) // the same instance: its pushes in flight go on
			}
			n.rpc = c.met.cometCaller(name, cl, api.CometPushPrivate, api.CometPushPrivates,
				api.CometBroadcast, api.CometNew, api.CometMigrate, api.CometPing, api.CometStats, api.CometPushBatch)
		}
		nodes[name] = n
	}
	old := c.clients
	c.clients = keep
	view := &clusterView{ring: b.Build(), weights: weights, nodes: nodes}
	prev := c.cur.Swap(view)
	c.mu.Unlock()

	for id, cl := range old {
		if keep[id] == nil {
			cl.Close()
		}
	}
	if !maps.Equal(prev.weights, weights) || len(prev.nodes) != len(nodes) {
		c.log.Info("comet view changed", "weights", weights, "serving", len(nodes))
	}
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// close closes every client; later updates are ignored.
func (c *cluster) close() {
	c.mu.Lock()
	clients := c.clients
	c.clients = nil
	c.closed = true
	c.mu.Unlock()
	for _, cl := range clients {
		cl.Close()
	}
}
