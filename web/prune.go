package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"gopush/api"
	"gopush/gobrpc"
	"gopush/membership"
	"log/slog"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// pruner deletes comet nodes whose comet is dead (docs/protocol.md §6.4,
// §9.5). Every interval it pings the serving instance of every node on the
// ring; a node with no serving instance counts as failing too (after a
// SIGKILL its ephemeral child goes away, its persistent node stays). After
// failures failed rounds in a row the node is deleted, children first, so
// the ring shrinks and migration moves its keys, unless another instance
// of the node (a standby) still answers a Ping. Nothing is counted or
// pruned while the ZooKeeper session is not connected, since the view may
// then be stale, and failed pings count for nothing in a round where no
// comet at all answers (this web is then the one cut off).
//
// With votes set (several webs, docs/reliability.md "Pruning rule") a node
// that failed often enough is pruned only when a majority of the live webs
// has recorded the same view in ZooKeeper: a link broken between one web
// and one comet does not remove a comet the other webs reach.
//
// Several webs may prune the same node at once: a node already deleted is
// fine. All its state is owned by the run goroutine.
type pruner struct {
	log       *slog.Logger
	zk        *membership.ZK
	cometPath string
	cluster   *cluster
	interval  time.Duration
	failures  int
	timeout   time.Duration // deadline of one Ping

	met    *metrics // nil: not measured
	events *events  // nil: not recorded

	fails  map[string]int // node → failed rounds in a row
	cutOff bool           // last round: no pinged comet answered

	votes   *pruneVotes     // nil: this web decides alone
	voted   map[string]bool // nodes this web has voted against
	waiting map[string]int  // node → votes it had when last logged short of a majority

	// connected reports whether the ZooKeeper session is connected (a
	// field so that a test can stage an outage).
	connected func() bool
}

func newPruner(log *slog.Logger, z *membership.ZK, cometPath string, c *cluster, interval time.Duration, failures int, timeout time.Duration) *pruner {
	if timeout > interval {
		timeout = interval
	}
	p := &pruner{
		log:       log.With("part", "prune"),
		zk:        z,
		cometPath: cometPath,
		cluster:   c,
		interval:  interval,
		failures:  failures,
		timeout:   timeout,
		fails:     make(map[string]int),
		voted:     make(map[string]bool),
		waiting:   make(map[string]int),
	}
	p.connected = func() bool { return z.Conn().State() == zk.StateHasSession }
	return p
}

func (p *pruner) run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.round(ctx)
		}
	}
}

// round pings every node once and prunes those that failed often enough.
func (p *pruner) round(ctx context.Context) {
	if !p.connected() {
		if len(p.fails) > 0 {
			p.log.Info("zookeeper not connected; failure counts reset, nothing pruned")
			clear(p.fails)
		}
		return
	}
	v := p.cluster.load()
	reasons, unreachable, pinged := p.ping(ctx, v)
	if ctx.Err() != nil {
		return
	}
	// When no comet at all answers this web, the trouble is more likely on
	// this web's side (its network) than in every comet at once: ping
	// failures then count for nothing. Nodes that have no instance in
	// ZooKeeper are still counted: that comes from ZooKeeper, not from us.
	cutOff := pinged > 0 && len(unreachable) == pinged
	if cutOff != p.cutOff {
		p.cutOff = cutOff
		if cutOff {
			p.log.Warn("no comet answers this web's pings; not counting ping failures until one does", "comets", pinged)
		} else {
			p.log.Info("comets answer pings again")
		}
	}
	for name := range p.fails {
		if _, ok := v.weights[name]; !ok {
			delete(p.fails, name)
		}
	}
	for name := range p.voted {
		if _, ok := v.weights[name]; !ok {
			p.withdraw(name)
		}
	}
	for name := range v.weights {
		reason, failed := reasons[name]
		if !failed {
			delete(p.fails, name)
			p.withdraw(name)
			continue
		}
		if cutOff && unreachable[name] {
			continue
		}
		p.fails[name]++
		n := p.fails[name]
		p.log.Debug("comet node failing", "node", name, "failures", n, "reason", reason)
		if n < p.failures {
			continue
		}
		if !p.connected() {
			return
		}
		if !p.agreed(name) {
			continue
		}
		delete(p.fails, name)
		if p.prune(name, fmt.Sprintf("%s (%d checks in a row, %v apart)", reason, n, p.interval)) && p.votes != nil {
			p.votes.clear(name)
			delete(p.voted, name)
			delete(p.waiting, name)
		}
	}
}

// agreed records this web's vote against name and reports whether a
// majority of the live webs agrees (always true without votes).
func (p *pruner) agreed(name string) bool {
	if p.votes == nil {
		return true
	}
	ok, votes, live, err := p.votes.agree(name)
	if err != nil {
		p.log.Warn("prune: could not record or count votes; node kept", "node", name, "err", err)
		return false
	}
	p.voted[name] = true
	if !ok {
		if p.waiting[name] != votes {
			p.waiting[name] = votes
			p.log.Info("prune: comet node failing from here, but not for a majority of the webs; node kept",
				"node", name, "votes", votes, "live_webs", live)
		}
		return false
	}
	delete(p.waiting, name)
	return true
}

// withdraw takes back this web's vote against name.
func (p *pruner) withdraw(name string) {
	if !p.voted[name] {
		return
	}
	delete(p.voted, name)
	delete(p.waiting, name)
	if p.votes != nil {
		p.votes.withdraw(name)
	}
}

// ping checks every node of v at once. It returns why each failing node
// failed, which of them failed a Ping (the others have no instance), and
// how many nodes were pinged.
func (p *pruner) ping(ctx context.Context, v *clusterView) (reasons map[string]string, unreachable map[string]bool, pinged int) {
	reasons = make(map[string]string)
	unreachable = make(map[string]bool)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name := range v.weights {
		n := v.nodes[name]
		if n == nil || n.rpc == nil {
			reasons[name] = "no serving instance registered"
			continue
		}
		pinged++
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, p.timeout)
			defer cancel()
			var ret int
			err := n.rpc.Call(cctx, api.CometPing, 0, &ret)
			if err == nil {
				return
			}
			mu.Lock()
			reasons[name] = "ping failed: " + err.Error()
			unreachable[name] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	return reasons, unreachable, pinged
}

// prune deletes cometPath/name and its children. It reports whether the
// node is gone.
func (p *pruner) prune(name, reason string) bool {
	conn := p.zk.Conn()
	nodePath := p.cometPath + "/" + name
	children, _, err := conn.Children(nodePath)
	if errors.Is(err, zk.ErrNoNode) {
		return true // another web was quicker
	}
	if err != nil {
		p.log.Warn("prune: list children", "node", name, "err", err)
		return false
	}
	// Last check: a standby of the same node that answers means the node
	// is not dead; it will serve once the dead instance's session ends.
	for _, c := range children {
		if addr := p.answers(nodePath + "/" + c); addr != "" {
			p.log.Info("prune: serving instance failing but another instance answers; node kept",
				"node", name, "child", c, "addr", addr, "reason", reason)
			return false
		}
	}
	for _, c := range children {
		if err := conn.Delete(nodePath+"/"+c, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			p.log.Warn("prune: delete child", "node", name, "child", c, "err", err)
			return false
		}
	}
	err = conn.Delete(nodePath, -1)
	switch {
	case err == nil:
		p.log.Warn("pruned dead comet node", "node", name, "path", nodePath, "reason", reason)
		p.met.pruned()
		p.events.add(eventPrune, fmt.Sprintf("comet node %s deleted: %s", name, reason))
	case errors.Is(err, zk.ErrNoNode):
	case errors.Is(err, zk.ErrNotEmpty):
		p.log.Info("prune: comet registered again meanwhile; node kept", "node", name)
		return false
	default:
		p.log.Warn("prune: delete node", "node", name, "err", err)
		return false
	}
	return true
}

// answers reads the instance data of a child and pings its RPC address; it
// returns the address when the instance answers, "" otherwise.
func (p *pruner) answers(childPath string) string {
	raw, _, err := p.zk.Conn().Get(childPath)
	if err != nil {
		return ""
	}
	var data api.CometNodeData
	if json.Unmarshal(raw, &data) != nil || len(data.RPC) == 0 {
		return ""
	}
	cl := gobrpc.NewClientWith(data.RPC[0], p.timeout, p.cluster.opts)
	defer cl.Close()
	var ret int
	if cl.Call(context.Background(), api.CometPing, 0, &ret) != nil {
		return ""
	}
	return data.RPC[0]
}
