package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"gopush/api"
	"gopush/internal/routemux"
)

// Presence on admin.bind (issue 16, docs/protocol.md §3.9):
//
//	GET /1/admin/online?k=k1,k2,...             → {"ret":0,"data":{"keys":{"k1":2,"k2":0}}}
//	GET /1/admin/online/room?rid=R&offset=O&limit=L
//	                                            → {"ret":0,"data":{"total":N,"offset":O,"count":C,"online":n,"keys":{"k1":2},"next":O+C}}
//	GET /1/admin/online/total                   → {"ret":0,"data":{"comets":{"node1":3,"node2":5},"total":8}}
//
// Counts are gathered from the comets with one CometRPC.Online call per
// comet node, all in parallel, each within rpc.timeout. A comet node that
// does not answer (dead, timed out, a 1.0.5 comet without Online, or no
// serving instance) is named in "down", its keys are listed in "unknown"
// instead of being counted, and "partial" is true: a key is never reported
// 0 because its comet could not be asked.

// maxOnlineKeys bounds the keys of one /1/admin/online call and one page of
// /1/admin/online/room; more is CodeTooManyKeys.
const maxOnlineKeys = 1000

// handleOnline adds the presence endpoints to the admin mux.
func (w *Web) handleOnline(mux *routemux.Mux) {
	get := []string{http.MethodGet}
	mux.Handle("/1/admin/online", endpoint(w.log, get, "", false, w.online))
	mux.Handle("/1/admin/online/room", endpoint(w.log, get, "", false, w.onlineRoom))
	mux.Handle("/1/admin/online/total", endpoint(w.log, get, "", false, w.onlineTotal))
}

// parseOnlineKeys reads k: a comma-separated list of 1 to maxOnlineKeys
// distinct keys, each 1..MaxKeyLen bytes of UTF-8 without control
// characters. Repeated keys count once.
func parseOnlineKeys(q url.Values) ([]string, error) {
	s := q.Get("k")
	if s == "" {
		return nil, errParam("k is missing")
	}
	parts := strings.Split(s, ",")
	seen := make(map[string]struct{}, min(len(parts), maxOnlineKeys+1))
	keys := make([]string, 0, min(len(parts), maxOnlineKeys+1))
	for i, k := range parts {
		if err := checkKey("k", k); err != nil {
			return nil, errParam("k: the key at position %d: %v", i+1, err)
		}
		if !printable(k) {
			return nil, errParam("k: the key at position %d is not UTF-8 text without control characters", i+1)
		}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		keys = append(keys, k)
		if len(keys) > maxOnlineKeys {
			return nil, &errTooManyKeys{max: maxOnlineKeys}
		}
	}
	return keys, nil
}

// printable reports whether s is UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return false
		}
	}
	return true
}

// presence is what the comets answered about some keys.
type presence struct {
	counts  map[string]int // keys whose comet answered → connections
	unknown []string       // keys whose comet did not answer, in request order
	down    []string       // comet nodes that did not answer, sorted
}

// gatherOnline asks, for every key, the comet node that the ring gives it:
// one CometRPC.Online call per node, in parallel.
func (w *Web) gatherOnline(ctx context.Context, keys []string) presence {
	view := w.cluster.load()
	groups := make(map[string][]string) // node → its keys
	comets := make(map[string]*cometNode)
	var down []string
	unknown := make(map[string]bool)
	for _, k := range keys {
		node, comet, err := view.lookup(k)
		if err != nil {
			unknown[k] = true
			if node != "" && !slices.Contains(down, node) {
				down = append(down, node)
			}
			continue
		}
		groups[node] = append(groups[node], k)
		comets[node] = comet
	}
	p := presence{counts: make(map[string]int, len(keys))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for node, ks := range groups {
		comet := comets[node]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp api.CometOnlineResp
			err := comet.rpc.Call(ctx, api.CometOnline, &api.CometOnlineArgs{Keys: ks}, &resp)
			if err == nil && len(resp.Counts) != len(ks) {
				err = fmt.Errorf("comet answered %d counts for %d keys", len(resp.Counts), len(ks))
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				w.log.Warn("online: comet did not answer", "node", node, "keys", len(ks), "err", err)
				down = append(down, node)
				for _, k := range ks {
					unknown[k] = true
				}
				return
			}
			for i, k := range ks {
				p.counts[k] = resp.Counts[i]
			}
		}()
	}
	wg.Wait()
	for _, k := range keys {
		if unknown[k] {
			p.unknown = append(p.unknown, k)
		}
	}
	slices.Sort(down)
	p.down = down
	return p
}

// addPartial adds "unknown", "down" and "partial" to data when some comet
// did not answer.
func (p presence) addPartial(data map[string]any) map[string]any {
	if len(p.unknown) > 0 {
		data["unknown"] = p.unknown
	}
	if len(p.down) > 0 {
		data["down"] = p.down
	}
	if len(p.unknown) > 0 || len(p.down) > 0 {
		data["partial"] = true
	}
	return data
}

// online answers, for each key of k, its open connections.
func (w *Web) online(_ http.ResponseWriter, r *http.Request) (any, error) {
	keys, err := parseOnlineKeys(r.URL.Query())
	if err != nil {
		return nil, err
	}
	p := w.gatherOnline(r.Context(), keys)
	return p.addPartial(map[string]any{"keys": p.counts}), nil
}

// intParam reads an optional whole-number parameter in [lo, hi].
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, errParam("%s must be a whole number from %d to %d, got %q", name, lo, hi, s)
	}
	return v, nil
}

// onlineRoom answers, for one page of the room's keys (sorted), how many
// are online and which, with their connections.
func (w *Web) onlineRoom(_ http.ResponseWriter, r *http.Request) (any, error) {
	rid, err := parseRoom(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	offset, err := intParam(q, "offset", 0, 0, api.MaxOnlineKeys*1000)
	if err != nil {
		return nil, err
	}
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > maxOnlineKeys {
		return nil, &errTooManyKeys{max: maxOnlineKeys}
	}
	limit, err := intParam(q, "limit", maxOnlineKeys, 1, maxOnlineKeys)
	if err != nil {
		return nil, err
	}
	keys, err := w.keysOfRoom(r.Context(), rid)
	if err != nil {
		return nil, err
	}
	page := keys[min(offset, len(keys)):min(offset+limit, len(keys))]
	p := w.gatherOnline(r.Context(), page)
	online := make(map[string]int)
	for k, n := range p.counts {
		if n > 0 {
			online[k] = n
		}
	}
	data := map[string]any{
		"total":  len(keys),
		"offset": offset,
		"count":  len(page),
		"online": len(online),
		"keys":   online,
	}
	if offset+len(page) < len(keys) {
		data["next"] = offset + len(page)
	}
	return p.addPartial(data), nil
}

// onlineTotal answers the subscribed connections of every comet node on
// the ring, and their sum.
func (w *Web) onlineTotal(_ http.ResponseWriter, r *http.Request) (any, error) {
	view := w.cluster.load()
	comets := make(map[string]int64, len(view.weights))
	var down []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name := range view.weights {
		n := view.nodes[name]
		if n == nil || n.rpc == nil {
			mu.Lock()
			down = append(down, name)
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp api.CometOnlineResp
			err := n.rpc.Call(r.Context(), api.CometOnline, &api.CometOnlineArgs{}, &resp)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				w.log.Warn("online/total: comet did not answer", "node", name, "err", err)
				down = append(down, name)
				return
			}
			comets[name] = resp.Conns
		}()
	}
	wg.Wait()
	var total int64
	for _, n := range comets {
		total += n
	}
	slices.Sort(down)
	data := map[string]any{"comets": comets, "total": total}
	if len(down) > 0 {
		data["down"] = down
		data["partial"] = true
	}
	return data, nil
}
