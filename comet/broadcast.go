package comet

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"gopush/myrpc"
)

// Public broadcast (issue 8, docs/rooms.md): web's /1/admin/push/all sends
// one message to every connection of every comet, with gid 1 and the mid
// web chose. comet neither stores it (web does, through MessageRPC) nor
// looks at keys: every subscribed connection gets it once.

// publicMessage is one broadcast message with its frames built lazily, at
// most once per (form, protocol), whatever the number of connections.
type publicMessage struct {
	msg    json.RawMessage // compact JSON
	mid    int64
	frames [2][2][]byte // [old form][proto]
}

// body returns {"msg":<raw>,"mid":N,"gid":1}, or in the old form
// {"msg":"<raw as a JSON string>","mid":N,"gid":1}.
func (m *publicMessage) body(old bool) []byte {
	inner := []byte(m.msg)
	if old {
		inner, _ = json.Marshal(string(m.msg)) // a string always marshals
	}
	b := make([]byte, 0, len(inner)+48)
	b = append(b, `{"msg":`...)
	b = append(b, inner...)
	b = append(b, `,"mid":`...)
	b = strconv.AppendInt(b, m.mid, 10)
	b = append(b, `,"gid":`...)
	b = strconv.AppendInt(b, myrpc.PublicGroupId, 10)
	return append(b, '}')
}

// frame returns the bytes to queue to a connection of protocol p that wants
// the old form or not. It is not safe for concurrent use.
func (m *publicMessage) frame(p proto, old bool) []byte {
	o := 0
	if old {
		o = 1
	}
	if f := m.frames[o][p]; f != nil {
		return f
	}
	body := m.body(old)
	var f []byte
	if p == protoWS {
		f = appendWSText(make([]byte, 0, len(body)+10), body)
	} else {
		f = make([]byte, 0, len(body)+16)
		f = append(f, '$')
		f = strconv.AppendInt(f, int64(len(body)), 10)
		f = append(f, '\r', '\n')
		f = append(f, body...)
		f = append(f, '\r', '\n')
	}
	m.frames[o][p] = f
	return f
}

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
	m := &publicMessage{msg: body, mid: mid}
	conns := c.hub.connsWhere(func(string) bool { return true })
	n := 0
	for _, cn := range conns {
		if cn.send(m.frame(cn.proto, cn.oldForm)) {
			n++
		}
	}
	c.stats.framesQueued.Add(int64(n))
	c.log.Debug("broadcast", "mid", mid, "connections", len(conns), "queued", n)
	return n, nil
}

// Broadcast sends a public message (gid 1, mid chosen by the caller) to
// every connection of this comet. It is new in gopush; 1.0.5 comets do not
// have it.
func (r *RPC) Broadcast(args *myrpc.CometBroadcastArgs, reply *int) error {
	if args == nil {
		return errors.New("CometRPC.Broadcast: no arguments")
	}
	if _, err := r.c.broadcast(args.Msg, args.MsgId); err != nil {
		return fmt.Errorf("CometRPC.Broadcast: %w", err)
	}
	*reply = myrpc.OK
	return nil
}
