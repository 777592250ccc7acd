package deploy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"gopush/internal/testenv"
)

// Nginx with the shipped config in front of two webs: the public API works
// through it and keeps working when one web stops; the admin API cannot be
// reached through the public server, only through the loopback one.
func TestNginxInFrontOfTwoWebs(t *testing.T) {
	cl := testenv.NewCluster(t)
	cl.StartMessage()
	comet := cl.StartComet("node1", 1)
	webs := [2]*testenv.WebNode{cl.StartWeb(), cl.StartWeb()}
	key := testenv.Unique(t)
	for _, w := range webs {
		testenv.WaitFor(t, 30*time.Second, "web "+w.HTTP+" to know the comet", func() bool {
			s, _, err := testenv.ServerOf("http://"+w.HTTP, key, "2")
			return err == nil && s == comet.TCP
		})
	}
	public, admin := startNginx(t, [2]string{webs[0].HTTP, webs[1].HTTP}, [2]string{webs[0].Admin, webs[1].Admin})
	pub := "http://" + public

	serverGet := func(what string) {
		t.Helper()
		for _, p := range []struct{ p, want string }{{"2", comet.TCP}, {"1", comet.WS}} {
			s, ret, err := testenv.ServerOf(pub, key, p.p)
			if err != nil || ret != 0 || s != p.want {
				t.Fatalf("%s: /1/server/get p=%s through nginx: server %q ret %d err %v, want %s", what, p.p, s, ret, err, p.want)
			}
		}
	}
	// Both webs answer: several calls, so that both are used.
	for range 6 {
		serverGet("both webs up")
	}
	// JSONP passes through as it is.
	resp, err := http.Get(pub + "/1/time/get?cb=f")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "f(") || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
		t.Errorf("JSONP through nginx: %s %q %q", resp.Status, resp.Header.Get("Content-Type"), body)
	}

	// Admin paths are not on the public side, whatever the method.
	for _, path := range []string{
		"/1/admin/push/private?key=" + key + "&expire=60",
		"/1/admin/push/mprivate?expire=60",
		"/1/admin/msg/del",
		"/admin/push?key=" + key,
		"/admin/msg/clean",
		"/1/token/add?k=" + key + "&t=x",
		"/1/admin/../admin/push/private?key=" + key,
		"/%31/admin/push/private?key=" + key,
	} {
		for _, method := range []string{"GET", "POST"} {
			req, _ := http.NewRequest(method, pub+path, strings.NewReader(`{"evil":1}`))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b := readBody(t, resp)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s through the public server: %s %q, want 404", method, path, resp.Status, b)
			}
		}
	}
	// Nothing was pushed by those: the key has no stored message.
	a, err := testenv.WebGet(pub, "/1/msg/get", map[string][]string{"k": {key}, "m": {"0"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Ret != 0 || len(a.Data) != 0 && string(a.Data) != "null" {
		t.Fatalf("after the refused admin calls: /1/msg/get ret %d data %s", a.Ret, a.Data)
	}
	// The loopback admin server does reach it.
	if ret, err := testenv.Push(admin, key, `{"ok":1}`, 60); err != nil || ret != 0 {
		t.Fatalf("push through the admin server: ret %d err %v", ret, err)
	}
	a, err = testenv.WebGet(pub, "/1/msg/get", map[string][]string{"k": {key}, "m": {"0"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Ret != 0 || !strings.Contains(string(a.Data), `"ok":1`) {
		t.Fatalf("message pushed through the admin server not stored: ret %d data %s", a.Ret, a.Data)
	}

	// One web stops: every call still works.
	if code := webs[0].Stop(); code != 0 {
		t.Errorf("web exited with %d", code)
	}
	for range 10 {
		serverGet("first web stopped")
	}
	// With no web left nginx says so rather than hanging.
	webs[1].Stop()
	resp, err = http.Get(pub + "/1/server/get?k=" + key + "&p=2")
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("with both webs down nginx answered %s, want 502", resp.Status)
	}
}
