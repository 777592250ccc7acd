package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"gopush/api"
	"gopush/ketama"
)

// onlineComet makes a fake comet answer CometRPC.Online from conns (key →
// connections), with total as its subscribed connections.
func onlineComet(f *fakeRPC, conns map[string]int, total int64) {
	f.fn = func(method string, args, reply any) error {
		if method != api.CometOnline {
			return fmt.Errorf("unexpected %s", method)
		}
		r := reply.(*api.CometOnlineResp)
		for _, k := range args.(*api.CometOnlineArgs).Keys {
			r.Counts = append(r.Counts, conns[k])
		}
		r.Conns = total
		return nil
	}
}

// keysOn returns n keys that the ring of weights gives to node.
func keysOn(weights map[string]int, node string, n int) []string {
	ring := ketama.FromWeights(ketama.DefaultBase, weights)
	var out []string
	for i := 0; len(out) < n; i++ {
		if k := fmt.Sprintf("user-%d", i); ring.Get(k) == node {
			out = append(out, k)
		}
	}
	return out
}

var threeNodes = map[string]int{"node-a": 1, "node-b": 1, "node-c": 1}

func TestOnlineCountsPerKeyOneCallPerComet(t *testing.T) {
	tw := newTestWeb(t, threeNodes, []string{"node-a", "node-b", "node-c"}, nil)
	a, b, c := keysOn(threeNodes, "node-a", 3), keysOn(threeNodes, "node-b", 2), keysOn(threeNodes, "node-c", 1)
	onlineComet(tw.comets["node-a"], map[string]int{a[0]: 2, a[1]: 1}, 10)
	onlineComet(tw.comets["node-b"], map[string]int{b[1]: 5}, 20)
	onlineComet(tw.comets["node-c"], nil, 0)
	keys := []string{a[0], b[0], a[1], c[0], b[1], a[2], a[0]} // a[0] twice
	ans := get(t, tw.admin.URL+"/1/admin/online?k="+url.QueryEscape(strings.Join(keys, ",")))
	var got struct {
		Ret  int
		Data map[string]map[string]int
	}
	want := map[string]int{a[0]: 2, a[1]: 1, a[2]: 0, b[0]: 0, b[1]: 5, c[0]: 0}
	if err := jsonUnmarshal(ans.body, &got); err != nil || got.Ret != 0 || len(got.Data) != 1 ||
		fmt.Sprint(got.Data["keys"]) != fmt.Sprint(want) {
		t.Fatalf("got  %s\nwant keys %v", ans.body, want)
	}
	for node, f := range tw.comets {
		calls := f.Calls()
		if len(calls) != 1 {
			t.Fatalf("%s got %d calls, want 1", node, len(calls))
		}
	}
	if got := tw.comets["node-a"].Calls()[0].args.(*api.CometOnlineArgs).Keys; !slices.Equal(got, []string{a[0], a[1], a[2]}) {
		t.Errorf("node-a asked about %v", got)
	}

	// Total: every node's subscribed connections and their sum.
	ans = get(t, tw.admin.URL+"/1/admin/online/total")
	if want := `{"ret":0,"data":{"comets":{"node-a":10,"node-b":20,"node-c":0},"total":30}}`; ans.body != want {
		t.Fatalf("total: got %s, want %s", ans.body, want)
	}
}

// A comet that does not answer, and a node without a serving instance,
// are named in down; their keys are unknown, never 0.
func TestOnlinePartialWhenACometDoesNotAnswer(t *testing.T) {
	tw := newTestWeb(t, threeNodes, []string{"node-a", "node-b"}, nil) // node-c: no instance
	a, b, c := keysOn(threeNodes, "node-a", 1), keysOn(threeNodes, "node-b", 2), keysOn(threeNodes, "node-c", 1)
	onlineComet(tw.comets["node-a"], map[string]int{a[0]: 1}, 4)
	tw.comets["node-b"].fn = func(string, any, any) error { return errors.New("myrpc: CometRPC.Online: i/o timeout") }
	ans := get(t, tw.admin.URL+"/1/admin/online?k="+strings.Join([]string{b[0], a[0], c[0], b[1]}, ","))
	want := fmt.Sprintf(`{"ret":0,"data":{"down":["node-b","node-c"],"keys":{%q:1},"partial":true,"unknown":[%q,%q,%q]}}`, a[0], b[0], c[0], b[1])
	if ans.body != want {
		t.Fatalf("got  %s\nwant %s", ans.body, want)
	}
	ans = get(t, tw.admin.URL+"/1/admin/online/total")
	if want := `{"ret":0,"data":{"comets":{"node-a":4},"down":["node-b","node-c"],"partial":true,"total":4}}`; ans.body != want {
		t.Fatalf("total: got %s, want %s", ans.body, want)
	}
	// A 1.0.5 comet has no Online: named too.
	tw.comets["node-b"].fn = func(string, any, any) error { return errors.New("rpc: can't find method CometRPC.Online") }
	ans = get(t, tw.admin.URL+"/1/admin/online?k="+b[0])
	if want := fmt.Sprintf(`{"ret":0,"data":{"down":["node-b"],"keys":{},"partial":true,"unknown":[%q]}}`, b[0]); ans.body != want {
		t.Fatalf("old comet: got %s, want %s", ans.body, want)
	}
}

func TestOnlineBadInput(t *testing.T) {
	tw := newTestWeb(t, threeNodes, []string{"node-a", "node-b", "node-c"}, nil)
	for _, f := range tw.comets {
		onlineComet(f, nil, 0)
	}
	many := make([]string, maxOnlineKeys+1)
	for i := range many {
		many[i] = fmt.Sprintf("k%d", i)
	}
	enough := slices.Clone(many[:maxOnlineKeys])
	enough = append(enough, enough[0]) // a repeat is not one more
	for name, c := range map[string]struct {
		query string
		code  int
	}{
		"no k":            {"", api.CodeParamErr},
		"empty k":         {"k=", api.CodeParamErr},
		"empty key":       {"k=a,,b", api.CodeParamErr},
		"leading comma":   {"k=,a", api.CodeParamErr},
		"long key":        {"k=" + strings.Repeat("x", api.MaxKeyLen+1), api.CodeParamErr},
		"control char":    {"k=" + url.QueryEscape("a\x01b"), api.CodeParamErr},
		"newline":         {"k=" + url.QueryEscape("a\nb"), api.CodeParamErr},
		"not UTF-8":       {"k=" + url.QueryEscape("a\xffb"), api.CodeParamErr},
		"too many keys":   {"k=" + strings.Join(many, ","), api.CodeTooManyKeys},
		"max keys":        {"k=" + strings.Join(enough, ","), api.CodeOK},
		"unicode is fine": {"k=" + url.QueryEscape("用户-1"), api.CodeOK},
	} {
		ans := get(t, tw.admin.URL+"/1/admin/online?"+c.query)
		if ans.status != 200 || ans.ret(t) != c.code {
			t.Errorf("%s: %d %s, want ret %d", name, ans.status, ans.body, c.code)
		}
	}
	if a := post(t, tw.admin.URL+"/1/admin/online?k=a", ""); a.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", a.status)
	}
	// The presence paths are admin only.
	if a := get(t, tw.public.URL+"/1/admin/online?k=a"); a.status != http.StatusNotFound {
		t.Errorf("public /1/admin/online: %d, want 404", a.status)
	}
}

func TestOnlineRoomPages(t *testing.T) {
	tw := newTestWeb(t, threeNodes, []string{"node-a", "node-b", "node-c"}, nil)
	var room []string
	conns := map[string]int{}
	for i := range 25 {
		k := fmt.Sprintf("member-%02d", i)
		room = append(room, k)
		if i%3 == 0 {
			conns[k] = 1 + i%2
		}
	}
	for _, f := range tw.comets {
		onlineComet(f, conns, 0)
	}
	tw.msgs.fn = func(method string, args, reply any) error {
		if method != api.MessageRoomKeys {
			return fmt.Errorf("unexpected %s", method)
		}
		if args.(string) == "lobby" {
			reply.(*api.MessageRoomKeysResp).Keys = room
		}
		return nil
	}
	type page struct {
		Total, Offset, Count, Online int
		Keys                         map[string]int
		Next                         *int
	}
	read := func(q string) page {
		t.Helper()
		ans := get(t, tw.admin.URL+"/1/admin/online/room?"+q)
		var out struct {
			Ret  int
			Data page
		}
		if err := jsonUnmarshal(ans.body, &out); err != nil || out.Ret != 0 {
			t.Fatalf("%s: %s", q, ans.body)
		}
		return out.Data
	}
	seen := map[string]int{}
	offset, pages := 0, 0
	for {
		p := read(fmt.Sprintf("rid=lobby&offset=%d&limit=10", offset))
		pages++
		if p.Total != 25 || p.Offset != offset || p.Count != min(10, 25-offset) || p.Online != len(p.Keys) {
			t.Fatalf("page at %d: %+v", offset, p)
		}
		for k, n := range p.Keys {
			seen[k] = n
		}
		if p.Next == nil {
			break
		}
		offset = *p.Next
	}
	if pages != 3 || fmt.Sprint(seen) != fmt.Sprint(conns) {
		t.Fatalf("%d pages, online %v, want 3 pages and %v", pages, seen, conns)
	}
	// Default page is the whole room (25 < 1000); a room that does not
	// exist is empty.
	if p := read("rid=lobby"); p.Count != 25 || p.Online != len(conns) || p.Next != nil {
		t.Fatalf("default page: %+v", p)
	}
	if p := read("rid=nobody"); p.Total != 0 || p.Count != 0 || p.Online != 0 || p.Next != nil {
		t.Fatalf("empty room: %+v", p)
	}
	if p := read("rid=lobby&offset=100"); p.Total != 25 || p.Count != 0 || p.Next != nil {
		t.Fatalf("offset past the end: %+v", p)
	}
	for q, code := range map[string]int{
		"":                           api.CodeParamErr,
		"rid=a%20b":                  api.CodeParamErr,
		"rid=lobby&limit=0":          api.CodeParamErr,
		"rid=lobby&limit=x":          api.CodeParamErr,
		"rid=lobby&offset=-1":        api.CodeParamErr,
		"rid=lobby&limit=1001":       api.CodeTooManyKeys,
		"rid=lobby&limit=1000":       api.CodeOK,
		"rid=lobby&offset=1&limit=1": api.CodeOK,
	} {
		if ans := get(t, tw.admin.URL+"/1/admin/online/room?"+q); ans.ret(t) != code {
			t.Errorf("%q: %s, want ret %d", q, ans.body, code)
		}
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
