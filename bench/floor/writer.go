package floor

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"gopush/api"
)

// maxBody bounds a request body, as web's admin.maxbody does.
const maxBody = 16 << 20

// Writer is the bare writer: a Hub and the admin API that gopush-bench's
// pushers call — push/private, push/mprivate, push/all, push/room and the
// room/join and room/del they need — each writing the pushed frame to the
// connections it names, and /1/server/get answering the Hub's address.
type Writer struct {
	hub *Hub
	log *slog.Logger

	mu    sync.Mutex
	rooms map[string][]string
}

// NewWriter serves the admin API of hub.
func NewWriter(hub *Hub, log *slog.Logger) *Writer {
	return &Writer{hub: hub, log: log, rooms: make(map[string][]string)}
}

// Handler is the HTTP API; give it to an http.Server on the addresses
// gopush-bench calls -http and -admin (one address may be both).
func (w *Writer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/1/server/get", serverGet(w.hub.Addr()))
	mux.HandleFunc("/1/admin/push/private", w.pushPrivate)
	mux.HandleFunc("/1/admin/push/mprivate", w.pushMPrivate)
	mux.HandleFunc("/1/admin/push/all", w.pushAll)
	mux.HandleFunc("/1/admin/push/room", w.pushRoom)
	mux.HandleFunc("/1/admin/room/join", w.roomJoin)
	mux.HandleFunc("/1/admin/room/del", w.roomDel)
	return mux
}

// serverGet answers every key with addr, as web's /1/server/get does.
func serverGet(addr string) http.HandlerFunc {
	ans, _ := json.Marshal(map[string]any{"ret": api.CodeOK, "data": map[string]string{"server": addr}})
	return func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		rw.Write(ans)
	}
}

var (
	answerOK    = []byte(`{"ret":0}`)
	answerParam = []byte(`{"ret":65534}`)
)

func answer(rw http.ResponseWriter, b []byte) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Write(b)
}

// message reads the body as the message to push: it must be JSON.
func message(r *http.Request) (json.RawMessage, bool) {
	if r.Method != http.MethodPost {
		return nil, false
	}
	b, err := readBody(r.Body, maxBody)
	if err != nil || !json.Valid(b) {
		return nil, false
	}
	return b, true
}

// expireOK checks the expire parameter is a number, as web does; the
// floor keeps nothing, whatever it says.
func expireOK(r *http.Request) bool {
	e := r.URL.Query().Get("expire")
	if e == "" {
		return true
	}
	_, err := strconv.ParseInt(e, 10, 64)
	return err == nil
}

func (w *Writer) pushPrivate(rw http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	msg, ok := message(r)
	if !ok || key == "" || !expireOK(r) {
		answer(rw, answerParam)
		return
	}
	w.hub.Push([]string{key}, msg, 0)
	answer(rw, answerOK)
}

// keyList is the body of push/mprivate ({"m":"<JSON>","k":"k1,k2"}) and of
// room/join ({"k":"k1,k2"}).
type keyList struct {
	M *string `json:"m"`
	K string  `json:"k"`
}

func readKeyList(r *http.Request) (keyList, bool) {
	var kl keyList
	if r.Method != http.MethodPost {
		return kl, false
	}
	b, err := readBody(r.Body, maxBody)
	if err != nil || json.Unmarshal(b, &kl) != nil || kl.K == "" {
		return kl, false
	}
	return kl, true
}

func (w *Writer) pushMPrivate(rw http.ResponseWriter, r *http.Request) {
	kl, ok := readKeyList(r)
	if !ok || kl.M == nil || !json.Valid([]byte(*kl.M)) || !expireOK(r) {
		answer(rw, answerParam)
		return
	}
	keys := strings.Split(kl.K, ",")
	w.hub.Push(keys, json.RawMessage(*kl.M), 0)
	if w.hub.fault.ListAsFailed {
		b, _ := json.Marshal(map[string]any{"ret": 0, "data": map[string][]string{"fk": keys}})
		answer(rw, b)
		return
	}
	answer(rw, answerOK)
}

func (w *Writer) pushAll(rw http.ResponseWriter, r *http.Request) {
	msg, ok := message(r)
	if !ok || !expireOK(r) {
		answer(rw, answerParam)
		return
	}
	w.hub.Push(nil, msg, 1)
	answer(rw, answerOK)
}

func (w *Writer) pushRoom(rw http.ResponseWriter, r *http.Request) {
	rid := r.URL.Query().Get("rid")
	msg, ok := message(r)
	if !ok || rid == "" || !expireOK(r) {
		answer(rw, answerParam)
		return
	}
	w.mu.Lock()
	keys := w.rooms[rid]
	w.mu.Unlock()
	if keys != nil {
		w.hub.Push(keys, msg, 0)
	}
	answer(rw, answerOK)
}

func (w *Writer) roomJoin(rw http.ResponseWriter, r *http.Request) {
	rid := r.URL.Query().Get("rid")
	kl, ok := readKeyList(r)
	if !ok || rid == "" {
		answer(rw, answerParam)
		return
	}
	w.mu.Lock()
	// A new slice each time: pushRoom reads the old one without the lock.
	w.rooms[rid] = append(append([]string(nil), w.rooms[rid]...), strings.Split(kl.K, ",")...)
	w.mu.Unlock()
	answer(rw, answerOK)
}

func (w *Writer) roomDel(rw http.ResponseWriter, r *http.Request) {
	rid := r.URL.Query().Get("rid")
	if rid == "" || r.Method != http.MethodPost {
		answer(rw, answerParam)
		return
	}
	w.mu.Lock()
	delete(w.rooms, rid)
	w.mu.Unlock()
	answer(rw, answerOK)
}
