package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"gopush/internal/testenv"
)

// TestClusterBadInput sends every bad request of issue 5 to a real web in
// front of a real comet and message node, checks status and body of each,
// and then checks that none of them pushed or stored anything.
func TestClusterBadInput(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage()
	n1 := c.StartComet("node1", 1)
	w := c.StartWeb()
	key := testenv.Unique(t)
	waitRouted(t, w, key, n1.TCP)
	sub := subscribeWhenReady(t, 2, n1.TCP, key, "")
	pub, admin := "http://"+w.HTTP, "http://"+w.Admin
	k := url.QueryEscape(key)

	type check struct {
		name      string
		method, u string
		body      string
		status    int
		want      string
	}
	mk := func(m, keys string) string {
		b, _ := json.Marshal(map[string]string{"m": m, "k": keys})
		return string(b)
	}
	const param = `{"ret":65534}`
	checks := []check{
		{"server/get without k", "GET", pub + "/1/server/get?p=2", "", 200, param},
		{"server/get with empty k", "GET", pub + "/1/server/get?k=&p=2", "", 200, param},
		{"server/get with p=5", "GET", pub + "/1/server/get?p=5&k=" + k, "", 200, param},
		{"server/get without p", "GET", pub + "/1/server/get?k=" + k, "", 200, param},
		{"server/get by POST", "POST", pub + "/1/server/get?p=2&k=" + k, "", 405, param},
		{"2/server/get with p=x", "GET", pub + "/2/server/get?p=x&k=" + k, "", 200, param},
		{"old server/get without key", "GET", pub + "/server/get?proto=2", "", 200, `{"ret":65534,"msg":"ok"}`},
		{"msg/get without k", "GET", pub + "/1/msg/get?m=0", "", 200, param},
		{"msg/get with m not a number", "GET", pub + "/1/msg/get?m=abc&k=" + k, "", 200, param},
		{"msg/get with m negative", "GET", pub + "/1/msg/get?m=-1&k=" + k, "", 200, param},
		{"msg/get without m (1.0.5 refuses it)", "GET", pub + "/1/msg/get?k=" + k, "", 200, param},
		{"old msg/get without mid (1.0.5 refuses it)", "GET", pub + "/msg/get?key=" + k, "", 200, `{"ret":65534,"msg":"ok"}`},
		{"msg/get by POST", "POST", pub + "/1/msg/get?k=" + k, "", 405, param},
		{"time/get by POST", "POST", pub + "/1/time/get", "", 405, param},

		{"push without key", "POST", admin + "/1/admin/push/private?expire=60", `{"a":1}`, 200, param},
		{"push with empty key", "POST", admin + "/1/admin/push/private?key=&expire=60", `{"a":1}`, 200, param},
		{"push with negative expire", "POST", admin + "/1/admin/push/private?expire=-1&key=" + k, `{"a":1}`, 200, param},
		{"push with expire not a number", "POST", admin + "/1/admin/push/private?expire=soon&key=" + k, `{"a":1}`, 200, param},
		{"push without expire", "POST", admin + "/1/admin/push/private?key=" + k, `{"a":1}`, 200, param},
		{"push with a body that is not JSON", "POST", admin + "/1/admin/push/private?expire=60&key=" + k, `hello world`, 200, param},
		{"push with a truncated JSON body", "POST", admin + "/1/admin/push/private?expire=60&key=" + k, `{"a":`, 200, param},
		{"push with an empty body", "POST", admin + "/1/admin/push/private?expire=60&key=" + k, ``, 200, param},
		{"push by GET", "GET", admin + "/1/admin/push/private?expire=60&key=" + k, "", 405, param},
		{"old push with a body that is not JSON", "POST", admin + "/admin/push?expire=60&key=" + k, `nope`, 200, `{"ret":65534,"msg":"ok"}`},

		{"mprivate with a body that is not JSON", "POST", admin + "/1/admin/push/mprivate?expire=60", `m=1&k=2`, 200, param},
		{"mprivate without m", "POST", admin + "/1/admin/push/mprivate?expire=60", `{"k":"` + key + `"}`, 200, param},
		{"mprivate without k", "POST", admin + "/1/admin/push/mprivate?expire=60", `{"m":"{}"}`, 200, param},
		{"mprivate with m not JSON", "POST", admin + "/1/admin/push/mprivate?expire=60", mk(`{"a"`, key), 200, param},
		{"mprivate with an empty key first", "POST", admin + "/1/admin/push/mprivate?expire=60", mk(`{"a":1}`, ","+key), 200, param},
		{"mprivate with an empty key inside", "POST", admin + "/1/admin/push/mprivate?expire=60", mk(`{"a":1}`, key+",,"+key), 200, param},
		{"mprivate with an empty key last", "POST", admin + "/1/admin/push/mprivate?expire=60", mk(`{"a":1}`, key+","), 200, param},
		{"mprivate with negative expire", "POST", admin + "/1/admin/push/mprivate?expire=-3", mk(`{"a":1}`, key), 200, param},
		{"mprivate by GET", "GET", admin + "/1/admin/push/mprivate?expire=60", "", 405, param},

		{"msg/del without key", "POST", admin + "/1/admin/msg/del", "", 200, param},
		{"msg/del by GET", "GET", admin + "/1/admin/msg/del?key=" + k, "", 405, param},
		{"token/add without t", "GET", admin + "/1/token/add?k=" + k, "", 200, param},
	}
	for _, ch := range checks {
		var a answer
		if ch.method == "GET" {
			a = httpGet(t, ch.u)
		} else {
			a = httpPost(t, ch.u, ch.body)
		}
		if a.Status != ch.status || a.Body != ch.want {
			t.Errorf("%s: %d %s, want %d %s", ch.name, a.Status, a.Body, ch.status, ch.want)
		}
	}

	// A 10 MiB body: 413, on every admin endpoint that takes a body.
	big := `{"x":"` + strings.Repeat("y", 10<<20) + `"}`
	for _, p := range []string{"/1/admin/push/private?expire=60&key=" + k, "/1/admin/push/mprivate?expire=60", "/1/admin/msg/del"} {
		a := httpDo(t, http.MethodPost, admin+p, "application/json", strings.NewReader(big))
		if a.Status != http.StatusRequestEntityTooLarge || a.Body != param {
			t.Errorf("10 MiB body to %s: %d %.100s", p, a.Status, a.Body)
		}
	}

	// Nothing was pushed or stored: the first message the subscriber sees
	// is the good push below, and only it is stored.
	if _, a := offline(t, w, key, 0); a.Body != `{"ret":0}` {
		t.Fatalf("bad requests stored something: %s", a.Body)
	}
	if a := push(t, w, key, 60, `{"good":1}`); a.Body != `{"ret":0}` {
		t.Fatalf("good push: %s", a.Body)
	}
	if m := sub.next(t); string(m.Msg) != `{"good":1}` {
		t.Fatalf("the subscriber got %s first: a bad request was pushed", m.Msg)
	}
	if got, _ := offline(t, w, key, 0); len(got) != 1 {
		t.Fatalf("stored after one good push: %+v", got)
	}
	if a := httpGet(t, pub+"/1/msg/get?k=&m=0"); a.Body != param {
		t.Fatalf("msg/get of the empty key: %s", a.Body)
	}

	// Duplicate keys in mprivate: each key pushed once.
	if a := mpush(t, w, []string{key, key, key}, 60, `{"dup":1}`); a.Body != `{"ret":0}` {
		t.Fatalf("mprivate with duplicates: %s", a.Body)
	}
	if m := sub.next(t); string(m.Msg) != `{"dup":1}` {
		t.Fatalf("got %s", m.Msg)
	}
	if a := push(t, w, key, 0, `{"marker":1}`); a.Body != `{"ret":0}` {
		t.Fatalf("marker push: %s", a.Body)
	}
	if m := sub.next(t); string(m.Msg) != `{"marker":1}` {
		t.Fatalf("a duplicate key was pushed twice: got %s", m.Msg)
	}
	if got, _ := offline(t, w, key, 0); len(got) != 2 {
		t.Fatalf("stored after the duplicate push: %+v", got)
	}

	// 100 000 keys (admin.maxkeys) in one call are taken; one more is refused.
	keys := make([]string, 100001)
	for i := range keys {
		keys[i] = "x" + strconv.Itoa(i)
	}
	if a := mpush(t, w, keys[:100000], 0, `{"many":1}`); a.Status != 200 || a.ret(t) != 0 {
		t.Fatalf("100 000 keys: %d %.200s", a.Status, a.Body)
	}
	if a := mpush(t, w, keys, 0, `{"many":1}`); a.Status != 200 || a.Body != param {
		t.Fatalf("100 001 keys: %d %.200s", a.Status, a.Body)
	}
}
