package web

import (
	"encoding/json"
	"gopush/api"
	"net/http"
	"strconv"
)

// withPublic adds the kept public messages (push/all with expire > 0,
// docs/rooms.md) to a msg/get answer when the request carries pmParam, the
// last public mid the client has ("pm" on /1/msg/get, "pmid" on the
// unversioned /msg/get, as the 1.0.5 JavaScript SDK sends it). They come
// back in "pmsgs", ascending by mid, with gid 1: in the new form on
// /1/msg/get, as old-form JSON strings when old is set. A request without
// pmParam is answered exactly as before.
//
// The private messages matter more: when the public ones cannot be read
// (no message node has them, or it is a 1.0.5 node) the answer carries
// the private ones without pmsgs, and the client asks again next time.
func (w *Web) withPublic(inner handlerFunc, pmParam string, old bool) handlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) (any, error) {
		s := r.URL.Query().Get(pmParam)
		if s == "" {
			return inner(rw, r)
		}
		pm, err := strconv.ParseInt(s, 10, 64)
		if err != nil || pm < 0 {
			return nil, errParam("%s must be a message id >= 0, got %q", pmParam, s)
		}
		data, err := inner(rw, r)
		if err != nil {
			return nil, err
		}
		resp := &api.MessageGetResp{}
		if err := w.msgs.Call(r.Context(), api.MessageGetPublic, &api.MessageGetPublicArgs{MsgId: pm}, resp); err != nil {
			w.log.Warn("msg/get: public messages not read", "pm", pm, "err", err)
			return data, nil
		}
		var pmsgs []*api.Message
		for _, m := range resp.Msgs {
			if m == nil || m.MsgId <= pm {
				continue
			}
			if !json.Valid(m.Msg) {
				q, _ := json.Marshal(string(m.Msg))
				m = &api.Message{Msg: q, MsgId: m.MsgId}
			}
			m.GroupId = api.PublicGroupId
			pmsgs = append(pmsgs, m)
		}
		if len(pmsgs) == 0 {
			return data, nil
		}
		out, ok := data.(map[string]any)
		if !ok {
			if data != nil { // not the shape msgGet answers: leave it alone
				return data, nil
			}
			out = map[string]any{}
			if old {
				out["msgs"] = []string{}
			}
		}
		if !old {
			out["pmsgs"] = pmsgs
			return out, nil
		}
		strs := make([]string, 0, len(pmsgs))
		for _, m := range pmsgs {
			b, err := json.Marshal(oldMessage{Msg: string(m.Msg), MsgId: m.MsgId, GroupId: m.GroupId})
			if err != nil {
				return nil, err
			}
			strs = append(strs, string(b))
		}
		out["pmsgs"] = strs
		return out, nil
	}
}
