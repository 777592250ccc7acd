package web

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
)

const adminToken = "s3cret-Admin-Token-0123"

// adminPaths are every admin route and a few that are not routed: the
// token guards the whole admin port, so each answers 401 without it.
var adminPaths = []string{
	"/1/admin/push/private?key=a&expire=600",
	"/1/admin/push/mprivate?expire=600",
	"/1/admin/msg/del",
	"/admin/push?key=a&expire=600",
	"/admin/msg/clean",
	"/1/token/add?k=a&t=tok",
	"/1/admin/room/join?rid=r",
	"/1/admin/room/leave?rid=r",
	"/1/admin/room/keys?rid=r",
	"/1/admin/room/del?rid=r",
	"/1/admin/push/room?rid=r&expire=600",
	"/1/admin/push/all?expire=600",
	"/1/admin/online?k=a",
	"/1/admin/not-routed",
	"/",
}

// requestWith sends method u with body and the Authorization header auth
// ("" for none).
func requestWith(t *testing.T, method, u, auth, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b.String()}
}

// Without the bearer token, in every wrong form, every admin path (and
// /1/token/add on the public port) answers 401 with a JSON body, and
// nothing reaches a comet or a message node.
func TestAdminWithoutTokenIs401Everywhere(t *testing.T) {
	t.Parallel()
	tw := newTestWeb(t, map[string]int{"node1": 1}, []string{"node1"}, func(c *conf.Web) {
		c.Admin.Token = adminToken
		c.HTTP.TokenAdd = true
	})
	wrong := map[string]string{
		"none":              "",
		"wrong token":       "Bearer s3cret-Admin-Token-0124",
		"wrong case":        "Bearer " + strings.ToUpper(adminToken),
		"space inside":      "Bearer " + adminToken[:6] + " " + adminToken[6:],
		"tab for the space": "Bearer\t" + adminToken,
		"leading space":     "Bearer  " + adminToken,
		"basic scheme":      "Basic " + adminToken,
		"no scheme":         adminToken,
		"prefix only":       "Bearer " + adminToken[:10],
		"token plus suffix": "Bearer " + adminToken + "x",
	}
	urls := []string{}
	for _, p := range adminPaths {
		urls = append(urls, tw.admin.URL+p)
	}
	urls = append(urls, tw.public.URL+"/1/token/add?k=a&t=tok")
	for name, auth := range wrong {
		for _, u := range urls {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				a := requestWith(t, method, u, auth, `{"m":"{\"x\":1}","k":"a,b"}`)
				if a.status != http.StatusUnauthorized || a.ret(t) != api.CodeUnauthorized || a.ctype != "application/json" {
					t.Errorf("%s, %s %s: %d %q %q, want 401 JSON ret %d", name, method, u, a.status, a.ctype, a.body, api.CodeUnauthorized)
				}
			}
		}
	}
	// The token as a query parameter is not a credential.
	a := requestWith(t, http.MethodPost, tw.admin.URL+"/1/admin/push/private?key=a&expire=0&token="+adminToken, "", `{"x":1}`)
	if a.status != http.StatusUnauthorized {
		t.Errorf("token in the query: %d %s", a.status, a.body)
	}
	if n := len(tw.comets["node1"].Calls()) + len(tw.msgs.Calls()); n != 0 {
		t.Fatalf("%d RPC calls were made by refused requests", n)
	}
	if tw.w.AdminDenied() == 0 {
		t.Fatal("refusals not counted")
	}

	// With the token: served. The scheme is case-insensitive (RFC 7235).
	for _, auth := range []string{"Bearer " + adminToken, "bearer " + adminToken} {
		a := requestWith(t, http.MethodPost, tw.admin.URL+"/1/admin/push/private?key=a&expire=0", auth, `{"x":1}`)
		if a.status != http.StatusOK || a.ret(t) != api.CodeOK {
			t.Fatalf("%q: %d %s", auth, a.status, a.body)
		}
	}
	// /1/token/add changes state: POST only while the token is on.
	a = requestWith(t, http.MethodGet, tw.admin.URL+"/1/token/add?k=a&t=tok", "Bearer "+adminToken, "")
	if a.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET /1/token/add with the token: %d, want 405", a.status)
	}
	a = requestWith(t, http.MethodPost, tw.public.URL+"/1/token/add", "Bearer "+adminToken, "k=a&t=tok")
	if a.status != http.StatusOK || a.ret(t) != api.CodeOK {
		t.Fatalf("POST /1/token/add on the public port with the token: %d %s", a.status, a.body)
	}
}

// Without admin.token the admin API behaves as in 1.0.5.
func TestAdminWithoutConfiguredTokenIsOpen(t *testing.T) {
	t.Parallel()
	tw := newTestWeb(t, map[string]int{"node1": 1}, []string{"node1"}, nil)
	expectCode(t, post(t, tw.admin.URL+"/1/admin/push/private?key=a&expire=0", `{"x":1}`), api.CodeOK)
	expectCode(t, get(t, tw.admin.URL+"/1/token/add?k=a&t=tok"), api.CodeOK)
}

// The public port is capped below the open-file limit: connections over
// limit.conns are closed at once while the admin port answers at once;
// an address over limit.peraddr gets 429; idle keep-alive connections
// last http.idletimeout.
func TestPublicCapKeepsAdminAnswering(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	w := c.startWeb(func(cfg *conf.Web) {
		cfg.Limit.Conns = 40
		cfg.Limit.PerAddr = 30
		// The held connections never send a request: keep the server
		// from closing them (after http.servertimeout) on a slow machine.
		cfg.HTTP.ServerTimeout = conf.Duration(time.Minute)
	})
	var held []net.Conn
	defer func() {
		for _, nc := range held {
			nc.Close()
		}
	}()
	for range 30 {
		nc, err := net.Dial("tcp", w.HTTPAddrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, nc)
	}
	// From 127.0.0.1, over peraddr: 429 before any work.
	a := get(t, "http://"+w.HTTPAddrs()[0]+"/1/time/get")
	if a.status != http.StatusTooManyRequests || a.ret(t) != api.CodeTooMany {
		t.Fatalf("over limit.peraddr: %d %s, want 429", a.status, a.body)
	}
	// From other addresses up to the cap, then closed.
	for i := range 10 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}}
		nc, err := d.Dial("tcp", w.HTTPAddrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, nc)
	}
	waitFor(t, "40 public connections", func() bool { return w.PublicCounts().Open == 40 })
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 99)}}
	over, err := d.Dial("tcp", w.HTTPAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection over limit.conns got bytes")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a connection over limit.conns was not closed")
	}
	start := time.Now()
	expectCode(t, post(t, "http://"+w.AdminAddrs()[0]+"/1/admin/push/private?key=a&expire=x", `{"x":1}`), api.CodeParamErr)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("admin answered in %v at the public cap", d)
	}
	if got := w.PublicCounts(); got.RefusedCap < 1 || got.RefusedAddr < 1 {
		t.Fatalf("counts %+v", got)
	}
}

func TestIdleTimeoutOutlivesGoClients(t *testing.T) {
	if d := conf.DefaultWeb().HTTP.IdleTimeout.D(); d <= 90*time.Second {
		t.Fatalf("default http.idletimeout %v does not outlive Go's http.Client (90 s)", d)
	}
	c := newTestCluster(t)
	w := c.startWeb(func(cfg *conf.Web) { cfg.HTTP.IdleTimeout = conf.Duration(300 * time.Millisecond) })
	nc, err := net.Dial("tcp", w.AdminAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("GET /1/admin/room/keys?rid=x HTTP/1.1\r\nHost: x\r\n\r\n"))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	buf := make([]byte, 4096)
	for {
		if _, err := nc.Read(buf); err != nil {
			break
		}
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("an idle keep-alive connection was closed after %v, want about 300 ms", d)
	}
	_ = testenv.ZK
}
