package comet

import (
	"encoding/json"
	"errors"
	"fmt"
	"gopush/api"
)

// Public broadcast (issue 8, docs/rooms.md): web's /1/admin/push/all sends
// one message to every connection of every comet, with gid 1 and the mid
// web chose. comet neither stores it (web does, through MessageRPC) nor
// looks at keys: every subscribed connection gets it once.

// broadcast queues msg, under mid, to every subscribed connection and
// returns how many connections it was queued to. A connection whose queue
// is full is closed, as for a private push.
func (c *Comet) broadcast(msg json.RawMessage, mid int64) (int, error) {
	if mid <= 0 {
		return 0, fmt.Errorf("mid must be positive, got %d", mid)
	}
	body, err := compactJSON(msg)
	if err != nil {
		return 0, errNotJSON
	}
	m := &message{msg: body, mid: mid, gid: api.PublicGroupId}
	m.buildAll() // the fan-out below may share m between goroutines
	n := c.hub.fanOut(c.stats.subscribed(), m.sendTo)
	c.stats.framesQueued.Add(int64(n))
	c.log.Debug("broadcast", "mid", mid, "queued", n)
	return n, nil
}

// Broadcast sends a public message (gid 1, mid chosen by the caller) to
// every connection of this comet. It is new in gopush; 1.0.5 comets do not
// have it.
func (r *RPC) Broadcast(args *api.CometBroadcastArgs, reply *int) error {
	if args == nil {
		return errors.New("CometRPC.Broadcast: no arguments")
	}
	r.c.stats.rpcBroadcast.Add(1)
	if _, err := r.c.broadcast(args.Msg, args.MsgId); err != nil {
		return fmt.Errorf("CometRPC.Broadcast: %w", err)
	}
	*reply = api.OK
	return nil
}
