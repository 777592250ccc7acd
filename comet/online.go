package comet

import (
	"errors"
	"fmt"

	"gopush/api"
)

// Online answers web's presence questions (docs/protocol.md §3.9):
// for each key asked, how many subscribed connections it has on this comet
// (TCP, WebSocket and SSE alike; 0 when none), and how many subscribed
// connections this comet holds in all. A key is counted whether or not the
// ring gives it to this comet: during a migration its connections may still
// be here. It is new in gopush; 1.0.5 comets do not have it.
func (r *RPC) Online(args *api.CometOnlineArgs, reply *api.CometOnlineResp) error {
	if args == nil {
		return errors.New("param: CometRPC.Online: no arguments")
	}
	if len(args.Keys) > api.MaxOnlineKeys {
		return fmt.Errorf("param: CometRPC.Online: %d keys, more than %d", len(args.Keys), api.MaxOnlineKeys)
	}
	counts := make([]int, len(args.Keys))
	for i, k := range args.Keys {
		counts[i] = r.c.hub.count(k)
	}
	reply.Counts = counts
	reply.Conns = r.c.stats.subscribed()
	return nil
}
