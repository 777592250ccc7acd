package api

import "encoding/json"

// Rooms and public broadcast (issue 8, docs/rooms.md). These methods are new
// in gopush: 1.0.5 nodes do not have them and answer "rpc: can't find
// method" (see IsNoSuchMethod). The docs/protocol.md §4 methods above are unchanged.
const (
	// MessageRoomJoin adds keys to a room: *MessageRoomArgs → *int.
	// Refused whole, with an error starting with RoomFullPrefix, when the
	// room would hold more than the node's room.max keys.
	MessageRoomJoin = "MessageRPC.RoomJoin"
	// MessageRoomLeave removes keys from a room: *MessageRoomArgs → *int.
	MessageRoomLeave = "MessageRPC.RoomLeave"
	// MessageRoomKeys lists a room's keys: string room id →
	// *MessageRoomKeysResp. A room that does not exist has no keys.
	MessageRoomKeys = "MessageRPC.RoomKeys"
	// MessageRoomDel deletes a room: string room id → *int.
	MessageRoomDel = "MessageRPC.RoomDel"
	// MessageSavePublic keeps a public message: *MessageSavePublicArgs →
	// *int.
	MessageSavePublic = "MessageRPC.SavePublic"
	// MessageGetPublic returns the unexpired public messages newer than a
	// mid: *MessageGetPublicArgs → *MessageGetResp (GroupId 1).
	MessageGetPublic = "MessageRPC.GetPublic"

	// CometBroadcast sends a public message to every connection of the
	// comet: *CometBroadcastArgs → *int.
	CometBroadcast = "CometRPC.Broadcast"
)

// RoomFullPrefix starts the text of the error MessageRPC.RoomJoin returns
// when the room would grow beyond its limit (web answers it with its own
// code). Other bad input starts with "param: ".
const RoomFullPrefix = "roomfull: "

// MessageRoomArgs names a room and keys to add to it or remove from it.
type MessageRoomArgs struct {
	Room string
	Keys []string
}

// MessageRoomKeysResp holds a room's keys, sorted.
type MessageRoomKeysResp struct {
	Keys []string
}

// MessageSavePublicArgs keeps one public message under MsgId for Expire
// seconds.
type MessageSavePublicArgs struct {
	Msg    json.RawMessage
	MsgId  int64
	Expire uint
}

// MessageGetPublicArgs asks for the public messages newer than MsgId.
type MessageGetPublicArgs struct {
	MsgId int64
}

// CometBroadcastArgs is one public message for every connection of a
// comet. The caller (web) assigns MsgId, so that every comet delivers the
// same mid and the stored copy has it too.
type CometBroadcastArgs struct {
	Msg   json.RawMessage
	MsgId int64
}
