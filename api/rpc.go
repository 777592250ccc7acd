// Package api is gopush's contract, the one place where it is written down
// in code: what comet, web, message and their clients say to each other.
//
//   - rpc.go, rpc_room.go: the RPC service and method names and the
//     argument and reply types (docs/protocol.md §4);
//   - zknode.go: the data of the ZooKeeper nodes (§5);
//   - wire.go: the client protocol on comet, TCP and WebSocket (§2);
//   - reply.go: web's reply envelope, its codes and JSONP (§3).
//
// The RPC type and field names are part of the contract: gob matches fields
// by name, so a 1.0.5 node can talk to this one only while they stay as they
// are. Add new types for new methods; never rename these.
package api

import "encoding/json"

// Service and method names, as registered with net/rpc.
const (
	CometService = "CometRPC"

	CometNew          = "CometRPC.New"
	CometClose        = "CometRPC.Close"
	CometPushPrivate  = "CometRPC.PushPrivate"
	CometPushPrivates = "CometRPC.PushPrivates"
	CometMigrate      = "CometRPC.Migrate"
	CometPing         = "CometRPC.Ping"

	MessageService = "MessageRPC"

	MessagePing         = "MessageRPC.Ping"
	MessageSavePrivate  = "MessageRPC.SavePrivate"
	MessageSavePrivates = "MessageRPC.SavePrivates"
	MessageGetPrivate   = "MessageRPC.GetPrivate"
	MessageDelPrivate   = "MessageRPC.DelPrivate"

	// MessageSavePrivatesEach is new in gopush (not in 1.0.5): like
	// SavePrivates, but every key carries its own mid, so that keys pushed
	// together never share one (docs/protocol.md §9.8). A comet talking to a 1.0.5
	// message node falls back to SavePrivates.
	MessageSavePrivatesEach = "MessageRPC.SavePrivatesEach"
)

// Group ids carried in Message.GroupId.
const (
	PrivateGroupId = 0
	PublicGroupId  = 1
)

// OK is the int reply of a successful call.
const OK = 0

// CometNewArgs asks a comet to accept Token for Key for Expire seconds.
type CometNewArgs struct {
	Expire int64
	Token  string
	Key    string
}

// CometPushPrivateArgs pushes one message to one key.
type CometPushPrivateArgs struct {
	Key      string
	Msg      json.RawMessage
	Expire   uint
	Deadline int64 // caller's deadline (deadline.go); 0: none, as from 1.0.5
}

// CometPushPrivatesArgs pushes one message to several keys.
type CometPushPrivatesArgs struct {
	Keys     []string
	Msg      json.RawMessage
	Expire   uint
	Deadline int64 // caller's deadline (deadline.go); 0: none, as from 1.0.5
}

// CometPushPrivatesResp lists the keys whose message could not be stored.
type CometPushPrivatesResp struct {
	FKeys []string
}

// CometMigrateArgs carries the new comet node→weight map.
type CometMigrateArgs struct {
	Nodes map[string]int
}

// MessageSavePrivateArgs stores one message for one key.
type MessageSavePrivateArgs struct {
	Key      string
	Msg      json.RawMessage
	MsgId    int64
	Expire   uint
	Deadline int64 // caller's deadline (deadline.go); 0: none, as from 1.0.5
}

// MessageSavePrivatesArgs stores one message for several keys.
type MessageSavePrivatesArgs struct {
	Keys     []string
	Msg      json.RawMessage
	MsgId    int64
	Expire   uint
	Deadline int64 // caller's deadline (deadline.go); 0: none, as from 1.0.5
}

// MessageSavePrivatesEachArgs stores one message for several keys, each
// under its own mid.
type MessageSavePrivatesEachArgs struct {
	Keys     []string
	MsgIds   []int64 // MsgIds[i] is the mid of Keys[i]
	Msg      json.RawMessage
	Expire   uint
	Deadline int64 // caller's deadline (deadline.go); 0: none, as from 1.0.5
}

// MessageSavePrivatesResp lists the keys that could not be stored.
type MessageSavePrivatesResp struct {
	FKeys []string
}

// MessageGetPrivateArgs asks for Key's messages newer than MsgId.
type MessageGetPrivateArgs struct {
	MsgId int64
	Key   string
}

// MessageGetResp holds messages in ascending mid order.
type MessageGetResp struct {
	Msgs []*Message
}

// Message is one stored or delivered message.
type Message struct {
	Msg     json.RawMessage `json:"msg"`
	MsgId   int64           `json:"mid"`
	GroupId uint            `json:"gid"`
}
