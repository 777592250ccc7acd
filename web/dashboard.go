package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"gopush/api"
	"gopush/gobrpc"
)

// The cluster dashboard (docs/observability.md): a poller owned by web
// asks every serving comet for its counters and every message node for
// its shards once a second, and keeps the last minutes of figures. The
// admin page reads the result through /admin/cluster.json, which is built
// from what the poller holds and never waits on a comet: a dead or hung
// comet shows as down within the poll timeout.

// Dashboard timing.
const (
	dashInterval = time.Second
	dashTimeout  = 2 * time.Second // one poll of one node, at most
	dashHistory  = 300             // samples kept per comet: 5 minutes
)

// sample is one point of a comet's charts.
type sample struct {
	T           int64   `json:"t"` // unix milliseconds
	Connections int64   `json:"conns"`
	Pushes      float64 `json:"pushes"`     // per second since the previous sample
	Deliveries  float64 `json:"deliveries"` // per second
}

// cometInstance is one registered comet process of a node.
type cometInstance struct {
	Child string   `json:"child"`
	Role  string   `json:"role"` // serving or standby
	RPC   []string `json:"rpc"`
	TCP   []string `json:"tcp"`
	WS    []string `json:"ws"`
}

// cometState is what the dashboard shows of one comet node.
type cometState struct {
	Node        string          `json:"node"`
	Weight      int             `json:"weight"`
	Status      string          `json:"status"` // up, down
	Error       string          `json:"error,omitempty"`
	Instances   []cometInstance `json:"instances"`
	LastPing    *time.Time      `json:"last_ping,omitempty"` // last answer of its serving cometInstance
	Connections int64           `json:"connections"`
	Subscribed  int64           `json:"subscribed"`
	Channels    int64           `json:"channels"`
	Pushes      int64           `json:"pushes"`     // since the comet started
	Deliveries  int64           `json:"deliveries"` // since the comet started
	PushRate    float64         `json:"pushes_per_second"`
	DeliverRate float64         `json:"deliveries_per_second"`
	Samples     []sample        `json:"samples"`

	prev   *api.CometStatsResp
	prevAt time.Time
}

// messageState is what the dashboard shows of one message node.
type messageState struct {
	Addr     string                   `json:"addr"`
	Child    string                   `json:"child"`
	Weight   int                      `json:"weight"`
	Status   string                   `json:"status"` // up, degraded, down
	Error    string                   `json:"error,omitempty"`
	Storage  string                   `json:"storage,omitempty"`
	Shards   []api.MessageShardHealth `json:"shards"`
	LastPing *time.Time               `json:"last_ping,omitempty"`

	client *gobrpc.Client
}

// clusterJSON is the answer of /admin/cluster.json.
type clusterJSON struct {
	Time      time.Time       `json:"time"`
	ZooKeeper string          `json:"zookeeper"` // the session state
	Ring      []ringNode      `json:"ring"`
	Comets    []*cometState   `json:"comets"`
	Messages  []*messageState `json:"messages"`
	Events    []event         `json:"events"`
	Interval  float64         `json:"interval_seconds"`
}

type ringNode struct {
	Node   string `json:"node"`
	Weight int    `json:"weight"`
}

// dashboard is the poller and what it learnt. run owns the polling; the
// HTTP handler only reads under mu.
type dashboard struct {
	log       *slog.Logger
	cluster   *cluster
	zk        func() *zk.Conn // nil before ZooKeeper is dialled
	cometPath string
	events    *events
	now       func() time.Time

	mu       sync.Mutex
	comets   map[string]*cometState
	messages map[string]*messageState // by RPC address
	zkState  string
	pending  []api.MessageNode // the watcher's last list; nil: unchanged
	closed   bool
}

func newDashboard(log *slog.Logger, c *cluster, cometPath string, ev *events) *dashboard {
	return &dashboard{
		log:       log.With("part", "dashboard"),
		cluster:   c,
		cometPath: cometPath,
		events:    ev,
		now:       time.Now,
		comets:    make(map[string]*cometState),
		messages:  make(map[string]*messageState),
		zkState:   "not connected",
	}
}

// setMessageNodes takes the message watcher's list (called on its
// goroutine); the next round applies it.
func (d *dashboard) setMessageNodes(nodes []api.MessageNode) {
	d.mu.Lock()
	d.pending = append([]api.MessageNode{}, nodes...)
	d.mu.Unlock()
}

// run polls until ctx ends, then closes its message-node clients.
func (d *dashboard) run(ctx context.Context) {
	t := time.NewTicker(dashInterval)
	defer t.Stop()
	defer d.close()
	for {
		d.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *dashboard) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for _, m := range d.messages {
		m.client.Close()
	}
}

// round does one poll of everything.
func (d *dashboard) round(ctx context.Context) {
	d.watchZK()
	view := d.cluster.load()
	standbys := d.readInstances(view)

	d.mu.Lock()
	for name := range d.comets {
		if _, ok := view.weights[name]; !ok {
			delete(d.comets, name)
			d.events.add(eventComet, fmt.Sprintf("comet node %s left the ring", name))
		}
	}
	for name, w := range view.weights {
		st := d.comets[name]
		if st == nil {
			st = &cometState{Node: name, Status: "down", Samples: []sample{}}
			d.comets[name] = st
			d.events.add(eventComet, fmt.Sprintf("comet node %s joined the ring (weight %d)", name, w))
		}
		st.Weight = w
		st.Instances = standbys[name]
	}
	d.applyMessageNodesLocked()
	msgs := maps.Clone(d.messages)
	d.mu.Unlock()

	var wg sync.WaitGroup
	for name := range view.weights {
		n := view.nodes[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.pollComet(ctx, name, n)
		}()
	}
	for addr, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.pollMessage(ctx, addr, m.client)
		}()
	}
	wg.Wait()
}

// watchZK records changes of the session's state as events.
func (d *dashboard) watchZK() {
	state := "not connected"
	if d.zk != nil {
		if c := d.zk(); c != nil {
			state = zkStateName(c.State())
		}
	}
	d.mu.Lock()
	prev := d.zkState
	d.zkState = state
	d.mu.Unlock()
	if prev != state {
		d.events.add(eventZooKeeper, "session "+state)
	}
}

func zkStateName(s zk.State) string {
	switch s {
	case zk.StateHasSession:
		return "connected"
	case zk.StateConnecting, zk.StateConnected:
		return "connecting"
	case zk.StateExpired:
		return "expired"
	case zk.StateDisconnected:
		return "disconnected"
	}
	return s.String()
}

// readInstances lists every registered cometInstance of every node of view
// (serving first, then the standbys), reading ZooKeeper while the session
// is up. Without a session it shows the serving instances the view has.
func (d *dashboard) readInstances(view *clusterView) map[string][]cometInstance {
	out := make(map[string][]cometInstance, len(view.weights))
	for name, n := range view.nodes {
		out[name] = []cometInstance{{Child: n.child, Role: "serving", RPC: n.data.RPC, TCP: n.data.TCP, WS: n.data.WS}}
	}
	var conn *zk.Conn
	if d.zk != nil {
		conn = d.zk()
	}
	if conn == nil || conn.State() != zk.StateHasSession {
		return out
	}
	for name := range view.weights {
		np := d.cometPath + "/" + name
		children, _, err := conn.Children(np)
		if err != nil {
			continue
		}
		sort.Strings(children)
		serving := ""
		if n := view.nodes[name]; n != nil {
			serving = n.child
		}
		for _, c := range children {
			if name+"/"+c == serving || c == serving {
				continue
			}
			raw, _, err := conn.Get(np + "/" + c)
			if err != nil {
				continue
			}
			var data api.CometNodeData
			if json.Unmarshal(raw, &data) != nil {
				continue
			}
			out[name] = append(out[name], cometInstance{Child: name + "/" + c, Role: "standby", RPC: data.RPC, TCP: data.TCP, WS: data.WS})
		}
	}
	return out
}

// pollComet asks the serving cometInstance of node for its counters.
func (d *dashboard) pollComet(ctx context.Context, name string, n *cometNode) {
	var resp api.CometStatsResp
	var err error
	if n == nil || n.rpc == nil {
		err = errNoInstance
	} else {
		cctx, cancel := context.WithTimeout(ctx, dashTimeout)
		err = n.rpc.Call(cctx, api.CometStats, 0, &resp)
		cancel()
		if err != nil && gobrpc.IsNoSuchMethod(err) {
			// A 1.0.5 comet: it answers, but has no figures to give.
			var ret int
			cctx, cancel := context.WithTimeout(ctx, dashTimeout)
			err = n.rpc.Call(cctx, api.CometPing, 0, &ret)
			cancel()
			resp = api.CometStatsResp{Node: name}
		}
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.comets[name]
	if st == nil {
		return // left the ring meanwhile
	}
	if err != nil {
		if st.Status == "up" {
			d.events.add(eventComet, fmt.Sprintf("comet node %s down: %v", name, err))
		}
		st.Status, st.Error = "down", err.Error()
		st.prev = nil
		return
	}
	if st.Status != "up" && st.LastPing != nil {
		d.events.add(eventComet, fmt.Sprintf("comet node %s answers again", name))
	}
	st.Status, st.Error = "up", ""
	st.LastPing = &now
	st.Connections, st.Subscribed, st.Channels = resp.Connections, resp.Subscribed, resp.Channels
	st.Pushes, st.Deliveries = resp.Pushes, resp.Deliveries
	st.PushRate, st.DeliverRate = 0, 0
	if p := st.prev; p != nil && p.Start == resp.Start && p.Node == resp.Node {
		if dt := now.Sub(st.prevAt).Seconds(); dt > 0 {
			st.PushRate = float64(max(resp.Pushes-p.Pushes, 0)) / dt
			st.DeliverRate = float64(max(resp.Deliveries-p.Deliveries, 0)) / dt
		}
	}
	st.prev, st.prevAt = &resp, now
	if len(st.Samples) == dashHistory {
		st.Samples = slices.Delete(st.Samples, 0, 1)
	}
	st.Samples = append(st.Samples, sample{T: now.UnixMilli(), Connections: resp.Connections, Pushes: st.PushRate, Deliveries: st.DeliverRate})
}

var errNoInstance = fmt.Errorf("no serving comet instance registered")

// applyMessageNodesLocked brings the message nodes in step with the
// watcher's last list.
func (d *dashboard) applyMessageNodesLocked() {
	if d.pending == nil || d.closed {
		return
	}
	seen := make(map[string]bool, len(d.pending))
	for _, n := range d.pending {
		if len(n.Data.RPC) == 0 {
			continue
		}
		addr := n.Data.RPC[0]
		seen[addr] = true
		m := d.messages[addr]
		if m == nil {
			m = &messageState{Addr: addr, Status: "down", Shards: []api.MessageShardHealth{},
				client: gobrpc.NewClientWith(addr, dashTimeout, d.cluster.opts)}
			d.messages[addr] = m
		}
		m.Child, m.Weight = n.Child, n.Data.Weight
	}
	for addr, m := range d.messages {
		if !seen[addr] {
			m.client.Close()
			delete(d.messages, addr)
		}
	}
	d.pending = nil
}

// pollMessage asks a message node for the health of its shards.
func (d *dashboard) pollMessage(ctx context.Context, addr string, cl *gobrpc.Client) {
	cctx, cancel := context.WithTimeout(ctx, dashTimeout)
	var resp api.MessageHealthResp
	err := cl.Call(cctx, api.MessageHealth, 0, &resp)
	cancel()
	if err != nil && gobrpc.IsNoSuchMethod(err) {
		// A 1.0.5 node: it answers, but cannot tell its shards.
		var ret int
		cctx, cancel := context.WithTimeout(ctx, dashTimeout)
		err = cl.Call(cctx, api.MessagePing, 0, &ret)
		cancel()
		resp = api.MessageHealthResp{}
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.messages[addr]
	if m == nil {
		return
	}
	if err != nil {
		m.Status, m.Error = "down", err.Error()
		return
	}
	m.LastPing = &now
	m.Storage, m.Shards, m.Error = resp.Storage, resp.Shards, ""
	if m.Shards == nil {
		m.Shards = []api.MessageShardHealth{}
	}
	m.Status = "up"
	for _, s := range resp.Shards {
		if !s.OK {
			m.Status = "degraded"
		}
	}
}

// snapshot is the cluster view of the JSON endpoint: copies, so that the
// encoder reads nothing the poller writes.
func (d *dashboard) snapshot() *clusterJSON {
	view := d.cluster.load()
	out := &clusterJSON{Time: d.now(), Interval: dashInterval.Seconds(), Events: d.events.recent()}
	for _, name := range slices.Sorted(maps.Keys(view.weights)) {
		out.Ring = append(out.Ring, ringNode{Node: name, Weight: view.weights[name]})
	}
	if out.Ring == nil {
		out.Ring = []ringNode{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out.ZooKeeper = d.zkState
	for _, name := range slices.Sorted(maps.Keys(d.comets)) {
		c := *d.comets[name]
		c.Samples = slices.Clone(c.Samples)
		c.Instances = slices.Clone(c.Instances)
		if c.Instances == nil {
			c.Instances = []cometInstance{}
		}
		out.Comets = append(out.Comets, &c)
	}
	for _, addr := range slices.Sorted(maps.Keys(d.messages)) {
		m := *d.messages[addr]
		m.Shards = slices.Clone(m.Shards)
		out.Messages = append(out.Messages, &m)
	}
	if out.Comets == nil {
		out.Comets = []*cometState{}
	}
	if out.Messages == nil {
		out.Messages = []*messageState{}
	}
	return out
}
