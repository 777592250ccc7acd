package message

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopush/api"
	"gopush/internal/observe"
)

// healthTimeout bounds one check of every shard.
const healthTimeout = 2 * time.Second

// shardHealth checks every shard and lists them sorted by name.
func shardHealth(ctx context.Context, store Storage) []api.MessageShardHealth {
	res := store.CheckShards(ctx)
	out := make([]api.MessageShardHealth, 0, len(res))
	for name, err := range res {
		h := api.MessageShardHealth{Name: name, OK: err == nil}
		if err != nil {
			h.Error = err.Error()
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b api.MessageShardHealth) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Health answers the state of every storage shard (web's cluster
// dashboard asks it). It is new in gopush.
func (r *RPC) Health(_ int, reply *api.MessageHealthResp) (err error) {
	defer r.met.call(mHealth, time.Now(), &err)
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	reply.Storage = r.kind
	reply.Shards = shardHealth(ctx, r.store)
	return nil
}

// ready is the message daemon's /readyz: the ZooKeeper session is up, the
// node is registered, and every storage shard answers. Some shards down is
// "degraded" (the keys of the others are still served), all of them down
// is not ready.
func (d *Daemon) ready(ctx context.Context) []observe.Check {
	checks := []observe.Check{d.zkCheck()}
	shards := shardHealth(ctx, d.store)
	var down []string
	for _, s := range shards {
		if !s.OK {
			down = append(down, s.Name)
			checks = append(checks, observe.Check{Name: "storage shard " + s.Name, Degraded: true, Detail: s.Error})
		}
	}
	if len(down) == 0 {
		checks = append(checks, observe.Check{Name: "storage", OK: true, Detail: fmt.Sprintf("%d shards answer", len(shards))})
	} else if len(down) == len(shards) {
		checks = append(checks, observe.Check{Name: "storage", Detail: "no shard answers: " + strings.Join(down, ", ")})
	}
	return checks
}
