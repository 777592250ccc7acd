package comet

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"
)

// Wire frames (SPEC §2). Every frame is built once and the same bytes are
// queued to every connection that needs them.
//
// On TCP a reply is the bare "+h\r\n" and a message is a bulk string
// "$<len>\r\n<json>\r\n". On WebSocket both are one unmasked text frame
// holding the reply or the JSON. comet writes its WebSocket data frames
// itself, whole, so that a message is always one frame whatever its size and
// is encoded once for all the connections it goes to; gorilla/websocket
// handles the upgrade, reading, and control frames.

// reply is a fixed answer in both protocols.
type reply struct{ tcp, ws []byte }

func newReply(s string) reply {
	return reply{tcp: []byte(s), ws: appendWSText(nil, []byte(s))}
}

func (r reply) frame(p proto) []byte {
	if p == protoWS {
		return r.ws
	}
	return r.tcp
}

// The replies of SPEC §2.1. They are never modified.
var (
	replyOK       = newReply("+h\r\n") // subscribed; also the heartbeat answer
	replyParam    = newReply("-p\r\n") // parameter error
	replyAuth     = newReply("-a\r\n") // token check failed
	replyChannel  = newReply("-c\r\n") // channel refused (maxsubscriber reached)
	replyNotOwner = newReply("-n\r\n") // the key belongs to another comet
)

// appendWSText appends one final, unmasked text frame holding payload.
func appendWSText(b, payload []byte) []byte {
	n := len(payload)
	b = append(b, 0x81) // FIN + text
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// message is one pushed message, for one key (gid 0) or public (gid 1, a
// broadcast), with its frames built lazily: at most once per (form,
// protocol), whatever the number of connections. frame is not safe for
// concurrent use.
type message struct {
	msg    json.RawMessage // compact JSON
	mid    int64
	gid    int64        // api.PrivateGroupId or api.PublicGroupId
	frames [2][2][]byte // [old form][proto]
}

// compactJSON checks that msg is JSON and returns it without insignificant
// whitespace (as 1.0.5's encoding/json wrote it).
func compactJSON(msg []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	buf.Grow(len(msg))
	if err := json.Compact(&buf, msg); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// body returns the message JSON: {"msg":<raw>,"mid":N,"gid":G}, or in the
// old form {"msg":"<raw as a JSON string>","mid":N,"gid":G}.
func (m *message) body(old bool) []byte {
	var inner []byte
	if old {
		inner, _ = json.Marshal(string(m.msg)) // a string always marshals
	} else {
		inner = m.msg
	}
	b := make([]byte, 0, len(inner)+48)
	b = append(b, `{"msg":`...)
	b = append(b, inner...)
	b = append(b, `,"mid":`...)
	b = strconv.AppendInt(b, m.mid, 10)
	b = append(b, `,"gid":`...)
	b = strconv.AppendInt(b, m.gid, 10)
	return append(b, '}')
}

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
