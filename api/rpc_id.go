package api

import (
	"encoding/json"
	"fmt"
)

// Idempotent pushes (docs/protocol.md §9.27, docs/reliability.md "Push
// ids"). A backend may give a push its own id; a retry with the same id
// (for a private push: the same key and the same id) within the message's
// lifetime stores and delivers nothing new and answers the first outcome's
// mid. These methods are new in gopush: 1.0.5 nodes answer "rpc: can't
// find method" (see gobrpc.IsNoSuchMethod), and the callers fall back to
// the push without an id. A push without an id goes the 1.0.5 way, bytes
// unchanged.
const (
	// CometPushPrivateId pushes one message to one key under a push id:
	// *CometPushPrivateIdArgs → *PushIdReply.
	CometPushPrivateId = "CometRPC.PushPrivateId"
	// MessageSavePrivateId stores one message for one key under a push
	// id, or only records the id when Expire is 0:
	// *MessageSavePrivateIdArgs → *PushIdReply.
	MessageSavePrivateId = "MessageRPC.SavePrivateId"
	// MessageSavePublicId keeps a public message under a push id, or only
	// records the id when Expire is 0: *MessageSavePublicIdArgs →
	// *PushIdReply.
	MessageSavePublicId = "MessageRPC.SavePublicId"
)

// NoPushIds is the text of the error a message node answers to a save
// under an id when its storage cannot keep ids (MySQL). web answers the
// push 65534: a retry cannot help, the cluster needs Redis storage.
const NoPushIds = "push ids need storage.type = redis; this message node cannot keep them"

// MaxPushIdLen is the longest push id, in bytes.
const MaxPushIdLen = 64

// CheckPushId refuses an empty push id, one over MaxPushIdLen bytes, and
// one with a byte outside printable ASCII (0x21–0x7e: no space, no control
// character, no UTF-8), so that an id is the same string wherever it goes
// (a query parameter, a form, a log line, a Redis key).
func CheckPushId(id string) error {
	if id == "" {
		return fmt.Errorf("empty push id")
	}
	if len(id) > MaxPushIdLen {
		return fmt.Errorf("push id of %d bytes is over the limit of %d bytes", len(id), MaxPushIdLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("push id has a byte 0x%02x at %d: only printable ASCII without spaces is allowed", c, i)
		}
	}
	return nil
}

// CometPushPrivateIdArgs pushes one message to one key under push id Id.
type CometPushPrivateIdArgs struct {
	Key      string
	Msg      json.RawMessage
	Expire   uint
	Deadline int64 // caller's deadline (deadline.go); 0: none
	Id       string
}

// MessageSavePrivateIdArgs stores one message for one key under push id
// Id. With Expire 0 nothing is stored: only the id is recorded (for the
// message node's storage.idttl), so that retries of an online-only push
// are recognised too.
type MessageSavePrivateIdArgs struct {
	Key      string
	Msg      json.RawMessage
	MsgId    int64
	Expire   uint
	Deadline int64 // caller's deadline (deadline.go); 0: none
	Id       string
}

// MessageSavePublicIdArgs keeps a public message (push/all) under push id
// Id; with Expire 0 it only records the id.
type MessageSavePublicIdArgs struct {
	Msg      json.RawMessage
	MsgId    int64
	Expire   uint
	Deadline int64 // caller's deadline (deadline.go); 0: none
	Id       string
}

// PushIdReply is the answer of a push or save under a push id: Mid is the
// mid the message has (its first push's when Dup), Dup tells that the id
// was known already, so that nothing new was stored.
type PushIdReply struct {
	Mid int64
	Dup bool
}

// Retry advice: the data.retry of a push answered 65535 (docs/protocol.md
// §3.2), telling a backend what a retry may do.
const (
	// RetrySafe: nothing was done (the call was never sent, or was refused
	// before it took effect); a retry, with or without the id, pushes once.
	RetrySafe = "safe"
	// RetrySameId: the outcome is unknown (the call was sent and no answer
	// came in time); retry with the same id so that it is not done twice.
	RetrySameId = "same-id"
)

// RetryData is the data of a failed push answer (ret 65535) that carried
// an id.
type RetryData struct {
	Retry string `json:"retry"`
}

// PushIdData is the data of a push/private answer (ret 0) that carried an
// id: the message's mid (the first push's on a retry), whether this answer
// is a retry's (dup), and, when no comet took it, that it was kept without
// being delivered (as PushStored).
type PushIdData struct {
	Mid       int64 `json:"mid"`
	Dup       bool  `json:"dup,omitempty"`
	Stored    bool  `json:"stored,omitempty"`
	Delivered *bool `json:"delivered,omitempty"`
}
