package gobrpc

import (
	"context"
	"errors"
	"fmt"
	"gopush/api"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoMessageNode is returned by MessagePool.Call when no message node is
// live.
var ErrNoMessageNode = errors.New("gobrpc: no live message node")

// MessagePool is the weighted set of message nodes that comet and web call
// (docs/protocol.md §6). Calls pick a live node at random in proportion to its weight;
// every node is pinged every ping interval, a node that fails is left out
// until a ping, tried every retry interval, succeeds again.
//
// Call reads an immutable snapshot through an atomic pointer and takes no
// lock; Update and the health loops build new snapshots.
type MessagePool struct {
	ping, retry, timeout time.Duration
	opts                 Options // of every node's client
	log                  *slog.Logger

	snap atomic.Pointer[poolSnapshot]

	mu     sync.Mutex
	nodes  map[string]*poolNode // by RPC address
	closed bool
	wg     sync.WaitGroup // health loops
}

// poolNode is one message node. weight is guarded by the pool's mu.
type poolNode struct {
	addr   string
	weight int
	client *Client
	alive  atomic.Bool
	ctx    context.Context // ends when the node leaves the pool
	stop   context.CancelFunc
}

// poolSnapshot holds the live nodes with their cumulative weights:
// node i is picked for r in [cum[i-1], cum[i]).
type poolSnapshot struct {
	nodes []*poolNode
	cum   []int
}

func (s *poolSnapshot) total() int {
	if s == nil || len(s.cum) == 0 {
		return 0
	}
	return s.cum[len(s.cum)-1]
}

// pick returns a node at random in proportion to weight, nil if none.
func (s *poolSnapshot) pick() *poolNode {
	t := s.total()
	if t == 0 {
		return nil
	}
	r := rand.IntN(t)
	i := sort.Search(len(s.cum), func(i int) bool { return s.cum[i] > r })
	return s.nodes[i]
}

// pickOther is pick without node not; nil if there is no other node.
func (s *poolSnapshot) pickOther(not *poolNode) *poolNode {
	t := s.total()
	if t == 0 {
		return nil
	}
	excluded := 0
	for i, n := range s.nodes {
		if n == not {
			excluded = s.cum[i]
			if i > 0 {
				excluded -= s.cum[i-1]
			}
		}
	}
	if t-excluded <= 0 {
		return nil
	}
	r := rand.IntN(t - excluded)
	for i, n := range s.nodes {
		if n == not {
			continue
		}
		w := s.cum[i]
		if i > 0 {
			w -= s.cum[i-1]
		}
		if r < w {
			return n
		}
		r -= w
	}
	return nil
}

// NewMessagePool returns an empty pool: ping and retry are the health-check
// and redial intervals, timeout the deadline of one call, all positive (the
// daemons take them from [rpc], whose defaults live in package conf). Feed
// it with Update (from WatchMessages).
func NewMessagePool(ping, retry, timeout time.Duration, log *slog.Logger) *MessagePool {
	return NewMessagePoolWith(ping, retry, timeout, Options{}, log)
}

// NewMessagePoolWith is NewMessagePool whose clients use o (see
// NewClientWith).
func NewMessagePoolWith(ping, retry, timeout time.Duration, o Options, log *slog.Logger) *MessagePool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ping <= 0 || retry <= 0 || timeout <= 0 {
		panic("gobrpc: NewMessagePool with an interval or timeout that is not positive")
	}
	p := &MessagePool{ping: ping, retry: retry, timeout: timeout, opts: o, log: log, nodes: make(map[string]*poolNode)}
	p.snap.Store(&poolSnapshot{})
	return p
}

// Update reconciles the pool with the watched node list: nodes are known by
// their first RPC address; nodes that stay keep their connection (and
// health), new ones start live, missing ones are closed. Nodes without an
// RPC address or with a weight below 1 are ignored.
func (p *MessagePool) Update(nodes []api.MessageNode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	want := make(map[string]int, len(nodes))
	for _, n := range nodes {
		if len(n.Data.RPC) == 0 || n.Data.Weight < 1 {
			continue
		}
		addr := n.Data.RPC[0]
		if _, dup := want[addr]; dup {
			continue // the same process registered twice: count it once
		}
		want[addr] = n.Data.Weight
	}
	for addr, n := range p.nodes {
		if _, ok := want[addr]; !ok {
			delete(p.nodes, addr)
			n.stop() // its health loop closes the client
			p.log.Info("message node removed", "addr", addr)
		}
	}
	for addr, w := range want {
		if n := p.nodes[addr]; n != nil {
			if n.weight != w {
				p.log.Info("message node weight changed", "addr", addr, "weight", w, "old_weight", n.weight)
				n.weight = w
			}
			continue
		}
		n := &poolNode{addr: addr, weight: w, client: NewClientWith(addr, p.timeout, p.opts)}
		n.ctx, n.stop = context.WithCancel(context.Background())
		n.alive.Store(true) // registered nodes are usually up; the first ping checks
		p.nodes[addr] = n
		p.log.Info("message node added", "addr", addr, "weight", w)
		p.wg.Add(1)
		go p.health(n)
	}
	p.rebuildLocked()
}

// rebuildLocked publishes a snapshot of the live nodes. p.mu must be held.
func (p *MessagePool) rebuildLocked() {
	s := &poolSnapshot{}
	addrs := make([]string, 0, len(p.nodes))
	for addr := range p.nodes {
		addrs = append(addrs, addr)
	}
	sort.Strings(addrs)
	total := 0
	for _, addr := range addrs {
		n := p.nodes[addr]
		if !n.alive.Load() {
			continue
		}
		total += n.weight
		s.nodes = append(s.nodes, n)
		s.cum = append(s.cum, total)
	}
	p.snap.Store(s)
}

// setAlive marks n live or dead and republishes the snapshot if that
// changed anything.
func (p *MessagePool) setAlive(n *poolNode, alive bool, err error) {
	if !n.alive.CompareAndSwap(!alive, alive) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nodes[n.addr] != n {
		return // removed meanwhile
	}
	if alive {
		p.log.Info("message node is back", "addr", n.addr)
	} else {
		p.log.Warn("message node failed; not used until it answers again", "addr", n.addr, "err", err, "retry_every", p.retry)
		n.client.Reset()
	}
	p.rebuildLocked()
}

// health pings n every ping interval while it is live and every retry
// interval while it is dead, until n leaves the pool.
func (p *MessagePool) health(n *poolNode) {
	defer p.wg.Done()
	defer n.client.Close()
	t := time.NewTimer(0) // check at once
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		var reply int
		err := n.client.Call(n.ctx, api.MessagePing, 0, &reply)
		if n.ctx.Err() != nil {
			return
		}
		p.setAlive(n, err == nil, err)
		if n.alive.Load() {
			t.Reset(p.ping)
		} else {
			t.Reset(p.retry)
		}
	}
}

// Call invokes method on a live message node picked by weight. On a
// transport failure (the node cannot be reached or the connection broke) it
// marks that node dead and tries once more on another live node; errors
// returned by the node's method (rpc.ServerError) and timeouts are returned
// as they are. With no live node it returns ErrNoMessageNode.
func (p *MessagePool) Call(ctx context.Context, method string, args, reply any) error {
	snap := p.snap.Load()
	n := snap.pick()
	if n == nil {
		return ErrNoMessageNode
	}
	err := n.client.Call(ctx, method, args, reply)
	if err == nil || !IsTransport(err) {
		return err
	}
	p.setAlive(n, false, err)
	other := p.snap.Load().pickOther(n)
	if other == nil {
		return fmt.Errorf("%w (last: %w)", ErrNoMessageNode, err)
	}
	return other.client.Call(ctx, method, args, reply)
}

// Live returns the addresses of the nodes currently in use, sorted.
func (p *MessagePool) Live() []string {
	snap := p.snap.Load()
	out := make([]string, len(snap.nodes))
	for i, n := range snap.nodes {
		out[i] = n.addr
	}
	return out
}

// Close stops the health loops and closes every connection. Calls made
// afterwards return ErrNoMessageNode.
func (p *MessagePool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for addr, n := range p.nodes {
		n.stop()
		delete(p.nodes, addr)
	}
	p.snap.Store(&poolSnapshot{})
	p.mu.Unlock()
	p.wg.Wait()
}
