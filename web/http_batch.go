package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"gopush/api"
)

// push/batch (docs/protocol.md §3.11): many pushes in one request. This
// file reads and checks the request; push_batch.go does the work.

// batchEntry is one entry of a push/batch body: a message for one key
// (key) or several (keys), kept expire seconds (0: delivered now, not
// kept). The body's entries are decoded strictly (an unknown field is
// refused), so a field added later — e.g. an "id" — is a new field here.
type batchEntry struct {
	Key    string          `json:"key"`
	Keys   []string        `json:"keys"`
	Msg    json.RawMessage `json:"msg"`
	Expire json.Number     `json:"expire"`
}

// batchItem is a checked entry: its keys (distinct, not empty), its message
// (valid JSON, as sent) and its expiry.
type batchItem struct {
	keys   []string
	msg    json.RawMessage
	expire uint
}

// errBatchEntry refuses a batch for its entry index: the answer is 65534
// with data {"index":N,"why":"..."} (api.BatchRefused).
type errBatchEntry struct {
	index int
	why   string
}

func (e *errBatchEntry) Error() string {
	return fmt.Sprintf("push/batch entry %d: %s", e.index, e.why)
}

// replyData is the data of the 65534 answer.
func (e *errBatchEntry) replyData() any { return api.BatchRefused{Index: e.index, Why: e.why} }

// batchLimits bound one batch.
type batchLimits struct {
	maxPushes int // pushes (an entry counts once per key)
	maxKeys   int // keys of one entry
}

// parseBatch reads a push/batch body: a JSON array of entries, or JSON
// lines (one entry object after the other, usually one per line). The
// first byte that is not white space tells which: '[' or '{'. Nothing is
// pushed unless every entry is good; the first bad one is named.
func parseBatch(body []byte, lim batchLimits) ([]batchItem, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errParam("the body holds no entries: send a JSON array of entries or JSON lines")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	array := trimmed[0] == '['
	switch {
	case array:
		if _, err := dec.Token(); err != nil { // the '['
			return nil, &errBatchEntry{0, err.Error()}
		}
	case trimmed[0] != '{':
		return nil, errParam("the body must be a JSON array of entries or JSON lines (one entry object per line)")
	}
	var items []batchItem
	pushes := 0
	for i := 0; ; i++ {
		if array && !dec.More() {
			break
		}
		var e batchEntry
		err := dec.Decode(&e)
		if err == io.EOF && !array {
			break
		}
		if err != nil {
			return nil, &errBatchEntry{i, decodeWhy(err)}
		}
		it, err := checkEntry(&e, lim.maxKeys)
		if err != nil {
			return nil, &errBatchEntry{i, err.Error()}
		}
		pushes += len(it.keys)
		if pushes > lim.maxPushes {
			return nil, &errBatchEntry{i, fmt.Sprintf("more than %d pushes in one batch (admin.batch.maxentries; an entry counts once per key)", lim.maxPushes)}
		}
		items = append(items, it)
	}
	if array {
		if _, err := dec.Token(); err != nil { // the ']'
			return nil, &errBatchEntry{len(items), err.Error()}
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, errParam("the body holds something after the array of entries")
		}
	}
	if len(items) == 0 {
		return nil, errParam("the body holds no entries")
	}
	return items, nil
}

// decodeWhy words a decoding error for the answer.
func decodeWhy(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "not valid JSON: " + se.Error()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the body ends inside this entry"
	}
	return "not an entry {\"key\":K or \"keys\":[...], \"msg\":<JSON>, \"expire\":N}: " + err.Error()
}

// checkEntry checks one decoded entry.
func checkEntry(e *batchEntry, maxKeys int) (batchItem, error) {
	var it batchItem
	switch {
	case e.Key != "" && e.Keys != nil:
		return it, errors.New("give key or keys, not both")
	case e.Key != "":
		if err := checkKey("key", e.Key); err != nil {
			return it, err
		}
		it.keys = []string{e.Key}
	case e.Keys != nil:
		if len(e.Keys) == 0 {
			return it, errors.New("keys is empty")
		}
		seen := make(map[string]struct{}, len(e.Keys))
		it.keys = make([]string, 0, len(e.Keys))
		for j, k := range e.Keys {
			if err := checkKey(fmt.Sprintf("keys[%d]", j), k); err != nil {
				return it, err
			}
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			it.keys = append(it.keys, k)
		}
		if len(it.keys) > maxKeys {
			return it, fmt.Errorf("keys holds %d keys, more than the %d allowed (admin.maxkeys)", len(it.keys), maxKeys)
		}
	default:
		return it, errors.New("key (or keys) is missing")
	}
	if len(e.Msg) == 0 {
		return it, errors.New("msg is missing")
	}
	it.msg = e.Msg
	if e.Expire == "" {
		return it, errors.New("expire is missing (whole seconds, 0 or more; 0: deliver now, keep nothing)")
	}
	v, err := strconv.ParseUint(string(e.Expire), 10, 32)
	if err != nil {
		return it, fmt.Errorf("expire must be whole seconds, 0 or more, got %s", e.Expire)
	}
	it.expire = uint(v)
	return it, nil
}

// pushBatchHandler is POST /1/admin/push/batch.
func (w *Web) pushBatchHandler(rw http.ResponseWriter, r *http.Request) (any, error) {
	body, err := readBody(rw, r, w.cfg.Admin.Batch.MaxBody)
	if err != nil {
		return nil, err
	}
	items, err := parseBatch(body, batchLimits{maxPushes: w.cfg.Admin.Batch.MaxEntries, maxKeys: w.cfg.Admin.MaxKeys})
	if err != nil {
		return nil, err
	}
	failed, stored := w.pushBatch(r.Context(), items)
	if len(failed) == 0 && len(stored) == 0 {
		return nil, nil
	}
	if failed == nil {
		failed = []api.BatchPush{}
	}
	return api.BatchAnswer{Failed: failed, Stored: stored}, nil
}
