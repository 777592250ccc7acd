package api

import (
	"net/http"
	"strconv"
)

// Server-Sent Events on comet (docs/protocol.md §2.5): GET /sse with the
// parameters of the WebSocket subscribe answers text/event-stream. What
// follows the response header:
//
//	:+h\n\n                       subscribed (the "+h" of §2.1)
//	id: <mid>\ndata: <json>\n\n   a private message (gid 0)
//	data: <json>\n\n              a public message (gid 1): no id
//	:h\n\n                        a heartbeat, every heartbeat seconds
//
// A refusal is an HTTP error before any stream starts, its body the TCP
// reply ("-n\r\n", ...), its status SSEStatus of that reply.

// The SSE comments comet sends.
const (
	SSESubscribed = ":+h\n\n"
	SSEHeartbeat  = ":h\n\n"
)

// SSEPath is the path of the SSE subscribe on comet's WebSocket listeners.
const SSEPath = "/sse"

// LastEventIDHeader carries the mid of the last private message an
// EventSource got; comet first sends the stored ones after it.
const LastEventIDHeader = "Last-Event-ID"

// SSEStatus is the HTTP status of an error reply of §2.1 on SSE.
func SSEStatus(reply string) int {
	switch reply {
	case ReplyParam:
		return http.StatusBadRequest
	case ReplyAuth:
		return http.StatusForbidden
	case ReplyChannel:
		return http.StatusTooManyRequests
	case ReplyNotOwner:
		return http.StatusMisdirectedRequest
	}
	return http.StatusInternalServerError
}

// AppendSSEMessage appends one event holding the message JSON body (which
// has no newline: compact JSON). A private message (gid 0) carries its mid
// as the event id, so that a reconnecting EventSource sends it back as
// Last-Event-ID; a public one (gid 1) has mids of another sequence and
// carries none, so the client's last private mid stays its resume point.
func AppendSSEMessage(b, body []byte, mid int64, gid uint) []byte {
	if gid != PublicGroupId {
		b = append(b, "id: "...)
		b = strconv.AppendInt(b, mid, 10)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, body...)
	return append(b, '\n', '\n')
}
