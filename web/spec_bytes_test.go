package web

import (
	"encoding/json"
	"gopush/api"
	"regexp"
	"testing"
)

// TestAnswersExactBytes pins the answers of docs/protocol.md §3 byte for byte where the
// spec shows them. Go's json.Unmarshal matches field names without regard
// to case, so the tests that decode answers into structs cannot catch a
// field spelt "Fk" or "Data": these compare the raw bodies.
func TestAnswersExactBytes(t *testing.T) {
	t.Parallel()
	weights := map[string]int{"node-a": 1}
	tw := newTestWeb(t, weights, []string{"node-a"}, nil)
	exact := func(what string, a answer, ctype, want string) {
		t.Helper()
		if a.status != 200 || a.ctype != ctype || a.body != want {
			t.Errorf("%s: %d %q %s, want 200 %q %s", what, a.status, a.ctype, a.body, ctype, want)
		}
	}
	const js = "application/json"
	exact("/1/server/get", get(t, tw.public.URL+"/1/server/get?k=a&p=2"), js, `{"ret":0,"data":{"server":"tcp-node-a-1"}}`)
	exact("/2/server/get", get(t, tw.public.URL+"/2/server/get?k=a&p=1"), js, `{"ret":0,"data":{"server":["ws-node-a-1","ws-node-a-2"]}}`)
	exact("/2/server/get JSONP", get(t, tw.public.URL+"/2/server/get?k=a&p=2&cb=f"), "application/javascript",
		`f({"ret":0,"data":{"server":["tcp-node-a-1","tcp-node-a-2"]}})`)
	exact("/1/server/get error", get(t, tw.public.URL+"/1/server/get?k=a&p=5"), js, `{"ret":65534}`)
	exact("/1/server/get error JSONP", get(t, tw.public.URL+"/1/server/get?k=a&cb=f"), "application/javascript", `f({"ret":65534})`)
	exact("/server/get error", get(t, tw.public.URL+"/server/get?key=a"), js, `{"ret":65534,"msg":"ok"}`)

	timeNew := regexp.MustCompile(`^\{"ret":0,"data":\{"timeid":[0-9]{17}\}\}$`)
	if a := get(t, tw.public.URL+"/1/time/get"); !timeNew.MatchString(a.body) {
		t.Errorf("/1/time/get: %s", a.body)
	}
	timeOld := regexp.MustCompile(`^cb\(\{"ret":0,"msg":"ok","data":\{"timeid":[0-9]{17}\}\}\)$`)
	if a := get(t, tw.public.URL+"/time/get?callback=cb"); !timeOld.MatchString(a.body) || a.ctype != "application/javascript" {
		t.Errorf("/time/get JSONP: %q %s", a.ctype, a.body)
	}

	// /1/msg/get: new-form messages, raw JSON in msg.
	setFn(tw.msgs, func(_ string, _, reply any) error {
		reply.(*api.MessageGetResp).Msgs = []*api.Message{{Msg: json.RawMessage(`{"a":1}`), MsgId: 17000000000000001}}
		return nil
	})
	exact("/1/msg/get", get(t, tw.public.URL+"/1/msg/get?k=a&m=0"), js, `{"ret":0,"data":{"msgs":[{"msg":{"a":1},"mid":17000000000000001,"gid":0}]}}`)
	setFn(tw.msgs, nil)

	// Admin answers.
	exact("push/private", post(t, tw.admin.URL+"/1/admin/push/private?key=a&expire=0", `{"a":1}`), js, `{"ret":0}`)
	mprivate := func() answer {
		return post(t, tw.admin.URL+"/1/admin/push/mprivate?expire=60", `{"m":"{\"a\":1}","k":"k1,k2,k3"}`)
	}
	exact("push/mprivate, nothing failed", mprivate(), js, `{"ret":0}`)
	setFn(tw.comets["node-a"], func(_ string, _, reply any) error {
		reply.(*api.CometPushPrivatesResp).FKeys = []string{"k2"}
		return nil
	})
	exact("push/mprivate, k2 failed", mprivate(), js, `{"ret":0,"data":{"fk":["k2"]}}`)
	setFn(tw.comets["node-a"], nil)
	exact("msg/del", post(t, tw.admin.URL+"/1/admin/msg/del", "key=a"), js, `{"ret":0}`)
	exact("token/add", get(t, tw.admin.URL+"/1/token/add?k=a&t=tok"), js, `{"ret":0}`)
	exact("push/private, body not JSON", post(t, tw.admin.URL+"/1/admin/push/private?key=a&expire=0", `{a:1}`), js, `{"ret":65534}`)
}

// setFn replaces what a fake RPC peer does, under its lock.
func setFn(f *fakeRPC, fn func(method string, args, reply any) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fn = fn
}
