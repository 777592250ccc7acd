package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"gopush/api"
	"gopush/internal/routemux"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// adminMux routes the admin API of docs/protocol.md §3.2 (admin.bind). It
// is served behind adminHandler's token check (http_auth.go).
func (w *Web) adminMux() *routemux.Mux {
	post := []string{http.MethodPost}
	mux := routemux.New()
	mux.Handle("/1/admin/push/private", endpoint(w.log, post, "", false, w.met.countPush(kindPrivate, w.pushPrivate)))
	mux.Handle("/1/admin/push/mprivate", endpoint(w.log, post, "", false, w.met.countPush(kindMPrivate, w.pushMPrivate)))
	mux.Handle("/1/admin/msg/del", endpoint(w.log, post, "", false, w.msgDel))
	mux.Handle("/1/admin/push/batch", endpoint(w.log, post, "", false, w.met.countPush(kindBatch, w.pushBatchHandler)))
	// The unversioned aliases of clients older than 1.0.
	mux.Handle("/admin/push", endpoint(w.log, post, "", true, w.met.countPush(kindPrivate, w.pushPrivate)))
	mux.Handle("/admin/msg/clean", endpoint(w.log, post, "", true, w.msgDel))
	w.handleTokenAdd(mux)
	w.handleRooms(mux)     // rooms and push/all (http_room.go)
	w.handleOnline(mux)    // presence (http_online.go)
	w.handleDashboard(mux) // the cluster dashboard (dashboard_http.go)
	return mux
}

// handleTokenAdd adds /1/token/add to mux. It takes GET (the user's notes
// open it in a browser) and POST; only POST when admin.token is set (a
// call that changes state is never a GET a page could trigger). It needs
// the admin token wherever it is served.
func (w *Web) handleTokenAdd(mux *routemux.Mux) {
	methods := []string{http.MethodGet, http.MethodPost}
	if w.cfg.Admin.Token != "" {
		methods = []string{http.MethodPost}
	}
	mux.Handle("/1/token/add", w.requireAdminToken(endpoint(w.log, methods, "cb", false, w.tokenAdd)))
}

// parseExpire reads the expire parameter: whole seconds >= 0. It is
// required, as in 1.0.5, so that a misspelt parameter does not silently
// turn a stored push into an online-only one.
func parseExpire(q url.Values) (uint, error) {
	s := q.Get("expire")
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errParam("expire must be whole seconds >= 0, got %q", s)
	}
	return uint(v), nil
}

// pushPrivate pushes the body (a JSON message) to one key through the comet
// that serves it.
func (w *Web) pushPrivate(rw http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	key := q.Get("key")
	if err := checkKey("key", key); err != nil {
		return nil, err
	}
	expire, err := parseExpire(q)
	if err != nil {
		return nil, err
	}
	id, err := parsePushId(q)
	if err != nil {
		return nil, err
	}
	body, err := readBody(rw, r, w.cfg.Admin.MaxBody)
	if err != nil {
		return nil, err
	}
	if !json.Valid(body) {
		return nil, errParam("the message (request body) is not valid JSON")
	}
	if id != "" {
		data, err := w.pushOneId(r.Context(), key, id, json.RawMessage(body), expire)
		if data == nil {
			return nil, err
		}
		return data, err
	}
	stored, err := w.pushOne(r.Context(), key, json.RawMessage(body), expire)
	if stored == nil {
		return nil, err // no data: a typed nil would still be marshalled
	}
	return stored, err
}

// mprivateBody is the body of push/mprivate: the message as a JSON string
// and the keys joined by commas.
type mprivateBody struct {
	M string `json:"m"`
	K string `json:"k"`
}

// checkKey refuses an empty key and one longer than comets accept, naming
// the parameter it came from.
func checkKey(param, key string) error {
	if key == "" {
		return errParam("%s is missing", param)
	}
	if len(key) > api.MaxKeyLen {
		return errParam("%s is longer than %d bytes", param, api.MaxKeyLen)
	}
	return nil
}

// parseKeys splits a comma-separated key list, refusing empty keys (docs/protocol.md
// §9.3) and more than max distinct keys; duplicates are dropped, the first
// occurrence keeps its place.
func parseKeys(s string, max int) ([]string, error) {
	if s == "" {
		return nil, errParam("k is missing")
	}
	parts := strings.Split(s, ",")
	seen := make(map[string]struct{}, len(parts))
	keys := make([]string, 0, len(parts))
	for i, k := range parts {
		if k == "" {
			return nil, errParam("k holds an empty key (position %d)", i+1)
		}
		if len(k) > api.MaxKeyLen {
			return nil, errParam("k holds a key longer than %d bytes (position %d)", api.MaxKeyLen, i+1)
		}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		keys = append(keys, k)
	}
	if len(keys) > max {
		return nil, errParam("k holds %d keys, more than the %d allowed", len(keys), max)
	}
	return keys, nil
}

// pushMPrivate pushes one message to many keys: the keys are grouped by the
// comet node that serves them, every node gets one PushPrivates call, all in
// parallel, and the keys that failed anywhere come back in fk.
func (w *Web) pushMPrivate(rw http.ResponseWriter, r *http.Request) (any, error) {
	expire, err := parseExpire(r.URL.Query())
	if err != nil {
		return nil, err
	}
	id, err := parsePushId(r.URL.Query())
	if err != nil {
		return nil, err
	}
	raw, err := readBody(rw, r, w.cfg.Admin.MaxBody)
	if err != nil {
		return nil, err
	}
	var body mprivateBody
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, errParam("the body must be {\"m\":\"<message JSON>\",\"k\":\"k1,k2\"}: %v", err)
	}
	if body.M == "" {
		return nil, errParam("m is missing")
	}
	if !json.Valid([]byte(body.M)) {
		return nil, errParam("m is not valid JSON")
	}
	keys, err := parseKeys(body.K, w.cfg.Admin.MaxKeys)
	if err != nil {
		return nil, err
	}
	if id != "" {
		return failedKeys(w.pushKeysId(r.Context(), keys, id, json.RawMessage(body.M), expire)), nil
	}
	return failedKeys(w.pushKeys(r.Context(), keys, json.RawMessage(body.M), expire)), nil // fk, sk
}

// msgDel deletes the offline messages of the key in the form body (key=K).
func (w *Web) msgDel(rw http.ResponseWriter, r *http.Request) (any, error) {
	raw, err := readBody(rw, r, w.cfg.Admin.MaxBody)
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, errParam("the body must be a form like key=K: %v", err)
	}
	key := form.Get("key")
	if key == "" {
		key = r.URL.Query().Get("key")
	}
	if err := checkKey("key", key); err != nil {
		return nil, err
	}
	var ret int
	if err := w.msgs.Call(r.Context(), api.MessageDelPrivate, key, &ret); err != nil {
		return nil, fmt.Errorf("delete messages of key %q: %w", key, err)
	}
	if ret != api.OK {
		return nil, fmt.Errorf("delete messages of key %q: message node answered %d", key, ret)
	}
	return nil, nil
}

// tokenAdd makes the comet of key k accept token t (docs/protocol.md §6.5) for
// token.expire.
func (w *Web) tokenAdd(rw http.ResponseWriter, r *http.Request) (any, error) {
	r.Body = http.MaxBytesReader(rw, r.Body, w.cfg.Admin.MaxBody)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &errTooLarge{limit: w.cfg.Admin.MaxBody}
		}
		return nil, errParam("bad parameters: %v", err)
	}
	key, token := r.Form.Get("k"), r.Form.Get("t")
	if err := checkKey("k", key); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errParam("t is missing")
	}
	node, comet, err := w.cluster.load().lookup(key)
	if err != nil {
		return nil, err
	}
	args := &api.CometNewArgs{Key: key, Token: token, Expire: int64(w.cfg.Token.Expire.D().Seconds())}
	var ret int
	if err := comet.rpc.Call(r.Context(), api.CometNew, args, &ret); err != nil {
		return nil, fmt.Errorf("add token for key %q on comet node %s: %w", key, node, err)
	}
	if ret != api.OK {
		return nil, fmt.Errorf("add token for key %q on comet node %s: comet answered %d", key, node, ret)
	}
	return nil, nil
}
