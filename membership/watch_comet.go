package membership

import (
	"context"
	"errors"
	"fmt"
	"gopush/api"
	"log/slog"
	"reflect"

	"github.com/go-zookeeper/zk"
)

// CometInstance is one comet process registered under a node.
type CometInstance struct {
	Node  string // node name, e.g. "node1"
	Child string // its ephemeral child, e.g. "0000000003"
	Data  api.CometNodeData
}

// CometView is a snapshot of <comet.path>. It is never modified after it is
// published: readers share it without locks and must not change it.
type CometView struct {
	// Weights is the ring membership (docs/protocol.md §6): every node name under
	// comet.path → weight of its serving instance. A node with no live
	// instance keeps the last weight seen, else 1.
	Weights map[string]int
	// Serving maps a node to its serving instance (the first child in sort
	// order with valid data); nodes without one are absent.
	Serving map[string]*CometInstance
}

func checkCometData(d *api.CometNodeData) error {
	if d.Weight <= 0 {
		return fmt.Errorf("weight %d: must be positive", d.Weight)
	}
	if len(d.RPC) == 0 {
		return errors.New("no rpc address")
	}
	return nil
}

// ReadComets reads the comet tree once, without watching. A missing path is
// an empty view.
func ReadComets(z *ZK, path string) (CometView, error) {
	if err := checkPath(path); err != nil {
		return CometView{}, err
	}
	conn := z.Conn()
	view := CometView{Weights: map[string]int{}, Serving: map[string]*CometInstance{}}
	nodes, _, err := conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return view, nil
	}
	if err != nil {
		return CometView{}, fmt.Errorf("membership: read comets %s: %w", path, err)
	}
	log := z.log
	for _, node := range nodes {
		children, _, err := conn.Children(path + "/" + node)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return CometView{}, fmt.Errorf("membership: read comets %s/%s: %w", path, node, err)
		}
		names, datas, err := newDataCache[api.CometNodeData]().read(conn, path+"/"+node, sortedCopy(children), checkCometData, log)
		if err != nil {
			return CometView{}, fmt.Errorf("membership: read comets: %w", err)
		}
		view.Weights[node] = 1
		if len(names) > 0 {
			view.Serving[node] = &CometInstance{Node: node, Child: names[0], Data: datas[0]}
			view.Weights[node] = datas[0].Weight
		}
	}
	return view, nil
}

// cometNodeState is what the watcher knows of one node.
type cometNodeState struct {
	watch   <-chan zk.Event // pending children watch; nil when the node must be read again
	cache   *dataCache[api.CometNodeData]
	serving *CometInstance
}

// WatchComets watches <path> and every node's children and calls fn with a
// fresh view once at start (as soon as the tree could be read) and after
// each change. It blocks until ctx ends; on errors it backs off and retries.
// fn runs on the watcher's goroutine and should return quickly.
func WatchComets(ctx context.Context, z *ZK, path string, log *slog.Logger, fn func(CometView)) {
	ctx, stop, log, ok := z.startWatch(ctx, path, log, "comet")
	if !ok {
		return
	}
	defer stop()
	conn := z.Conn()
	var (
		rootWatch  <-chan zk.Event // nil when the root must be read again
		nodes      = map[string]*cometNodeState{}
		lastWeight = map[string]int{}
		published  *CometView
		bo         backoff
	)
	for ctx.Err() == nil {
		err := func() error {
			if rootWatch == nil {
				names, _, ch, err := conn.ChildrenW(path)
				if errors.Is(err, zk.ErrNoNode) {
					// Not created yet: wait for it.
					var ok bool
					ok, _, ch, err = conn.ExistsW(path)
					if err == nil && ok {
						return errors.New("appeared while being read") // read again
					}
					names = nil
				}
				if err != nil {
					return fmt.Errorf("watch %s: %w", path, err)
				}
				rootWatch = ch
				seen := make(map[string]bool, len(names))
				for _, n := range names {
					seen[n] = true
					if nodes[n] == nil {
						nodes[n] = &cometNodeState{cache: newDataCache[api.CometNodeData]()}
					}
				}
				for n := range nodes {
					if !seen[n] {
						delete(nodes, n)
					}
				}
			}
			for name, st := range nodes {
				if st.watch != nil {
					continue
				}
				np := path + "/" + name
				children, _, ch, err := conn.ChildrenW(np)
				if errors.Is(err, zk.ErrNoNode) {
					// Deleted after the root was read; the root watch fires.
					delete(nodes, name)
					continue
				}
				if err != nil {
					return fmt.Errorf("watch %s: %w", np, err)
				}
				st.watch = ch
				names, datas, err := st.cache.read(conn, np, sortedCopy(children), checkCometData, log)
				if err != nil {
					st.watch = nil // read it again; the pending watch fires at most once
					return err
				}
				st.serving = nil
				if len(names) > 0 {
					st.serving = &CometInstance{Node: name, Child: names[0], Data: datas[0]}
				}
			}
			return nil
		}()
		if err != nil {
			if ctx.Err() != nil || z.closing.Load() {
				return
			}
			log.Warn("comet watcher: retrying", "err", err)
			if !bo.sleep(ctx) {
				return
			}
			continue
		}
		bo.reset()

		view := CometView{Weights: make(map[string]int, len(nodes)), Serving: make(map[string]*CometInstance, len(nodes))}
		for name, st := range nodes {
			w, ok := lastWeight[name]
			if !ok {
				w = 1
			}
			if st.serving != nil {
				w = st.serving.Data.Weight
				view.Serving[name] = st.serving
			}
			view.Weights[name] = w
		}
		for name := range lastWeight {
			if nodes[name] == nil {
				delete(lastWeight, name)
			}
		}
		for name, w := range view.Weights {
			lastWeight[name] = w
		}
		if published == nil || !reflect.DeepEqual(*published, view) {
			published = &view
			fn(view)
		}

		var ws watchSet
		ws.add("", rootWatch)
		for name, st := range nodes {
			ws.add("/"+name, st.watch)
		}
		key, ev, ok := ws.wait(ctx)
		if !ok {
			return
		}
		log.Debug("comet watcher event", "key", key, "type", ev.Type.String(), "err", ev.Err)
		if ev.Type == zk.EventNotWatching {
			// Session expired or connection closing: every watch is gone.
			rootWatch = nil
			nodes = map[string]*cometNodeState{}
			if !bo.sleep(ctx) { // do not spin on a closed connection
				return
			}
			continue
		}
		if key == "" {
			rootWatch = nil
		} else if st := nodes[key[1:]]; st != nil {
			st.watch = nil
		}
	}
}
