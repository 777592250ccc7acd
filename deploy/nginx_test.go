package deploy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"gopush/internal/testenv"
)

// startNginx runs the real nginx with the shipped nginx/gopush.conf, its
// addresses replaced by the given ones, inside a minimal main config of its
// own (as Debian's nginx.conf includes conf.d/*.conf). It returns the public
// and admin addresses.
func startNginx(t *testing.T, webHTTP, webAdmin, webMetrics [2]string) (public, admin string) {
	t.Helper()
	shipped, err := os.ReadFile("nginx/gopush.conf")
	if err != nil {
		t.Fatal(err)
	}
	public = testenv.FreeAddr(t)
	admin = testenv.FreeAddr(t)
	conf := string(shipped)
	for from, to := range map[string]string{
		"listen 8080;":           "listen " + public + ";",
		"listen 127.0.0.1:8081;": "listen " + admin + ";",
		"127.0.0.1:8090":         webHTTP[0],
		"127.0.0.1:8092":         webHTTP[1],
		"127.0.0.1:8091":         webAdmin[0],
		"127.0.0.1:8093":         webAdmin[1],
		"127.0.0.1:8191":         webMetrics[0],
		"127.0.0.1:8193":         webMetrics[1],
	} {
		if !strings.Contains(conf, from) {
			t.Fatalf("nginx/gopush.conf no longer contains %q; update this test", from)
		}
		conf = strings.ReplaceAll(conf, from, to)
	}
	testenv.StartNginx(t, conf, public, admin)
	return public, admin
}

// Upstreams that answer everything and record what reached them: the
// public server passes exactly the public API, and admin paths reach only
// the admin upstream through the loopback server.
func TestNginxRouting(t *testing.T) {
	var mu sync.Mutex
	reached := map[string][]string{} // upstream -> paths
	upstream := func(name string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			reached[name] = append(reached[name], r.Method+" "+r.URL.Path)
			mu.Unlock()
			io.WriteString(w, `{"ret":0,"data":{"from":"`+name+`"}}`)
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	public, admin := startNginx(t,
		[2]string{upstream("http1"), upstream("http2")},
		[2]string{upstream("admin1"), upstream("admin2")},
		[2]string{upstream("health1"), upstream("health2")})
	take := func() map[string][]string {
		mu.Lock()
		defer mu.Unlock()
		r := reached
		reached = map[string][]string{}
		return r
	}
	do := func(method, base, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+base+path, strings.NewReader(`{"a":1}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		return resp.StatusCode
	}

	publicPaths := []string{"/1/server/get", "/2/server/get", "/1/msg/get", "/1/time/get", "/server/get", "/msg/get", "/time/get"}
	for _, p := range publicPaths {
		for range 2 {
			if code := do("GET", public, p+"?k=x&p=1"); code != 200 {
				t.Errorf("GET %s on the public server: %d", p, code)
			}
		}
	}
	r := take()
	if len(r["http1"]) == 0 || len(r["http2"]) == 0 {
		t.Errorf("public calls not balanced over both webs: %v", r)
	}
	if len(r["admin1"])+len(r["admin2"]) > 0 {
		t.Errorf("public calls reached an admin upstream: %v", r)
	}

	adminPaths := []string{"/1/admin/push/private", "/1/admin/push/mprivate", "/1/admin/msg/del",
		"/admin/push", "/admin/msg/clean", "/1/token/add"}
	refused := append([]string{"/", "/stat", "/debug/pprof/", "/1/server/get/x", "/1/admin/../admin/push",
		"/%31/admin/push/private", "//1/admin/push/private", "/1/server/get/../../1/admin/push/private"}, adminPaths...)
	for _, p := range refused {
		for _, m := range []string{"GET", "POST"} {
			if code := do(m, public, p); code != 404 {
				t.Errorf("%s %s on the public server: %d, want 404", m, p, code)
			}
		}
	}
	if r := take(); len(r) > 0 {
		t.Errorf("refused paths reached upstreams: %v", r)
	}

	for _, p := range adminPaths {
		if code := do("POST", admin, p); code != 200 {
			t.Errorf("POST %s on the admin server: %d", p, code)
		}
	}
	for _, p := range publicPaths {
		if code := do("GET", admin, p); code != 404 {
			t.Errorf("GET %s on the admin server: %d, want 404", p, code)
		}
	}
	r = take()
	if len(r["http1"])+len(r["http2"]) > 0 || len(r["admin1"])+len(r["admin2"]) != len(adminPaths) {
		t.Errorf("admin server routing: %v", r)
	}

	// /readyz on the public server asks a web's metrics listener, and
	// nothing else; other methods are refused.
	if code := do("GET", public, "/readyz"); code != 200 {
		t.Errorf("GET /readyz on the public server: %d", code)
	}
	if code := do("POST", public, "/readyz"); code != 403 {
		t.Errorf("POST /readyz on the public server: %d, want 403", code)
	}
	r = take()
	if len(r["health1"])+len(r["health2"]) != 1 || len(r) != 1 {
		t.Errorf("/readyz routing: %v", r)
	}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
