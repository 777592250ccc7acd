package comet

import (
	"bytes"
	"encoding/json"
	"gopush/api"
)

// Wire frames (docs/protocol.md §2), encoded by package api. Every frame is
// built once and the same bytes are queued to every connection that needs
// them.
//
// comet writes its WebSocket data frames itself, whole, so that a message is
// always one frame whatever its size and is encoded once for all the
// connections it goes to; gorilla/websocket handles the upgrade, reading,
// and control frames.

// reply is a fixed answer in every protocol. On SSE (§2.5) "+h" is the
// comment ":+h" that follows the response header, and an error is an HTTP
// error answer with status and the TCP reply as its body, sent before any
// stream starts.
type reply struct {
	tcp, ws, sse []byte
	status       int // HTTP status of the error on SSE; 0 for +h
}

func newReply(s string) reply {
	r := reply{tcp: []byte(s), ws: api.AppendWSText(nil, []byte(s))}
	if s == api.ReplyOK {
		r.sse = []byte(api.SSESubscribed)
	} else {
		r.status = api.SSEStatus(s)
	}
	return r
}

func (r reply) frame(p proto) []byte {
	switch p {
	case protoWS:
		return r.ws
	case protoSSE:
		return r.sse
	}
	return r.tcp
}

// The replies of §2.1. They are never modified.
var (
	replyOK       = newReply(api.ReplyOK)
	replyParam    = newReply(api.ReplyParam)
	replyAuth     = newReply(api.ReplyAuth)
	replyChannel  = newReply(api.ReplyChannel)
	replyNotOwner = newReply(api.ReplyNotOwner)
)

// message is one pushed message, for one key (gid 0) or public (gid 1, a
// broadcast), with its frames built lazily: at most once per (form,
// protocol), whatever the number of connections. frame is not safe for
// concurrent use.
type message struct {
	msg    json.RawMessage // compact JSON
	mid    int64
	gid    int64                // api.PrivateGroupId or api.PublicGroupId
	frames [2][numProtos][]byte // [old form][proto]
}

// compactJSON checks that msg is JSON and returns it without insignificant
// whitespace (as 1.0.5's encoding/json wrote it).
func compactJSON(msg []byte) (json.RawMessage, error) {
	if bytes.IndexAny(msg, " \t\r\n") < 0 {
		// No whitespace byte at all, inside strings or out: already
		// compact (web sends most messages so). Checked, not copied.
		if !json.Valid(msg) {
			return nil, errNotJSON
		}
		return msg, nil
	}
	var buf bytes.Buffer
	buf.Grow(len(msg))
	if err := json.Compact(&buf, msg); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// buildAll builds every frame of m at once; after it, frame and sendTo are
// safe for concurrent use.
func (m *message) buildAll() {
	for _, old := range [...]bool{false, true} {
		for p := range numProtos {
			m.frame(p, old)
		}
	}
}

// sendTo queues m to cn (conn.sendMessage).
func (m *message) sendTo(cn *conn) bool { return cn.sendMessage(m) }

// frame returns the bytes to queue to a connection of protocol p that wants
// the old form or not.
func (m *message) frame(p proto, old bool) []byte {
	o := 0
	if old {
		o = 1
	}
	if f := m.frames[o][p]; f != nil {
		return f
	}
	body := api.AppendMessage(make([]byte, 0, len(m.msg)+48), m.msg, m.mid, uint(m.gid), old)
	var f []byte
	switch p {
	case protoWS:
		f = api.AppendWSText(make([]byte, 0, len(body)+10), body)
	case protoSSE:
		f = api.AppendSSEMessage(make([]byte, 0, len(body)+40), body, m.mid, uint(m.gid))
	default:
		f = api.AppendBulk(make([]byte, 0, len(body)+16), body)
	}
	m.frames[o][p] = f
	return f
}
