package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/rpc"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

// idComet is a fake comet with PushPrivateId: it remembers ids by key as
// the message node does, and answers the first mid on a retry.
type idComet struct {
	mu   sync.Mutex
	ids  map[string]int64
	next int64
	fail error // returned (once set) by every call
}

func (c *idComet) call(method string, args, reply any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	if method != api.CometPushPrivateId {
		return nil
	}
	a := args.(*api.CometPushPrivateIdArgs)
	r := reply.(*api.PushIdReply)
	if first, ok := c.ids[a.Key+"\x00"+a.Id]; ok {
		r.Mid, r.Dup = first, true
		return nil
	}
	c.next++
	c.ids[a.Key+"\x00"+a.Id] = c.next
	r.Mid = c.next
	return nil
}

type idAnswer struct {
	Ret  int `json:"ret"`
	Data struct {
		Mid       int64    `json:"mid"`
		Dup       bool     `json:"dup"`
		Stored    bool     `json:"stored"`
		Delivered *bool    `json:"delivered"`
		Retry     string   `json:"retry"`
		FK        []string `json:"fk"`
		SK        []string `json:"sk"`
	} `json:"data"`
}

func postId(t *testing.T, u, body string) (idAnswer, string) {
	t.Helper()
	a := post(t, u, body)
	var got idAnswer
	if err := json.Unmarshal([]byte(a.body), &got); err != nil {
		t.Fatalf("%s: answer %q is not JSON: %v", u, a.body, err)
	}
	return got, strings.TrimSpace(a.body)
}

// push/private with an id goes through PushPrivateId with the id and web's
// deadline and answers the mid; a retry answers the first mid with dup.
// The legacy /admin/push takes the id too. Without an id nothing changes
// (no data, PushPrivate).
func TestPushWithIdAnswersFirstMid(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1}, []string{"a"}, nil)
	ic := &idComet{ids: map[string]int64{}, next: 100}
	tw.comets["a"].fn = ic.call
	u := tw.admin.URL + "/1/admin/push/private?expire=60&key=k1&id=order-17"
	first, body := postId(t, u, `{"n":1}`)
	if want := `{"ret":0,"data":{"mid":101}}`; body != want {
		t.Fatalf("first push: %s, want %s", body, want)
	}
	again, body := postId(t, u, `{"n":1}`)
	if want := `{"ret":0,"data":{"mid":101,"dup":true}}`; body != want || again.Data.Mid != first.Data.Mid {
		t.Fatalf("retry: %s, want %s", body, want)
	}
	if _, body := postId(t, tw.admin.URL+"/admin/push?expire=60&key=k1&id=order-17", `{"n":1}`); body != `{"ret":0,"msg":"ok","data":{"mid":101,"dup":true}}` {
		t.Errorf("legacy /admin/push retry: %s", body)
	}
	calls := tw.comets["a"].Calls()
	a, ok := calls[0].args.(*api.CometPushPrivateIdArgs)
	if calls[0].method != api.CometPushPrivateId || !ok || a.Id != "order-17" || a.Key != "k1" || a.Expire != 60 ||
		a.Deadline < time.Now().UnixNano() {
		t.Fatalf("comet got %s %+v, want PushPrivateId with the id and a deadline", calls[0].method, calls[0].args)
	}
	if _, body := postId(t, tw.admin.URL+"/1/admin/push/private?expire=60&key=k1", `1`); body != `{"ret":0}` {
		t.Errorf("push without id: %s, want {\"ret\":0}", body)
	}
	if last := tw.comets["a"].Calls(); last[len(last)-1].method != api.CometPushPrivate {
		t.Errorf("push without id went through %s", last[len(last)-1].method)
	}
}

// Bad ids are refused (65534) before anything is done.
func TestPushIdRefused(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1}, []string{"a"}, nil)
	for _, id := range []string{"", strings.Repeat("x", 65), "a b", "caf\u00e9", "a\tb"} {
		q := url.Values{"key": {"k"}, "expire": {"60"}, "id": {id}}
		if _, body := postId(t, tw.admin.URL+"/1/admin/push/private?"+q.Encode(), `1`); body != `{"ret":65534}` {
			t.Errorf("id %q: %s, want 65534", id, body)
		}
		q.Del("key")
		if _, body := postId(t, tw.admin.URL+"/1/admin/push/mprivate?"+q.Encode(), `{"m":"1","k":"a"}`); body != `{"ret":65534}` {
			t.Errorf("mprivate id %q: %s, want 65534", id, body)
		}
	}
	if _, body := postId(t, tw.admin.URL+"/1/admin/push/all?expire=60&id=a+b", `1`); body != `{"ret":65534}` {
		t.Errorf("push/all with a bad id: %s, want 65534", body)
	}
	if n := len(tw.comets["a"].Calls()); n != 0 {
		t.Errorf("%d comet calls for refused pushes", n)
	}
}

// A failed push with an id answers 65535 (or 1001) as before, plus
// data.retry: "safe" when nothing was done, "same-id" when the outcome is
// unknown.
func TestPushIdRetryAdvice(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1, "dead": 1}, []string{"a"}, nil)
	view := tw.w.cluster.load()
	var deadKey, liveKey string
	for i := 0; deadKey == "" || liveKey == ""; i++ {
		k := fmt.Sprintf("rk%d", i)
		if _, _, err := view.lookup(k); err != nil {
			deadKey = k
		} else {
			liveKey = k
		}
	}
	push := func(key string, expire int) string {
		_, body := postId(t, fmt.Sprintf("%s/1/admin/push/private?expire=%d&key=%s&id=r1", tw.admin.URL, expire, key), `1`)
		return body
	}
	cases := []struct {
		what   string
		err    error
		expire int
		want   string
	}{
		{"timeout after sending", gobrpc.ErrTimeout, 0, `{"ret":65535,"data":{"retry":"same-id"}}`},
		{"comet's save failed", rpc.ServerError("storing the message: i/o timeout"), 60, `{"ret":65535,"data":{"retry":"same-id"}}`},
		{"dropped on arrival", rpc.ServerError("CometRPC.PushPrivateId: " + api.ErrDeadlinePassed.Error()), 60, `{"ret":65535,"data":{"retry":"safe"}}`},
		{"ids need Redis (MySQL message nodes)", rpc.ServerError("storing the message: " + api.NoPushIds), 60, `{"ret":65534}`},
		{"comet has no message node", rpc.ServerError("storing the message of key \"k\" under push id \"r1\": " + gobrpc.ErrNoMessageNode.Error()), 60, `{"ret":65535,"data":{"retry":"safe"}}`},
	}
	for _, c := range cases {
		tw.comets["a"].fn = func(string, any, any) error { return c.err }
		if got := push(liveKey, c.expire); got != c.want {
			t.Errorf("%s: %s, want %s", c.what, got, c.want)
		}
	}
	// Never sent (nothing listens), expire 0: safe.
	closed := gobrpc.NewClient(testenv.FreeAddr(t), time.Second)
	t.Cleanup(func() { closed.Close() })
	view.nodes["a"].rpc = closed
	if got := push(liveKey, 0); got != `{"ret":65535,"data":{"retry":"safe"}}` {
		t.Errorf("comet not reachable: %s", got)
	}
	if got := push(deadKey, 0); got != `{"ret":1001,"data":{"retry":"safe"}}` {
		t.Errorf("no comet for the key: %s", got)
	}
	// No comet and the message node times out keeping it: unknown.
	tw.msgs.fn = func(string, any, any) error { return gobrpc.ErrTimeout }
	if got := push(deadKey, 60); got != `{"ret":1001,"data":{"retry":"same-id"}}` {
		t.Errorf("no comet, keeping it timed out: %s", got)
	}
	// And no message node at all: safe.
	tw.msgs.fn = func(string, any, any) error { return gobrpc.ErrNoMessageNode }
	if got := push(deadKey, 60); got != `{"ret":1001,"data":{"retry":"safe"}}` {
		t.Errorf("no comet, no message node: %s", got)
	}
}

// With no comet for the key (or one that cannot be dialled), a push with
// an id and expire > 0 is kept through SavePrivateId; a retry answers the
// first mid with dup.
func TestPushIdStoreOnly(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"dead": 1}, nil, nil)
	ids := map[string]int64{}
	tw.msgs.fn = func(method string, args, reply any) error {
		if method != api.MessageSavePrivateId {
			return errors.New("unexpected " + method)
		}
		a := args.(*api.MessageSavePrivateIdArgs)
		r := reply.(*api.PushIdReply)
		if m, ok := ids[a.Key+"\x00"+a.Id]; ok {
			r.Mid, r.Dup = m, true
			return nil
		}
		ids[a.Key+"\x00"+a.Id] = a.MsgId
		r.Mid = a.MsgId
		return nil
	}
	u := tw.admin.URL + "/1/admin/push/private?expire=60&key=k&id=s1"
	first, body := postId(t, u, `{"n":1}`)
	if first.Ret != 0 || !first.Data.Stored || first.Data.Delivered == nil || *first.Data.Delivered || first.Data.Mid <= 0 {
		t.Fatalf("first push: %s, want stored, not delivered, with a mid", body)
	}
	again, body := postId(t, u, `{"n":1}`)
	if again.Ret != 0 || !again.Data.Dup || again.Data.Mid != first.Data.Mid {
		t.Fatalf("retry: %s, want dup of mid %d", body, first.Data.Mid)
	}
	if n := len(ids); n != 1 {
		t.Errorf("%d ids recorded", n)
	}
}

// push/mprivate and push/room with an id push key by key under (key, id):
// keys that failed are in fk and a retry of the batch pushes again only
// what did not take.
func TestMprivateWithIdPerKey(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1}, []string{"a"}, nil)
	ic := &idComet{ids: map[string]int64{}}
	var refuse sync.Map
	tw.comets["a"].fn = func(method string, args, reply any) error {
		if a, ok := args.(*api.CometPushPrivateIdArgs); ok {
			if _, bad := refuse.Load(a.Key); bad {
				return gobrpc.ErrTimeout
			}
		}
		return ic.call(method, args, reply)
	}
	refuse.Store("k2", true)
	u := tw.admin.URL + "/1/admin/push/mprivate?expire=60&id=batch-1"
	got, body := postId(t, u, `{"m":"{\"a\":1}","k":"k1,k2,k3"}`)
	if got.Ret != 0 || !slices.Equal(got.Data.FK, []string{"k2"}) {
		t.Fatalf("first batch: %s, want fk [k2]", body)
	}
	refuse.Delete("k2")
	if _, body := postId(t, u, `{"m":"{\"a\":1}","k":"k1,k2,k3"}`); body != `{"ret":0}` {
		t.Fatalf("retried batch: %s, want {\"ret\":0}", body)
	}
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if len(ic.ids) != 3 {
		t.Errorf("%d (key, id) pairs pushed, want 3", len(ic.ids))
	}
	for _, c := range tw.comets["a"].Calls() {
		if c.method != api.CometPushPrivateId || c.args.(*api.CometPushPrivateIdArgs).Id != "batch-1" {
			t.Fatalf("comet got %s %+v, want PushPrivateId with the batch's id", c.method, c.args)
		}
	}
}

// A 1.0.5 comet has no PushPrivateId: the push goes the old way, answered
// without a mid (not deduplicated).
func TestPushIdOldComet(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1}, []string{"a"}, nil)
	tw.comets["a"].fn = func(method string, _, _ any) error {
		if method == api.CometPushPrivateId {
			return rpc.ServerError("rpc: can't find method " + method)
		}
		return nil
	}
	if _, body := postId(t, tw.admin.URL+"/1/admin/push/private?expire=60&key=k&id=x", `1`); body != `{"ret":0}` {
		t.Fatalf("push with id to a 1.0.5 comet: %s, want {\"ret\":0}", body)
	}
	calls := tw.comets["a"].Calls()
	if len(calls) != 2 || calls[1].method != api.CometPushPrivate {
		t.Fatalf("comet calls %+v, want PushPrivateId then PushPrivate", calls)
	}
}

// push/all with an id keeps the public message through SavePublicId and
// broadcasts it; a retry answers the first mid with dup and broadcasts
// again under that mid (clients drop it by mid when they have it).
func TestPushAllWithId(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1, "b": 1}, []string{"a", "b"}, nil)
	ids := map[string]int64{}
	tw.msgs.fn = func(method string, args, reply any) error {
		if method != api.MessageSavePublicId {
			return errors.New("unexpected " + method)
		}
		a := args.(*api.MessageSavePublicIdArgs)
		r := reply.(*api.PushIdReply)
		if m, ok := ids[a.Id]; ok {
			r.Mid, r.Dup = m, true
			return nil
		}
		ids[a.Id] = a.MsgId
		r.Mid = a.MsgId
		return nil
	}
	u := tw.admin.URL + "/1/admin/push/all?expire=60&id=all-1"
	first, body := postId(t, u, `{"all":1}`)
	if first.Ret != 0 || first.Data.Mid <= 0 || first.Data.Dup {
		t.Fatalf("first push/all: %s", body)
	}
	again, body := postId(t, u, `{"all":1}`)
	if want := fmt.Sprintf(`{"ret":0,"data":{"dup":true,"mid":%d}}`, first.Data.Mid); body != want || again.Data.Mid != first.Data.Mid {
		t.Fatalf("retry: %s, want %s", body, want)
	}
	for _, node := range []string{"a", "b"} {
		calls := tw.comets[node].Calls()
		if len(calls) != 2 {
			t.Fatalf("comet %s got %d broadcasts, want 2", node, len(calls))
		}
		for _, c := range calls {
			if c.args.(*api.CometBroadcastArgs).MsgId != first.Data.Mid {
				t.Errorf("comet %s got a broadcast under mid %d, want the first %d", node, c.args.(*api.CometBroadcastArgs).MsgId, first.Data.Mid)
			}
		}
	}
	// A failed save: nothing broadcast, data.retry.
	tw.msgs.fn = func(string, any, any) error { return gobrpc.ErrTimeout }
	if _, body := postId(t, tw.admin.URL+"/1/admin/push/all?expire=60&id=all-2", `1`); body != `{"ret":65535,"data":{"retry":"same-id"}}` {
		t.Errorf("push/all whose save timed out: %s", body)
	}
	if n := len(tw.comets["a"].Calls()); n != 2 {
		t.Errorf("comet a got %d broadcasts, want still 2", n)
	}
}
