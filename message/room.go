package message

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"gopush/api"
	"gopush/conf"
)

// Rooms and public messages (issue 8, docs/rooms.md).
//
// A room is a named set of keys that web pushes to as one. The message
// daemon keeps it on the storage shard that the ketama ring over the shard
// names picks for the room id, under room.prefix so that a room never
// collides with a subscriber key. Public messages (push/all with expire >
// 0) are kept in one sorted set, the newest public.store of them.

// roomStore keeps rooms and public messages. Implementations are safe for
// concurrent use.
type roomStore interface {
	// Join adds keys (distinct, checked) to room. It adds all of them or,
	// when the room would then hold more than its limit, none, and returns
	// a *roomFullError.
	Join(ctx context.Context, room string, keys []string) error
	// Leave removes keys from room; keys that are not in it are ignored.
	Leave(ctx context.Context, room string, keys []string) error
	// Keys returns room's keys, sorted; none when the room does not exist.
	Keys(ctx context.Context, room string) ([]string, error)
	// Del deletes room; deleting a room that does not exist is fine.
	Del(ctx context.Context, room string) error

	// SavePublic keeps one public message.
	SavePublic(ctx context.Context, e Entry) error
	// GetPublic returns the unexpired public messages with a mid above
	// after, ascending, with GroupId 1.
	GetPublic(ctx context.Context, after int64) ([]*api.Message, error)
}

// Room ids: 1 to maxRoomLen characters of [A-Za-z0-9_.:-].
const maxRoomLen = 64

// checkRoom refuses a room id that is empty, too long or has a character
// outside [A-Za-z0-9_.:-].
func checkRoom(room string) error {
	if room == "" {
		return paramErr("empty room id")
	}
	if len(room) > maxRoomLen {
		return paramErr("room id of %d bytes is over the limit of %d", len(room), maxRoomLen)
	}
	for i := 0; i < len(room); i++ {
		c := room[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '.', c == ':', c == '-':
		default:
			return paramErr("room id %.80q has a character outside [A-Za-z0-9_.:-]", room)
		}
	}
	return nil
}

// roomFullError is a join refused because of the room's limit. Its text
// starts with api.RoomFullPrefix, which is what web looks for.
type roomFullError struct {
	room          string
	has, add, max int
}

func (e *roomFullError) Error() string {
	return fmt.Sprintf("%sroom %q holds %d keys; adding %d would pass the limit of %d",
		api.RoomFullPrefix, e.room, e.has, e.add, e.max)
}

// errRoomsUnsupported is the answer of a storage without rooms.
var errRoomsUnsupported = errors.New("rooms and public messages are not supported by this storage type")

// openRoomStore returns the room store that goes with store: rooms live on
// the same shards as the messages; other storage types answer every call
// with an error.
func openRoomStore(cfg *conf.Message, store Storage) roomStore {
	switch st := store.(type) {
	case *RedisStorage:
		return newRedisRooms(st, cfg)
	case *MySQLStorage:
		return newMySQLRooms(st, cfg)
	}
	return unsupportedRooms{}
}

// withRooms gives the MessageRPC receiver r the rooms of cfg over store,
// and returns r. It is called once, before r is served.
func withRooms(r *RPC, cfg *conf.Message, store Storage) *RPC {
	r.rooms = openRoomStore(cfg, store)
	return r
}

// unsupportedRooms is the room store of storage types without rooms.
type unsupportedRooms struct{}

func (unsupportedRooms) Join(context.Context, string, []string) error  { return errRoomsUnsupported }
func (unsupportedRooms) Leave(context.Context, string, []string) error { return errRoomsUnsupported }
func (unsupportedRooms) Keys(context.Context, string) ([]string, error) {
	return nil, errRoomsUnsupported
}
func (unsupportedRooms) Del(context.Context, string) error       { return errRoomsUnsupported }
func (unsupportedRooms) SavePublic(context.Context, Entry) error { return errRoomsUnsupported }
func (unsupportedRooms) GetPublic(context.Context, int64) ([]*api.Message, error) {
	return nil, errRoomsUnsupported
}

// roomsOf returns r's room store, or one that refuses everything when r
// was built without one (tests that serve newRPC alone).
func (r *RPC) roomsOf() roomStore {
	if r.rooms == nil {
		return unsupportedRooms{}
	}
	return r.rooms
}

// checkRoomArgs checks a room and its keys and returns the keys without
// repeats, in their first order.
func (r *RPC) checkRoomArgs(args *api.MessageRoomArgs) ([]string, error) {
	if args == nil {
		return nil, paramErr("no arguments")
	}
	if err := checkRoom(args.Room); err != nil {
		return nil, err
	}
	if len(args.Keys) == 0 {
		return nil, paramErr("no keys")
	}
	seen := make(map[string]struct{}, len(args.Keys))
	keys := make([]string, 0, len(args.Keys))
	for _, k := range args.Keys {
		if err := r.lim.checkKey(k); err != nil {
			return nil, err
		}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		keys = append(keys, k)
	}
	return keys, nil
}

// RoomJoin adds keys to a room. It adds all of them or, when the room
// would grow beyond room.max keys, none, and answers an error starting
// with api.RoomFullPrefix.
func (r *RPC) RoomJoin(args *api.MessageRoomArgs, reply *int) error {
	keys, err := r.checkRoomArgs(args)
	if err != nil {
		return r.refused("RoomJoin", err)
	}
	ctx, cancel := r.callCtx()
	defer cancel()
	if err := r.roomsOf().Join(ctx, args.Room, keys); err != nil {
		var full *roomFullError
		if errors.As(err, &full) {
			return r.refused("RoomJoin", err)
		}
		r.log.Warn("room join failed", "room", args.Room, "keys", len(keys), "err", err)
		return err
	}
	*reply = api.OK
	return nil
}

// RoomLeave removes keys from a room.
func (r *RPC) RoomLeave(args *api.MessageRoomArgs, reply *int) error {
	keys, err := r.checkRoomArgs(args)
	if err != nil {
		return r.refused("RoomLeave", err)
	}
	ctx, cancel := r.callCtx()
	defer cancel()
	if err := r.roomsOf().Leave(ctx, args.Room, keys); err != nil {
		r.log.Warn("room leave failed", "room", args.Room, "keys", len(keys), "err", err)
		return err
	}
	*reply = api.OK
	return nil
}

// RoomKeys answers the keys of a room, sorted; none for a room that does
// not exist.
func (r *RPC) RoomKeys(room string, reply *api.MessageRoomKeysResp) error {
	if err := checkRoom(room); err != nil {
		return r.refused("RoomKeys", err)
	}
	ctx, cancel := r.callCtx()
	defer cancel()
	keys, err := r.roomsOf().Keys(ctx, room)
	if err != nil {
		r.log.Warn("room keys failed", "room", room, "err", err)
		return err
	}
	slices.Sort(keys)
	reply.Keys = keys
	return nil
}

// RoomDel deletes a room.
func (r *RPC) RoomDel(room string, reply *int) error {
	if err := checkRoom(room); err != nil {
		return r.refused("RoomDel", err)
	}
	ctx, cancel := r.callCtx()
	defer cancel()
	if err := r.roomsOf().Del(ctx, room); err != nil {
		r.log.Warn("room delete failed", "room", room, "err", err)
		return err
	}
	*reply = api.OK
	return nil
}
