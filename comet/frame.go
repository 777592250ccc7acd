package comet

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"gopush/myrpc"
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

// reply is a fixed answer in every protocol. On SSE (docs/protocol.md
// §2.5) "+h" is the comment ":+h" that follows the response header, and an
// error is an HTTP error answer with status and the TCP reply as its body,
// sent before any stream starts.
type reply struct {
	tcp, ws, sse []byte
	status       int // HTTP status of the error on SSE; 0 for +h
}

func newReply(s string, status int) reply {
	r := reply{tcp: []byte(s), ws: appendWSText(nil, []byte(s)), status: status}
	if status == 0 {
		r.sse = []byte(":" + strings.TrimSuffix(s, "\r\n") + "\n\n")
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

// The replies of SPEC §2.1. They are never modified.
var (
	replyOK       = newReply("+h\r\n", 0)                             // subscribed; also the heartbeat answer
	replyParam    = newReply("-p\r\n", http.StatusBadRequest)         // parameter error
	replyAuth     = newReply("-a\r\n", http.StatusForbidden)          // token check failed
	replyChannel  = newReply("-c\r\n", http.StatusTooManyRequests)    // channel refused (maxsubscriber reached)
	replyNotOwner = newReply("-n\r\n", http.StatusMisdirectedRequest) // the key belongs to another comet
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
	gid    int64                // myrpc.PrivateGroupId or myrpc.PublicGroupId
	frames [2][numProtos][]byte // [old form][proto]
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
	switch p {
	case protoWS:
		f = appendWSText(make([]byte, 0, len(body)+10), body)
	case protoSSE:
		f = m.appendSSE(make([]byte, 0, len(body)+40), body)
	default:
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

// appendSSE appends one Server-Sent Event holding body: "id: <mid>\n" for
// a private message (gid 0), so that a reconnecting EventSource sends its
// mid back as Last-Event-ID, then "data: <body>\n\n". A public message
// (gid 1) has mids of another sequence and carries no id, so the last
// private mid stays the client's resume point. The body is compact JSON and
// holds no newline, so it is always one data line.
func (m *message) appendSSE(b, body []byte) []byte {
	if m.gid != myrpc.PublicGroupId {
		b = append(b, "id: "...)
		b = strconv.AppendInt(b, m.mid, 10)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, body...)
	return append(b, '\n', '\n')
}
