package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"gopush/api"
	"gopush/internal/routemux"
	"net/http"
	"net/rpc"
	"strings"
)

// Rooms and public broadcast (issue 8, docs/rooms.md), on admin.bind:
//
//	POST /1/admin/room/join?rid=R   body {"k":"k1,k2"}  → {"ret":0}
//	POST /1/admin/room/leave?rid=R  body {"k":"k1,k2"}  → {"ret":0}
//	GET  /1/admin/room/keys?rid=R                      → {"ret":0,"data":{"keys":[..]}}
//	POST /1/admin/room/del?rid=R                       → {"ret":0}
//	POST /1/admin/push/room?rid=R&expire=S  body = the message JSON
//	                                                   → {"ret":0} or {"ret":0,"data":{"fk":[..]}}
//	POST /1/admin/push/all?expire=S         body = the message JSON
//	                                                   → {"ret":0,"data":{"mid":N}} (+ "fn":[..])
//
// The message daemon keeps the rooms; web checks the input, asks it for a
// room's keys, and pushes to them exactly as push/mprivate does.

// errRoomFull is a join that the message node refused because the room
// would hold more than its room.max keys (api.CodeRoomFull).
var errRoomFull = errors.New("the room would hold more keys than its limit")

// handleRooms adds the room and broadcast endpoints to the admin mux.
func (w *Web) handleRooms(mux *routemux.Mux) {
	post := []string{http.MethodPost}
	mux.Handle("/1/admin/room/join", endpoint(w.log, post, "", false, w.roomJoin))
	mux.Handle("/1/admin/room/leave", endpoint(w.log, post, "", false, w.roomLeave))
	mux.Handle("/1/admin/room/keys", endpoint(w.log, []string{http.MethodGet}, "", false, w.roomKeys))
	mux.Handle("/1/admin/room/del", endpoint(w.log, post, "", false, w.roomDel))
	mux.Handle("/1/admin/push/room", endpoint(w.log, post, "", false, w.met.countPush(kindRoom, w.pushRoom)))
	mux.Handle("/1/admin/push/all", endpoint(w.log, post, "", false, w.met.countPush(kindAll, w.pushAll)))
}

// maxRoomLen is the longest room id, in bytes.
const maxRoomLen = 64

// parseRoom reads the rid parameter: 1 to 64 characters of
// [A-Za-z0-9_.:-].
func parseRoom(r *http.Request) (string, error) {
	rid := r.URL.Query().Get("rid")
	if rid == "" {
		return "", errParam("rid is missing")
	}
	if len(rid) > maxRoomLen {
		return "", errParam("rid is %d bytes long, more than %d", len(rid), maxRoomLen)
	}
	for i := 0; i < len(rid); i++ {
		c := rid[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '.', c == ':', c == '-':
		default:
			return "", errParam("rid %.80q has a character outside [A-Za-z0-9_.:-]", rid)
		}
	}
	return rid, nil
}

// roomBody is the body of room/join and room/leave: keys joined by commas.
type roomBody struct {
	K string `json:"k"`
}

// parseRoomKeys reads {"k":"k1,k2"} from the body.
func (w *Web) parseRoomKeys(rw http.ResponseWriter, r *http.Request) ([]string, error) {
	raw, err := readBody(rw, r, w.cfg.Admin.MaxBody)
	if err != nil {
		return nil, err
	}
	var body roomBody
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, errParam("the body must be {\"k\":\"k1,k2\"}: %v", err)
	}
	return parseKeys(body.K, w.cfg.Admin.MaxKeys)
}

// messageErr turns what a message node answered into a web error: its
// parameter errors are ours (65534), a full room is api.CodeRoomFull, the rest
// is internal (65535) with what to log.
func messageErr(what string, err error) error {
	var se rpc.ServerError
	if errors.As(err, &se) {
		s := string(se)
		switch {
		case strings.HasPrefix(s, "param: "):
			return errParam("%s: %s", what, strings.TrimPrefix(s, "param: "))
		case strings.HasPrefix(s, api.RoomFullPrefix):
			return fmt.Errorf("%s: %w: %s", what, errRoomFull, strings.TrimPrefix(s, api.RoomFullPrefix))
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (w *Web) roomJoin(rw http.ResponseWriter, r *http.Request) (any, error) {
	return nil, w.roomChange(rw, r, api.MessageRoomJoin, "join")
}

func (w *Web) roomLeave(rw http.ResponseWriter, r *http.Request) (any, error) {
	return nil, w.roomChange(rw, r, api.MessageRoomLeave, "leave")
}

// roomChange calls RoomJoin or RoomLeave with the room and keys of r.
func (w *Web) roomChange(rw http.ResponseWriter, r *http.Request, method, verb string) error {
	rid, err := parseRoom(r)
	if err != nil {
		return err
	}
	keys, err := w.parseRoomKeys(rw, r)
	if err != nil {
		return err
	}
	var ret int
	if err := w.msgs.Call(r.Context(), method, &api.MessageRoomArgs{Room: rid, Keys: keys}, &ret); err != nil {
		return messageErr(fmt.Sprintf("%s %d keys to room %q", verb, len(keys), rid), err)
	}
	return nil
}

// roomKeys answers the room's keys, sorted; none (an empty list) for a
// room that does not exist.
func (w *Web) roomKeys(_ http.ResponseWriter, r *http.Request) (any, error) {
	rid, err := parseRoom(r)
	if err != nil {
		return nil, err
	}
	keys, err := w.keysOfRoom(r.Context(), rid)
	if err != nil {
		return nil, err
	}
	if keys == nil {
		keys = []string{}
	}
	return map[string]any{"keys": keys}, nil
}

func (w *Web) keysOfRoom(ctx context.Context, rid string) ([]string, error) {
	var resp api.MessageRoomKeysResp
	if err := w.msgs.Call(ctx, api.MessageRoomKeys, rid, &resp); err != nil {
		return nil, messageErr(fmt.Sprintf("keys of room %q", rid), err)
	}
	return resp.Keys, nil
}

// roomDel deletes a room (deleting one that does not exist is fine).
func (w *Web) roomDel(_ http.ResponseWriter, r *http.Request) (any, error) {
	rid, err := parseRoom(r)
	if err != nil {
		return nil, err
	}
	var ret int
	if err := w.msgs.Call(r.Context(), api.MessageRoomDel, rid, &ret); err != nil {
		return nil, messageErr(fmt.Sprintf("delete room %q", rid), err)
	}
	return nil, nil
}

// readMessage reads a body that must be one JSON value (the message).
func (w *Web) readMessage(rw http.ResponseWriter, r *http.Request) (json.RawMessage, error) {
	body, err := readBody(rw, r, w.cfg.Admin.MaxBody)
	if err != nil {
		return nil, err
	}
	if !json.Valid(body) {
		return nil, errParam("the message (request body) is not valid JSON")
	}
	return json.RawMessage(body), nil
}

// pushRoom pushes the body to every key of the room as a private message,
// exactly as push/mprivate does; keys that failed come back in fk. A room
// that does not exist, or is empty, gets nothing and answers ret 0.
func (w *Web) pushRoom(rw http.ResponseWriter, r *http.Request) (any, error) {
	rid, err := parseRoom(r)
	if err != nil {
		return nil, err
	}
	expire, err := parseExpire(r.URL.Query())
	if err != nil {
		return nil, err
	}
	id, err := parsePushId(r.URL.Query())
	if err != nil {
		return nil, err
	}
	msg, err := w.readMessage(rw, r)
	if err != nil {
		return nil, err
	}
	if id != "" {
		keys, err := w.keysOfRoom(r.Context(), rid)
		if err != nil {
			return nil, err
		}
		return failedKeys(w.pushKeysId(r.Context(), keys, id, msg, expire)), nil
	}
	fk, sk, err := w.pushRoomKeys(r.Context(), rid, msg, expire)
	if err != nil {
		return nil, err
	}
	return failedKeys(fk, sk), nil
}

// pushAll sends the body to every connection of every serving comet as a
// public message (gid 1) under one mid, which it answers. With expire > 0
// the message is first kept by a message node (a failure there fails the
// push, and nothing is sent). Comet nodes whose Broadcast failed are
// listed in fn; the answer is still ret 0, as the others delivered.
func (w *Web) pushAll(rw http.ResponseWriter, r *http.Request) (any, error) {
	expire, err := parseExpire(r.URL.Query())
	if err != nil {
		return nil, err
	}
	id, err := parsePushId(r.URL.Query())
	if err != nil {
		return nil, err
	}
	msg, err := w.readMessage(rw, r)
	if err != nil {
		return nil, err
	}
	if id != "" {
		return w.broadcastId(r.Context(), id, msg, expire)
	}
	mid, failed, err := w.broadcast(r.Context(), msg, expire)
	if err != nil {
		return nil, err
	}
	data := map[string]any{"mid": mid}
	if len(failed) > 0 {
		data["fn"] = failed
	}
	return data, nil
}
