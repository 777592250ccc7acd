package api

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Answer codes of web's HTTP API (docs/protocol.md §3), carried in the "ret"
// field of every answer. 0, 1001, 65534 and 65535 are 1.0.5's; 1002 (rooms),
// 1003 and 1004 (docs/security.md) and 1005 (presence) are gopush's.
const (
	CodeOK           = 0
	CodeNoNode       = 1001  // no comet serves the key
	CodeRoomFull     = 1002  // a room join would pass the room's key limit
	CodeUnauthorized = 1003  // admin request without the bearer token (HTTP 401)
	CodeTooMany      = 1004  // too many connections from the address (HTTP 429)
	CodeTooManyKeys  = 1005  // a presence question names more keys than allowed
	CodeParamErr     = 65534 // the request is wrong
	CodeInternalErr  = 65535 // an RPC failed or timed out
)

// Reply is web's answer envelope {"ret":..,"msg":"ok","data":{..}}. Msg is
// set only by the unversioned (pre-1.0) paths; Data is left out when nil.
type Reply struct {
	Ret  int    `json:"ret"`
	Msg  string `json:"msg,omitempty"`
	Data any    `json:"data,omitempty"`
}

// ValidCallback reports whether a JSONP callback name is safe to echo into
// a script: identifiers, dots and brackets with digits, as JSONP SDKs
// generate ("cb", "jQuery1102_123", "a.b[0]"), at most 128 bytes.
func ValidCallback(cb string) bool {
	if cb == "" || len(cb) > 128 {
		return false
	}
	for i := 0; i < len(cb); i++ {
		c := cb[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '$', c == '.', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// Content types of an answer.
const (
	ContentJSON  = "application/json"
	ContentJSONP = "application/javascript"
)

// EncodeReply returns the bytes of rep and their content type: JSON, or
// JSONP cb(...) when cb is not empty. cb must be a ValidCallback.
func EncodeReply(rep Reply, cb string) (body []byte, contentType string, err error) {
	body, err = json.Marshal(rep)
	if err != nil {
		return nil, "", err
	}
	if cb == "" {
		return body, ContentJSON, nil
	}
	out := make([]byte, 0, len(cb)+len(body)+2)
	out = append(append(append(out, cb...), '('), body...)
	return append(out, ')'), ContentJSONP, nil
}

// ReplyError is an answer whose ret is not CodeOK.
type ReplyError struct {
	Ret int
}

func (e *ReplyError) Error() string { return fmt.Sprintf("web answered ret %d", e.Ret) }

// DecodeReply parses a JSON answer of web. It returns its data (nil when
// absent), a *ReplyError when ret is not 0, or another error when body is
// not an answer at all.
func DecodeReply(body []byte) (data json.RawMessage, err error) {
	if string(body) == `{"ret":0}` { // the common answer, without decoding
		return nil, nil
	}
	var ans struct {
		Ret  *int            `json:"ret"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("answer is not JSON: %w", err)
	}
	if ans.Ret == nil {
		return nil, errors.New("answer has no ret")
	}
	if *ans.Ret != CodeOK {
		return ans.Data, &ReplyError{Ret: *ans.Ret}
	}
	return ans.Data, nil
}

// RetOf returns the ret code of an error from DecodeReply: CodeOK for nil,
// the code of a *ReplyError, and -1 for anything else.
func RetOf(err error) int {
	if err == nil {
		return CodeOK
	}
	var re *ReplyError
	if errors.As(err, &re) {
		return re.Ret
	}
	return -1
}

// The data of web's public answers (§3.1), as clients decode them.
type (
	// ServerData answers /1/server/get.
	ServerData struct {
		Server string `json:"server"`
	}
	// ServersData answers /2/server/get.
	ServersData struct {
		Server []string `json:"server"`
	}
	// MsgsData answers /1/msg/get: private messages, and public ones when
	// pm was given, each ascending by mid.
	MsgsData struct {
		Msgs  []Message `json:"msgs"`
		PMsgs []Message `json:"pmsgs"`
	}
	// TimeData answers /1/time/get: now in 100 ns units since the epoch.
	TimeData struct {
		TimeID int64 `json:"timeid"`
	}
	// FailedKeysData answers /1/admin/push/mprivate (and room pushes) when
	// some keys failed (fk), or were kept through a message node but not
	// delivered because no comet could take them (sk, gopush; absent when
	// none). fk is always present, [] when only sk has keys.
	FailedKeysData struct {
		FKeys []string `json:"fk"`
		SKeys []string `json:"sk,omitempty"`
	}
)
