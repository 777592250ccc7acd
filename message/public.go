package message

import (
	"encoding/json"
	"gopush/api"
)

// SavePublic keeps a public message for Expire seconds (it must be at
// least 1: a public message that is not kept is only broadcast, by web).
func (r *RPC) SavePublic(args *api.MessageSavePublicArgs, reply *int) error {
	if args == nil {
		return r.refused("SavePublic", paramErr("no arguments"))
	}
	if err := r.checkPublic(args.MsgId, args.Msg, args.Expire); err != nil {
		return r.refused("SavePublic", err)
	}
	ctx, cancel := r.callCtx()
	defer cancel()
	e := Entry{MsgId: args.MsgId, Msg: args.Msg, Expire: expireAt(r.now(), args.Expire)}
	if err := r.roomsOf().SavePublic(ctx, e); err != nil {
		r.log.Warn("save public failed", "mid", args.MsgId, "err", err)
		return err
	}
	*reply = api.OK
	return nil
}

func (r *RPC) checkPublic(mid int64, msg json.RawMessage, expire uint) error {
	if err := r.lim.checkMid(mid); err != nil {
		return err
	}
	if err := r.lim.checkMsg(msg); err != nil {
		return err
	}
	return r.lim.checkExpire(expire)
}

// GetPublic answers the unexpired public messages newer than MsgId, in
// ascending mid order, with GroupId 1.
func (r *RPC) GetPublic(args *api.MessageGetPublicArgs, reply *api.MessageGetResp) error {
	if args == nil {
		return r.refused("GetPublic", paramErr("no arguments"))
	}
	if err := r.lim.checkMid(args.MsgId); err != nil {
		return r.refused("GetPublic", err)
	}
	ctx, cancel := r.callCtx()
	defer cancel()
	msgs, err := r.roomsOf().GetPublic(ctx, args.MsgId)
	if err != nil {
		r.log.Warn("get public failed", "mid", args.MsgId, "err", err)
		return err
	}
	reply.Msgs = msgs
	return nil
}
