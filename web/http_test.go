package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
	"gopush/ketama"
)

// fakeRPC is a caller that records every call and answers with fn.
type fakeRPC struct {
	mu    sync.Mutex
	calls []fakeCall
	fn    func(method string, args, reply any) error
}

type fakeCall struct {
	method string
	args   any
}

func (f *fakeRPC) Call(ctx context.Context, method string, args, reply any) error {
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{method, args})
	fn := f.fn
	f.mu.Unlock()
	if fn != nil {
		return fn(method, args, reply)
	}
	return nil
}

func (f *fakeRPC) Calls() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// testWeb is a Web with a fixed cluster view and fake peers, served by
// httptest servers.
type testWeb struct {
	w             *Web
	public, admin *httptest.Server
	comets        map[string]*fakeRPC // node → its comet
	msgs          *fakeRPC
}

// newTestWeb builds a web whose ring holds nodes (name → weight); every node
// in serving gets a fake comet with addresses ws-<node>-1/2, tcp-<node>-1/2.
func newTestWeb(t *testing.T, weights map[string]int, serving []string, edit func(*conf.Web)) *testWeb {
	t.Helper()
	cfg := conf.DefaultWeb()
	cfg.Admin.MaxBody = 64 << 10
	cfg.Admin.MaxKeys = 1000
	if edit != nil {
		edit(cfg)
	}
	tw := &testWeb{comets: map[string]*fakeRPC{}, msgs: &fakeRPC{}}
	w := New(cfg, nil)
	w.msgs = tw.msgs
	nodes := map[string]*cometNode{}
	for _, name := range serving {
		f := &fakeRPC{}
		tw.comets[name] = f
		nodes[name] = &cometNode{name: name, child: name + "/0000000001", rpc: f, data: api.CometNodeData{
			RPC: []string{"rpc-" + name},
			WS:  []string{"ws-" + name + "-1", "ws-" + name + "-2"},
			TCP: []string{"tcp-" + name + "-1", "tcp-" + name + "-2"},
		}}
	}
	w.cluster.cur.Store(&clusterView{ring: ketama.FromWeights(ketama.DefaultBase, weights), weights: weights, nodes: nodes})
	tw.w = w
	tw.public = httptest.NewServer(w.publicHandler())
	tw.admin = httptest.NewServer(w.adminHandler())
	t.Cleanup(tw.public.Close)
	t.Cleanup(tw.admin.Close)
	return tw
}

type answer struct {
	status int
	ctype  string
	body   string
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(a.body), &m); err != nil {
		t.Fatalf("answer %q is not JSON: %v", a.body, err)
	}
	return m
}

// ret returns the "ret" code of a JSON answer.
func (a answer) ret(t *testing.T) int {
	t.Helper()
	v, ok := a.json(t)["ret"].(float64)
	if !ok {
		t.Fatalf("answer %q has no numeric ret", a.body)
	}
	return int(v)
}

func do(t *testing.T, method, u, ctype string, body io.Reader) answer {
	t.Helper()
	a := testenv.HTTPDo(t, method, u, ctype, body)
	return answer{status: a.Status, ctype: a.Header.Get("Content-Type"), body: a.Body}
}

func get(t *testing.T, u string) answer { return do(t, http.MethodGet, u, "", nil) }

func post(t *testing.T, u, body string) answer {
	return do(t, http.MethodPost, u, "application/x-www-form-urlencoded", strings.NewReader(body))
}

// expectCode checks an HTTP 200 JSON answer with the given ret and nothing
// else.
func expectCode(t *testing.T, a answer, code int) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d, want 200 (body %q)", a.status, a.body)
	}
	if got := a.ret(t); got != code {
		t.Fatalf("ret %d, want %d (body %q)", got, code, a.body)
	}
	if code != api.CodeOK {
		if _, has := a.json(t)["data"]; has {
			t.Fatalf("error answer carries data: %q", a.body)
		}
	}
}

var twoNodes = map[string]int{"node-a": 1, "node-b": 2}

func TestServerGetRoutesByRing(t *testing.T) {
	tw := newTestWeb(t, twoNodes, []string{"node-a", "node-b"}, nil)
	ring := ketama.FromWeights(ketama.DefaultBase, twoNodes)
	seen := map[string]bool{}
	for i := range 50 {
		key := fmt.Sprintf("user-%d", i)
		node := ring.Get(key)
		seen[node] = true
		a := get(t, tw.public.URL+"/1/server/get?k="+key+"&p=2")
		if a.ctype != "application/json" {
			t.Fatalf("Content-Type %q", a.ctype)
		}
		want := fmt.Sprintf(`{"ret":0,"data":{"server":"tcp-%s-1"}}`, node)
		if a.body != want {
			t.Fatalf("key %s: got %s, want %s", key, a.body, want)
		}
		a = get(t, tw.public.URL+"/1/server/get?k="+key+"&p=1")
		if want := fmt.Sprintf(`{"ret":0,"data":{"server":"ws-%s-1"}}`, node); a.body != want {
			t.Fatalf("key %s: got %s, want %s", key, a.body, want)
		}
		a = get(t, tw.public.URL+"/2/server/get?k="+key+"&p=1")
		if want := fmt.Sprintf(`{"ret":0,"data":{"server":["ws-%[1]s-1","ws-%[1]s-2"]}}`, node); a.body != want {
			t.Fatalf("key %s: got %s, want %s", key, a.body, want)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("50 keys all went to %v; the test needs both nodes", seen)
	}
}

func TestServerGetJSONPAndUnversioned(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"only": 1}, []string{"only"}, nil)
	a := get(t, tw.public.URL+"/1/server/get?k=Terry-Mao&p=2&cb=jQuery_123")
	if a.ctype != "application/javascript" {
		t.Fatalf("JSONP Content-Type %q", a.ctype)
	}
	if want := `jQuery_123({"ret":0,"data":{"server":"tcp-only-1"}})`; a.body != want {
		t.Fatalf("got %s, want %s", a.body, want)
	}
	// The unversioned path: key, proto, callback and "msg":"ok".
	a = get(t, tw.public.URL+"/server/get?key=Terry-Mao&proto=1&callback=f")
	if want := `f({"ret":0,"msg":"ok","data":{"server":"ws-only-1"}})`; a.body != want {
		t.Fatalf("got %s, want %s", a.body, want)
	}
	// On the versioned path "callback" is not the JSONP parameter.
	a = get(t, tw.public.URL+"/1/server/get?k=x&p=1&callback=f")
	if a.ctype != "application/json" || strings.HasPrefix(a.body, "f(") {
		t.Fatalf("callback honoured on /1/server/get: %s %s", a.ctype, a.body)
	}
	// A callback that is not a function name is refused, not echoed.
	a = get(t, tw.public.URL+"/1/server/get?k=x&p=1&cb="+url.QueryEscape("alert(1);//"))
	expectCode(t, a, api.CodeParamErr)
	if strings.Contains(a.body, "alert") {
		t.Fatalf("callback echoed: %s", a.body)
	}
}

func TestServerGetBadInput(t *testing.T) {
	tw := newTestWeb(t, twoNodes, []string{"node-a"}, nil)
	for _, q := range []string{"", "?p=1", "?k=&p=1", "?k=a", "?k=a&p=0", "?k=a&p=5", "?k=a&p=tcp", "?p=1&k=" + longKey} {
		expectCode(t, get(t, tw.public.URL+"/1/server/get"+q), api.CodeParamErr)
		expectCode(t, get(t, tw.public.URL+"/2/server/get"+q), api.CodeParamErr)
	}
	expectCode(t, get(t, tw.public.URL+"/server/get?proto=1"), api.CodeParamErr)

	// node-b is on the ring but has no serving instance: 1001.
	ring := ketama.FromWeights(ketama.DefaultBase, twoNodes)
	var keyB string
	for i := 0; keyB == ""; i++ {
		if k := fmt.Sprint("k", i); ring.Get(k) == "node-b" {
			keyB = k
		}
	}
	expectCode(t, get(t, tw.public.URL+"/1/server/get?p=1&k="+keyB), api.CodeNoNode)

	a := post(t, tw.public.URL+"/1/server/get?k=a&p=1", "")
	if a.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST /1/server/get: status %d, want 405", a.status)
	}
}

func TestServerGetEmptyRing(t *testing.T) {
	tw := newTestWeb(t, map[string]int{}, nil, nil)
	expectCode(t, get(t, tw.public.URL+"/1/server/get?k=a&p=1"), api.CodeNoNode)
	a := get(t, tw.public.URL+"/server/get?key=a&proto=1")
	if a.body != `{"ret":1001,"msg":"ok"}` {
		t.Fatalf("got %s", a.body)
	}
}

func TestMsgGet(t *testing.T) {
	tw := newTestWeb(t, nil, nil, nil)
	tw.msgs.fn = func(method string, args, reply any) error {
		if method != api.MessageGetPrivate {
			return fmt.Errorf("unexpected %s", method)
		}
		a := args.(*api.MessageGetPrivateArgs)
		r := reply.(*api.MessageGetResp)
		switch a.Key {
		case "full":
			r.Msgs = []*api.Message{
				{Msg: json.RawMessage(`{"n":2}`), MsgId: 17000000000000002},
				{Msg: json.RawMessage(`{"n":1}`), MsgId: 17000000000000001},
				{Msg: json.RawMessage(`"three"`), MsgId: 17000000000000003},
			}
		case "broken":
			return errors.New("message node down")
		}
		return nil
	}
	a := get(t, tw.public.URL+"/1/msg/get?k=full&m=17000000000000000")
	want := `{"ret":0,"data":{"msgs":[{"msg":{"n":1},"mid":17000000000000001,"gid":0},{"msg":{"n":2},"mid":17000000000000002,"gid":0},{"msg":"three","mid":17000000000000003,"gid":0}]}}`
	if a.body != want {
		t.Fatalf("got  %s\nwant %s", a.body, want)
	}
	calls := tw.msgs.Calls()
	if got := calls[len(calls)-1].args.(*api.MessageGetPrivateArgs); got.Key != "full" || got.MsgId != 17000000000000000 {
		t.Fatalf("GetPrivate args %+v", got)
	}
	// The old form: msgs as JSON strings in the old message form, empty pmsgs.
	a = get(t, tw.public.URL+"/msg/get?key=full&mid=0&callback=cb")
	want = `cb({"ret":0,"msg":"ok","data":{"msgs":["{\"msg\":\"{\\\"n\\\":1}\",\"mid\":17000000000000001,\"gid\":0}","{\"msg\":\"{\\\"n\\\":2}\",\"mid\":17000000000000002,\"gid\":0}","{\"msg\":\"\\\"three\\\"\",\"mid\":17000000000000003,\"gid\":0}"],"pmsgs":[]}})`
	if a.body != want {
		t.Fatalf("got  %s\nwant %s", a.body, want)
	}
	// None: no data.
	if a := get(t, tw.public.URL+"/1/msg/get?k=none&m=0"); a.body != `{"ret":0}` {
		t.Fatalf("got %s", a.body)
	}
	if a := get(t, tw.public.URL+"/msg/get?key=none&mid=0"); a.body != `{"ret":0,"msg":"ok"}` {
		t.Fatalf("got %s", a.body)
	}
	// The message node failing: 65535.
	expectCode(t, get(t, tw.public.URL+"/1/msg/get?k=broken&m=0"), api.CodeInternalErr)

	before := len(tw.msgs.Calls())
	// Without the mid, 65534 as from a 1.0.5 web, on both paths, so that a
	// client that forgets it fails against gopush as it would against 1.0.5.
	for q, want := range map[string]string{
		"/1/msg/get?k=full":                 `{"ret":65534}`,
		"/1/msg/get?k=full&m=":              `{"ret":65534}`,
		"/1/msg/get?k=full&cb=f":            `f({"ret":65534})`,
		"/msg/get?key=full":                 `{"ret":65534,"msg":"ok"}`,
		"/msg/get?key=full&mid=&callback=f": `f({"ret":65534,"msg":"ok"})`,
	} {
		if a := get(t, tw.public.URL+q); a.status != http.StatusOK || a.body != want {
			t.Errorf("%s: %d %s, want 200 %s", q, a.status, a.body, want)
		}
	}
	for _, q := range []string{"", "?m=0", "?k=&m=0", "?k=a&m=x", "?k=a&m=-1", "?k=a&m=1.5", "?k=a&m=99999999999999999999", "?m=0&k=" + longKey} {
		expectCode(t, get(t, tw.public.URL+"/1/msg/get"+q), api.CodeParamErr)
	}
	if n := len(tw.msgs.Calls()); n != before {
		t.Fatalf("bad requests reached the message node (%d calls)", n-before)
	}
	if a := post(t, tw.public.URL+"/1/msg/get?k=a", ""); a.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST /1/msg/get: status %d", a.status)
	}
}

func TestTimeGet(t *testing.T) {
	tw := newTestWeb(t, nil, nil, nil)
	for _, p := range []string{"/1/time/get", "/time/get"} {
		before := time.Now().UnixNano() / 100
		a := get(t, tw.public.URL+p)
		after := time.Now().UnixNano() / 100
		var r struct {
			Ret  int
			Msg  string
			Data struct {
				TimeID int64 `json:"timeid"`
			}
		}
		if err := json.Unmarshal([]byte(a.body), &r); err != nil {
			t.Fatal(err)
		}
		if r.Ret != 0 || r.Data.TimeID < before || r.Data.TimeID > after {
			t.Fatalf("%s: %s not within [%d, %d]", p, a.body, before, after)
		}
		if (p == "/time/get") != (r.Msg == "ok") {
			t.Fatalf("%s: msg %q", p, r.Msg)
		}
	}
}

// keyOn returns a key that the ring of weights gives node.
func keyOn(weights map[string]int, node, prefix string) string {
	ring := ketama.FromWeights(ketama.DefaultBase, weights)
	for i := 0; ; i++ {
		if k := fmt.Sprint(prefix, i); ring.Get(k) == node {
			return k
		}
	}
}

func TestPushPrivate(t *testing.T) {
	tw := newTestWeb(t, twoNodes, []string{"node-a", "node-b"}, nil)
	key := keyOn(twoNodes, "node-b", "u")
	for _, p := range []string{"/1/admin/push/private", "/admin/push"} {
		a := post(t, tw.admin.URL+p+"?key="+key+"&expire=600", `{"test":1}`)
		expectCode(t, a, api.CodeOK)
		if p == "/admin/push" && a.body != `{"ret":0,"msg":"ok"}` {
			t.Fatalf("got %s", a.body)
		}
		if p != "/admin/push" && a.body != `{"ret":0}` {
			t.Fatalf("got %s", a.body)
		}
	}
	calls := tw.comets["node-b"].Calls()
	if len(calls) != 2 || len(tw.comets["node-a"].Calls()) != 0 {
		t.Fatalf("calls: node-b %d, node-a %d", len(calls), len(tw.comets["node-a"].Calls()))
	}
	args := calls[0].args.(*api.CometPushPrivateArgs)
	if calls[0].method != api.CometPushPrivate || args.Key != key || string(args.Msg) != `{"test":1}` || args.Expire != 600 {
		t.Fatalf("call %s %+v", calls[0].method, args)
	}

	// The comet failing: 65535. Answering a non-zero code: 65535.
	tw.comets["node-b"].fn = func(string, any, any) error { return errors.New("boom") }
	expectCode(t, post(t, tw.admin.URL+"/1/admin/push/private?expire=0&key="+key, `1`), api.CodeInternalErr)
	tw.comets["node-b"].fn = func(_ string, _, reply any) error { *reply.(*int) = 3; return nil }
	expectCode(t, post(t, tw.admin.URL+"/1/admin/push/private?expire=0&key="+key, `1`), api.CodeInternalErr)
}

func TestPushPrivateBadInput(t *testing.T) {
	weights := map[string]int{"node-a": 1}
	tw := newTestWeb(t, weights, []string{"node-a"}, nil)
	u := tw.admin.URL + "/1/admin/push/private"
	cases := []struct{ query, body string }{
		{"?expire=0", `{"a":1}`},                // no key
		{"?key=&expire=0", `{"a":1}`},           // empty key
		{"?expire=0&key=" + longKey, `{"a":1}`}, // longer than comets accept
		{"?key=k", `{"a":1}`},                   // no expire
		{"?key=k&expire=-1", `{"a":1}`},         // negative
		{"?key=k&expire=ten", `{"a":1}`},        // not a number
		{"?key=k&expire=1.5", `{"a":1}`},
		{"?key=k&expire=0", ``},            // empty body
		{"?key=k&expire=0", `{"a":1`},      // not JSON
		{"?key=k&expire=0", `hello`},       // not JSON
		{"?key=k&expire=0", `{"a":1} {}`},  // two values
		{"?key=k&expire=60", "\xff\xfe{}"}, // not UTF-8 JSON
	}
	for _, c := range cases {
		a := post(t, u+c.query, c.body)
		expectCode(t, a, api.CodeParamErr)
		if a.body != `{"ret":65534}` {
			t.Fatalf("%s %q: body %s", c.query, c.body, a.body)
		}
	}
	if a := get(t, u+"?key=k&expire=0"); a.status != http.StatusMethodNotAllowed || a.ret(t) != api.CodeParamErr {
		t.Fatalf("GET push/private: %d %s", a.status, a.body)
	}
	// A body over admin.maxbody (64 KiB here): 413, whether announced by
	// Content-Length or streamed without one.
	big := `"` + strings.Repeat("x", 10<<20) + `"`
	a := post(t, u+"?key=k&expire=0", big)
	if a.status != http.StatusRequestEntityTooLarge || a.ret(t) != api.CodeParamErr {
		t.Fatalf("big body: %d %s", a.status, a.body)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(big))
		pw.Close()
	}()
	a = do(t, http.MethodPost, u+"?key=k&expire=0", "application/json", pr)
	if a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("streamed big body: %d %s", a.status, a.body)
	}
	if n := len(tw.comets["node-a"].Calls()); n != 0 {
		t.Fatalf("%d bad pushes reached the comet", n)
	}
	// A key whose node has no serving comet: 1001.
	tw2 := newTestWeb(t, twoNodes, []string{"node-a"}, nil)
	expectCode(t, post(t, tw2.admin.URL+"/1/admin/push/private?expire=0&key="+keyOn(twoNodes, "node-b", "x"), `{}`), api.CodeNoNode)
}

func TestPushMPrivateGroupsKeysPerComet(t *testing.T) {
	weights := map[string]int{"node-a": 1, "node-b": 1, "node-c": 1}
	tw := newTestWeb(t, weights, []string{"node-a", "node-b"}, nil) // node-c has no comet
	ring := ketama.FromWeights(ketama.DefaultBase, weights)
	var keys []string
	want := map[string][]string{}
	for i := range 60 {
		k := fmt.Sprint("m", i)
		keys = append(keys, k)
		want[ring.Get(k)] = append(want[ring.Get(k)], k)
	}
	if len(want["node-a"]) == 0 || len(want["node-b"]) == 0 || len(want["node-c"]) == 0 {
		t.Fatalf("keys do not reach all nodes: %v", want)
	}
	// node-a refuses to store its first key; node-b fails altogether.
	tw.comets["node-a"].fn = func(_ string, args, reply any) error {
		reply.(*api.CometPushPrivatesResp).FKeys = args.(*api.CometPushPrivatesArgs).Keys[:1]
		return nil
	}
	tw.comets["node-b"].fn = func(string, any, any) error { return errors.New("comet died") }

	body, _ := json.Marshal(map[string]string{"m": `{"hello":"world"}`, "k": strings.Join(append(keys, keys[0], keys[5]), ",")})
	a := post(t, tw.admin.URL+"/1/admin/push/mprivate?expire=30", string(body))
	var r struct {
		Ret  int
		Data struct{ FK, SK []string }
	}
	if err := json.Unmarshal([]byte(a.body), &r); err != nil || r.Ret != 0 {
		t.Fatalf("answer %s (%v)", a.body, err)
	}
	// node-c's keys have no comet: with expire > 0 web keeps them through
	// a message node (sk, docs/reliability.md).
	var wantFK []string
	for _, k := range keys {
		if k == want["node-a"][0] || ring.Get(k) == "node-b" {
			wantFK = append(wantFK, k)
		}
	}
	if !slices.Equal(r.Data.FK, wantFK) {
		t.Fatalf("fk %v, want %v", r.Data.FK, wantFK)
	}
	if !slices.Equal(r.Data.SK, want["node-c"]) {
		t.Fatalf("sk %v, want node-c's keys %v", r.Data.SK, want["node-c"])
	}
	for _, node := range []string{"node-a", "node-b"} {
		calls := tw.comets[node].Calls()
		if len(calls) != 1 || calls[0].method != api.CometPushPrivates {
			t.Fatalf("%s: calls %v", node, calls)
		}
		args := calls[0].args.(*api.CometPushPrivatesArgs)
		if !slices.Equal(args.Keys, want[node]) || string(args.Msg) != `{"hello":"world"}` || args.Expire != 30 {
			t.Fatalf("%s: args %+v, want keys %v", node, args, want[node])
		}
	}

	// All well: {"ret":0} and no data.
	tw.comets["node-a"].fn, tw.comets["node-b"].fn = nil, nil
	body, _ = json.Marshal(map[string]string{"m": `[1,2]`, "k": strings.Join(append(want["node-a"], want["node-b"]...), ",")})
	if a := post(t, tw.admin.URL+"/1/admin/push/mprivate?expire=0", string(body)); a.body != `{"ret":0}` {
		t.Fatalf("got %s", a.body)
	}
}

func TestPushMPrivateBadInput(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"node-a": 1}, []string{"node-a"}, func(c *conf.Web) { c.Admin.MaxKeys = 10 })
	u := tw.admin.URL + "/1/admin/push/mprivate"
	mk := func(m, k string) string {
		b, _ := json.Marshal(map[string]string{"m": m, "k": k})
		return string(b)
	}
	cases := []struct{ query, body string }{
		{"?expire=0", `not json`},
		{"?expire=0", ``},
		{"?expire=0", `{"k":"a,b"}`},                      // no m
		{"?expire=0", `{"m":"{}"}`},                       // no k
		{"?expire=0", `{"m":{"a":1},"k":"a"}`},            // m not a string
		{"?expire=0", mk(`{"a":`, "a")},                   // m not JSON
		{"?expire=0", mk(`{}`, ",a")},                     // empty key (docs/protocol.md §9.3)
		{"?expire=0", mk(`{}`, "a,,b")},                   // empty key
		{"?expire=0", mk(`{}`, "a,")},                     // empty key
		{"?expire=0", mk(`{}`, "a,"+longKey)},             // a key longer than comets accept
		{"?expire=0", mk(`{}`, "0,1,2,3,4,5,6,7,8,9,10")}, // 11 keys > maxkeys 10
		{"", mk(`{}`, "a")},                               // no expire
		{"?expire=-5", mk(`{}`, "a")},
		{"?expire=x", mk(`{}`, "a")},
	}
	for _, c := range cases {
		a := post(t, u+c.query, c.body)
		if a.status != http.StatusOK || a.body != `{"ret":65534}` {
			t.Fatalf("%s %s: %d %s", c.query, c.body, a.status, a.body)
		}
	}
	// Ten distinct keys, duplicated: fine, each pushed once.
	a := post(t, u+"?expire=0", mk(`{}`, "0,1,2,3,4,5,6,7,8,9,0,1,2"))
	expectCode(t, a, api.CodeOK)
	calls := tw.comets["node-a"].Calls()
	if len(calls) != 1 || len(calls[0].args.(*api.CometPushPrivatesArgs).Keys) != 10 {
		t.Fatalf("calls %v", calls)
	}
	if a := get(t, u+"?expire=0"); a.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET mprivate: %d", a.status)
	}
	big := mk(`{}`, strings.Repeat("k,", 40<<10)+"k")
	if a := post(t, u+"?expire=0", big); a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("big body: %d %s", a.status, a.body)
	}
}

func TestMsgDel(t *testing.T) {
	tw := newTestWeb(t, nil, nil, nil)
	for _, p := range []string{"/1/admin/msg/del", "/admin/msg/clean"} {
		expectCode(t, post(t, tw.admin.URL+p, "key=Terry-Mao"), api.CodeOK)
	}
	calls := tw.msgs.Calls()
	if len(calls) != 2 || calls[0].method != api.MessageDelPrivate || calls[0].args.(string) != "Terry-Mao" {
		t.Fatalf("calls %v", calls)
	}
	for _, body := range []string{"", "key=", "other=1", "key=%zz", "key=" + longKey} {
		expectCode(t, post(t, tw.admin.URL+"/1/admin/msg/del", body), api.CodeParamErr)
	}
	if n := len(tw.msgs.Calls()); n != 2 {
		t.Fatalf("bad requests reached the message node")
	}
	tw.msgs.fn = func(string, any, any) error { return errors.New("down") }
	expectCode(t, post(t, tw.admin.URL+"/1/admin/msg/del", "key=a"), api.CodeInternalErr)
	if a := get(t, tw.admin.URL+"/1/admin/msg/del?key=a"); a.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET msg/del: %d", a.status)
	}
}

func TestTokenAdd(t *testing.T) {
	weights := map[string]int{"node-a": 1}
	tw := newTestWeb(t, weights, []string{"node-a"}, func(c *conf.Web) { c.Token.Expire = conf.Duration(2 * time.Hour) })
	expectCode(t, get(t, tw.admin.URL+"/1/token/add?k=Terry-Mao&t=0"), api.CodeOK)
	expectCode(t, post(t, tw.admin.URL+"/1/token/add", "k=Terry-Mao&t=abc"), api.CodeOK)
	calls := tw.comets["node-a"].Calls()
	if len(calls) != 2 || calls[0].method != api.CometNew {
		t.Fatalf("calls %v", calls)
	}
	if a := calls[1].args.(*api.CometNewArgs); a.Key != "Terry-Mao" || a.Token != "abc" || a.Expire != 7200 {
		t.Fatalf("New args %+v", a)
	}
	for _, q := range []string{"", "?k=a", "?t=1", "?k=&t=1", "?k=a&t=", "?t=1&k=" + longKey} {
		expectCode(t, get(t, tw.admin.URL+"/1/token/add"+q), api.CodeParamErr)
	}
	// Not on the public port unless http.tokenadd is set.
	if a := get(t, tw.public.URL+"/1/token/add?k=a&t=1"); a.status != http.StatusNotFound {
		t.Fatalf("public token/add: %d %s", a.status, a.body)
	}
	open := newTestWeb(t, weights, []string{"node-a"}, func(c *conf.Web) { c.HTTP.TokenAdd = true })
	expectCode(t, get(t, open.public.URL+"/1/token/add?k=a&t=1"), api.CodeOK)
	// No comet for the key: 1001.
	empty := newTestWeb(t, nil, nil, nil)
	expectCode(t, get(t, empty.admin.URL+"/1/token/add?k=a&t=1"), api.CodeNoNode)
}

// longKey is one byte longer than any comet accepts (docs/protocol.md §7's skey width).
var longKey = strings.Repeat("k", api.MaxKeyLen+1)
