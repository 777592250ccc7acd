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

func checkMessageData(d *api.MessageNodeData) error {
	if d.Weight <= 0 {
		return fmt.Errorf("weight %d: must be positive", d.Weight)
	}
	if len(d.RPC) == 0 {
		return errors.New("no rpc address")
	}
	return nil
}

// WatchMessages watches <path>'s children and calls fn with the list of
// message nodes (sorted by child name; children with bad data left out)
// once at start, as soon as it could be read, and after each change. A
// missing path is an empty list. It blocks until ctx ends; on errors it
// backs off and retries. fn runs on the watcher's goroutine, should return
// quickly, and must not modify the slice.
func WatchMessages(ctx context.Context, z *ZK, path string, log *slog.Logger, fn func([]api.MessageNode)) {
	ctx, stop, log, ok := z.startWatch(ctx, path, log, "message")
	if !ok {
		return
	}
	defer stop()
	conn := z.Conn()
	cache := newDataCache[api.MessageNodeData]()
	var (
		published []api.MessageNode
		first     = true
		bo        backoff
	)
	for ctx.Err() == nil {
		children, _, watch, err := conn.ChildrenW(path)
		if errors.Is(err, zk.ErrNoNode) {
			var ok bool
			ok, _, watch, err = conn.ExistsW(path)
			if err == nil && ok {
				continue // created meanwhile: read it
			}
			children = nil
		}
		var nodes []api.MessageNode
		if err == nil {
			var names []string
			var datas []api.MessageNodeData
			names, datas, err = cache.read(conn, path, sortedCopy(children), checkMessageData, log)
			for i := range names {
				nodes = append(nodes, api.MessageNode{Child: names[i], Data: datas[i]})
			}
		}
		if err != nil {
			if ctx.Err() != nil || z.closing.Load() {
				return
			}
			log.Warn("message watcher: retrying", "err", err)
			if !bo.sleep(ctx) {
				return
			}
			// A watch set by a failed round fires at most once; the next
			// round sets a new one.
			continue
		}
		bo.reset()
		if first || !reflect.DeepEqual(published, nodes) {
			first = false
			published = nodes
			fn(nodes)
		}
		var ws watchSet
		ws.add("", watch)
		_, ev, ok := ws.wait(ctx)
		if !ok {
			return
		}
		log.Debug("message watcher event", "type", ev.Type.String(), "err", ev.Err)
		if ev.Type == zk.EventNotWatching {
			cache = newDataCache[api.MessageNodeData]()
			if !bo.sleep(ctx) {
				return
			}
		}
	}
}
