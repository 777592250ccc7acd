// Package myrpc holds what comet, web and message share on the wire: the
// net/rpc service and method names, the argument and reply types of SPEC §4,
// the ZooKeeper layout of SPEC §5, and the clients built on them.
//
// The type and field names below are part of the contract: gob matches fields
// by name, so a 1.0.5 node can talk to this one only while they stay as they
// are. Add new types for new methods; never rename these.
package myrpc

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
	// together never share one (SPEC §9.8). A comet talking to a 1.0.5
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

// MaxKeyLen is the longest key, in bytes, that gopush accepts anywhere: the
// width of the MySQL skey column of SPEC §7. comet refuses a longer key with
// -p, web with 65534.
const MaxKeyLen = 64

// CometNewArgs asks a comet to accept Token for Key for Expire seconds.
type CometNewArgs struct {
	Expire int64
	Token  string
	Key    string
}

// CometPushPrivateArgs pushes one message to one key.
type CometPushPrivateArgs struct {
	Key    string
	Msg    json.RawMessage
	Expire uint
}

// CometPushPrivatesArgs pushes one message to several keys.
type CometPushPrivatesArgs struct {
	Keys   []string
	Msg    json.RawMessage
	Expire uint
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
	Key    string
	Msg    json.RawMessage
	MsgId  int64
	Expire uint
}

// MessageSavePrivatesArgs stores one message for several keys.
type MessageSavePrivatesArgs struct {
	Keys   []string
	Msg    json.RawMessage
	MsgId  int64
	Expire uint
}

// MessageSavePrivatesEachArgs stores one message for several keys, each
// under its own mid.
type MessageSavePrivatesEachArgs struct {
	Keys   []string
	MsgIds []int64 // MsgIds[i] is the mid of Keys[i]
	Msg    json.RawMessage
	Expire uint
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

// CometNodeData is the JSON a comet instance writes into its ephemeral
// ZooKeeper node (SPEC §5). TCP and WS hold the advertised addresses
// (host:port). WSS and TCPTLS are new in gopush (docs/tls.md): the
// addresses of its TLS listeners, left out of the JSON when there are
// none; a 1.0.5 web decodes the node with encoding/json, which skips
// fields it does not know. A WSS entry is host:port or a full wss:// URL.
type CometNodeData struct {
	RPC    []string `json:"rpc"`
	TCP    []string `json:"tcp"`
	WS     []string `json:"ws"`
	Weight int      `json:"weight"`
	WSS    []string `json:"wss,omitempty"`
	TCPTLS []string `json:"tcptls,omitempty"`
}

// MessageNodeData is the JSON a message instance writes into its ephemeral
// ZooKeeper node (SPEC §5).
type MessageNodeData struct {
	RPC    []string `json:"rpc"`
	Weight int      `json:"weight"`
}
