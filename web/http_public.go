package web

import (
	"cmp"
	"encoding/json"
	"gopush/api"
	"gopush/internal/routemux"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// publicMux routes the public API of docs/protocol.md §3.1 (http.bind), and
// /1/token/add when http.tokenadd is set (behind admin.token when set). It
// is served behind publicHandler's per-address refusals (http_auth.go).
func (w *Web) publicMux() *routemux.Mux {
	get := []string{http.MethodGet}
	mux := routemux.New()
	mux.Handle("/1/server/get", endpoint(w.log, get, "cb", false, w.serverGet("k", "p", false)))
	mux.Handle("/2/server/get", endpoint(w.log, get, "cb", false, w.serverGet("k", "p", true)))
	mux.Handle("/1/msg/get", endpoint(w.log, get, "cb", false, w.withPublic(w.msgGet("k", "m", false), "pm", false)))
	mux.Handle("/1/time/get", endpoint(w.log, get, "cb", false, w.timeGet))
	// The unversioned paths of clients older than 1.0.
	mux.Handle("/server/get", endpoint(w.log, get, "callback", true, w.serverGet("key", "proto", false)))
	mux.Handle("/msg/get", endpoint(w.log, get, "callback", true, w.withPublic(w.msgGet("key", "mid", true), "pmid", true)))
	mux.Handle("/time/get", endpoint(w.log, get, "callback", true, w.timeGet))
	if w.cfg.HTTP.TokenAdd {
		w.handleTokenAdd(mux)
	}
	return mux
}

// Values of the p (proto) parameter. 3 and 4 are new in gopush
// (docs/protocol.md §2.4): the TLS listeners, which a 1.0.5 client never asks for.
const (
	protoWebSocket    = "1"
	protoTCP          = "2"
	protoWebSocketTLS = "3" // wss: host:port, or a full wss:// URL
	protoTCPTLS       = "4" // TCP over TLS: host:port
)

// serverGet answers which comet serves a key: the first address of the
// asked protocol, or all of them when all is set (/2/server/get).
func (w *Web) serverGet(keyParam, protoParam string, all bool) handlerFunc {
	return func(_ http.ResponseWriter, r *http.Request) (any, error) {
		q := r.URL.Query()
		key := q.Get(keyParam)
		if err := checkKey(keyParam, key); err != nil {
			return nil, err
		}
		proto := q.Get(protoParam)
		switch proto {
		case protoWebSocket, protoTCP, protoWebSocketTLS, protoTCPTLS:
		default:
			return nil, errParam("%s must be 1 (websocket), 2 (tcp), 3 (wss) or 4 (tcp over tls), got %q", protoParam, proto)
		}
		_, node, err := w.cluster.load().lookup(key)
		if err != nil {
			return nil, err
		}
		var addrs []string
		switch proto {
		case protoWebSocket:
			addrs = node.data.WS
		case protoTCP:
			addrs = node.data.TCP
		case protoWebSocketTLS:
			addrs = node.data.WSS
		case protoTCPTLS:
			addrs = node.data.TCPTLS
		}
		if len(addrs) == 0 {
			return nil, errNoNode
		}
		if all {
			return map[string]any{"server": addrs}, nil
		}
		return map[string]any{"server": addrs[0]}, nil
	}
}

// oldMessage is the pre-1.0 form of a message: msg is the pushed JSON as a
// JSON string.
type oldMessage struct {
	Msg     string `json:"msg"`
	MsgId   int64  `json:"mid"`
	GroupId uint   `json:"gid"`
}

// msgGet returns the offline messages of a key newer than mid (required),
// ascending.
// With none the answer carries no data, as in 1.0.5. old selects the
// unversioned form: msgs as old-form JSON strings, plus an empty pmsgs.
func (w *Web) msgGet(keyParam, midParam string, old bool) handlerFunc {
	return func(_ http.ResponseWriter, r *http.Request) (any, error) {
		q := r.URL.Query()
		key := q.Get(keyParam)
		if err := checkKey(keyParam, key); err != nil {
			return nil, err
		}
		// 1.0.5 refuses a request without the mid (65534), on both paths;
		// a client that relied on it being optional would break on a 1.0.5
		// web in a mixed cluster, so gopush refuses it too.
		s := q.Get(midParam)
		if s == "" {
			return nil, errParam("%s (the last message id the client has, 0 for none) is required", midParam)
		}
		mid, err := strconv.ParseInt(s, 10, 64)
		if err != nil || mid < 0 {
			return nil, errParam("%s must be a message id >= 0, got %q", midParam, s)
		}
		args := &api.MessageGetPrivateArgs{MsgId: mid, Key: key}
		resp := &api.MessageGetResp{}
		if err := w.msgs.Call(r.Context(), api.MessageGetPrivate, args, resp); err != nil {
			return nil, err
		}
		msgs := make([]*api.Message, 0, len(resp.Msgs))
		for _, m := range resp.Msgs {
			if m == nil {
				continue
			}
			if !json.Valid(m.Msg) {
				// Not JSON (written by something else): hand it back as a
				// JSON string rather than failing the whole answer.
				q, _ := json.Marshal(string(m.Msg))
				m = &api.Message{Msg: q, MsgId: m.MsgId, GroupId: m.GroupId}
			}
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			return nil, nil
		}
		slices.SortStableFunc(msgs, func(a, b *api.Message) int { return cmp.Compare(a.MsgId, b.MsgId) })
		if !old {
			return map[string]any{"msgs": msgs}, nil
		}
		strs := make([]string, 0, len(msgs))
		for _, m := range msgs {
			b, err := json.Marshal(oldMessage{Msg: string(m.Msg), MsgId: m.MsgId, GroupId: m.GroupId})
			if err != nil {
				return nil, err
			}
			strs = append(strs, string(b))
		}
		return map[string]any{"msgs": strs, "pmsgs": []string{}}, nil
	}
}

// timeGet returns the time as a message id: 100 ns units since the epoch.
func (w *Web) timeGet(http.ResponseWriter, *http.Request) (any, error) {
	return map[string]any{"timeid": time.Now().UnixNano() / 100}, nil
}
