package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"gopush/api"
	"gopush/internal/testenv"
)

// pushId pushes msg to key through w's admin push/private with an id.
func pushId(t *testing.T, w *testenv.WebNode, key, id string, expire int, msg string) answer {
	t.Helper()
	q := url.Values{"key": {key}, "expire": {fmt.Sprint(expire)}, "id": {id}}
	return httpPost(t, "http://"+w.Admin+"/1/admin/push/private?"+q.Encode(), msg)
}

// Idempotent pushes through the real daemons (docs/reliability.md, "Push
// ids"): a push retried with its id answers the first mid with dup and is
// stored and delivered once; a batch retried with its id too; and a retry
// made when the key's comet is gone finds the id through the message node.
func TestPushIdEndToEnd(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage()
	n1 := c.StartComet("node1", 1)
	w := c.StartWeb()
	key := testenv.Unique(t)
	waitRouted(t, w, key, n1.TCP)
	sub := subscribeWhenReady(t, 2, n1.TCP, key, "")

	first := pushId(t, w, key, "order-1", 600, `{"n":1}`)
	var got struct {
		Ret  int `json:"ret"`
		Data struct {
			Mid int64 `json:"mid"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(first.Body), &got); err != nil || got.Ret != 0 || got.Data.Mid == 0 {
		t.Fatalf("first push: %s", first.Body)
	}
	mid := got.Data.Mid
	if want := fmt.Sprintf(`{"ret":0,"data":{"mid":%d}}`, mid); strings.TrimSpace(first.Body) != want {
		t.Errorf("first push: %s, want %s", first.Body, want)
	}
	dup := fmt.Sprintf(`{"ret":0,"data":{"mid":%d,"dup":true}}`, mid)
	for range 3 {
		if a := pushId(t, w, key, "order-1", 600, `{"n":1}`); strings.TrimSpace(a.Body) != dup {
			t.Fatalf("retry: %s, want %s", a.Body, dup)
		}
	}
	if m := sub.next(t); m.MsgId != mid || string(m.Msg) != `{"n":1}` {
		t.Fatalf("subscriber got %+v, want mid %d", m, mid)
	}
	// The next frame is a new push, not a retry.
	if a := push(t, w, key, 0, `"marker"`); a.ret(t) != 0 {
		t.Fatalf("marker push: %s", a.Body)
	}
	if m := sub.next(t); string(m.Msg) != `"marker"` {
		t.Fatalf("subscriber got %+v, want the marker (a retry was delivered again)", m)
	}
	if msgs, _ := offline(t, w, key, 0); len(msgs) != 1 || msgs[0].MsgId != mid {
		t.Fatalf("stored %+v, want the one message under mid %d", msgs, mid)
	}

	// A batch with an id: retried, nothing new.
	body := fmt.Sprintf(`{"m":"{\"b\":1}","k":"%s"}`, key)
	for i := range 2 {
		a := httpPost(t, "http://"+w.Admin+"/1/admin/push/mprivate?expire=600&id=batch-1", body)
		if strings.TrimSpace(a.Body) != `{"ret":0}` {
			t.Fatalf("mprivate %d: %s", i, a.Body)
		}
	}
	if m := sub.next(t); string(m.Msg) != `{"b":1}` {
		t.Fatalf("subscriber got %+v, want the batch message", m)
	}
	push(t, w, key, 0, `"marker2"`)
	if m := sub.next(t); string(m.Msg) != `"marker2"` {
		t.Fatalf("subscriber got %+v, want the second marker (the batch retry was delivered again)", m)
	}
	if msgs, _ := offline(t, w, key, 0); len(msgs) != 2 {
		t.Fatalf("stored %d messages, want 2", len(msgs))
	}

	// push/all with an id: the retry answers the first mid; kept once.
	all1 := httpPost(t, "http://"+w.Admin+"/1/admin/push/all?expire=600&id=all-1", `{"all":1}`)
	var pa struct {
		Ret  int `json:"ret"`
		Data struct {
			Mid int64 `json:"mid"`
			Dup bool  `json:"dup"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(all1.Body), &pa); err != nil || pa.Ret != 0 || pa.Data.Mid == 0 || pa.Data.Dup {
		t.Fatalf("push/all: %s", all1.Body)
	}
	allMid := pa.Data.Mid
	all2 := httpPost(t, "http://"+w.Admin+"/1/admin/push/all?expire=600&id=all-1", `{"all":1}`)
	if err := json.Unmarshal([]byte(all2.Body), &pa); err != nil || pa.Ret != 0 || pa.Data.Mid != allMid || !pa.Data.Dup {
		t.Fatalf("push/all retry: %s, want dup of mid %d", all2.Body, allMid)
	}
	pub := httpGet(t, fmt.Sprintf("http://%s/1/msg/get?k=%s&m=0&pm=0", w.HTTP, url.QueryEscape(key)))
	if n := strings.Count(pub.Body, `"gid":1`); n != 1 {
		t.Errorf("msg/get pmsgs: %s, want the public message once", pub.Body)
	}

	// The comet stops; a retry of the first push is kept-or-found through
	// the message node: it finds the id and answers the first mid.
	n1.Stop()
	waitFor(t, "web to see the comet gone", func() bool {
		_, code := serverGet(t, w, key, 2)
		return code != 0
	})
	if a := pushId(t, w, key, "order-1", 600, `{"n":1}`); strings.TrimSpace(a.Body) != dup {
		t.Errorf("retry with the comet gone: %s, want %s", a.Body, dup)
	}
	a := pushId(t, w, key, "order-2", 600, `{"n":2}`)
	var kept struct {
		Ret  int `json:"ret"`
		Data struct {
			Stored    bool  `json:"stored"`
			Delivered *bool `json:"delivered"`
			Mid       int64 `json:"mid"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(a.Body), &kept); err != nil || kept.Ret != 0 || !kept.Data.Stored ||
		kept.Data.Delivered == nil || *kept.Data.Delivered || kept.Data.Mid == 0 {
		t.Errorf("new push with the comet gone: %s, want stored, not delivered", a.Body)
	}
	if msgs, _ := offline(t, w, key, 0); len(msgs) != 3 {
		t.Errorf("stored %d messages, want 3", len(msgs))
	}
	// Bad ids are refused.
	if a := pushId(t, w, key, "a b", 600, `1`); a.ret(t) != api.CodeParamErr {
		t.Errorf("a bad id: %s", a.Body)
	}
}
