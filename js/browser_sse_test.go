package js

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopush/client"
	"gopush/internal/testenv"
)

// sseCluster is one message node, one comet and one web, with a Go
// subscriber on key that learns the exact mids.
type sseCluster struct {
	cl    *testenv.Cluster
	comet *testenv.CometNode
	web   *testenv.WebNode
	key   string
	sub   *client.Client
}

func startSSECluster(t *testing.T) *sseCluster {
	t.Helper()
	cl := testenv.NewCluster(t)
	cl.StartMessage()
	s := &sseCluster{cl: cl, comet: cl.StartComet("node1", 1), web: cl.StartWeb(), key: testenv.Unique(t)}
	testenv.WaitFor(t, 30*time.Second, "web to know the comet", func() bool {
		srv, _, err := testenv.ServerOf("http://"+s.web.HTTP, s.key, "1")
		return err == nil && srv == s.comet.WS
	})
	sub, err := client.New(client.Config{Web: "http://" + s.web.HTTP, Key: s.key, Proto: client.TCP,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	s.sub = sub
	testenv.WaitFor(t, 30*time.Second, "the Go subscriber to connect", func() bool { return sub.Comet() != "" })
	return s
}

// push pushes msg (kept 600 s) and returns its mid, as the Go subscriber
// got it.
func (s *sseCluster) push(t *testing.T, msg string) string {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, "web to accept a push", func() bool {
		ret, err := testenv.Push(s.web.Admin, s.key, msg, 600)
		return err == nil && ret == 0
	})
	select {
	case m := <-s.sub.Messages():
		return strconv.FormatInt(m.Mid, 10)
	case <-time.After(30 * time.Second):
		t.Fatal("the Go subscriber got nothing within 30s")
		return ""
	}
}

// cometStat reads one number of the comet's /stat?type=connection.
func (s *sseCluster) cometStat(t *testing.T, field string) int {
	t.Helper()
	a := testenv.HTTPDo(t, "GET", "http://"+s.comet.Stat+"/stat?type=connection", "", nil)
	var st map[string]any
	if err := json.Unmarshal([]byte(a.Body), &st); err != nil {
		t.Fatalf("stat: %v: %s", err, a.Body)
	}
	n, ok := st[field].(float64)
	if !ok {
		t.Fatalf("stat has no number %s: %s", field, a.Body)
	}
	return int(n)
}

// ssePage opens the example page and waits on what it shows.
type ssePage struct {
	b  *webDriver
	st pageState
}

func openPage(t *testing.T, u string) *ssePage {
	p := &ssePage{b: startBrowser(t)}
	p.b.open(t, u)
	return p
}

func (p *ssePage) wait(t *testing.T, what string, cond func(st pageState) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p.b.eval(t, readPage, &p.st)
		if cond(p.st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("page never showed %s; it shows %+v\nconsole:\n%s", what, p.st, p.b.console())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *ssePage) transport(t *testing.T) string {
	var s string
	p.b.eval(t, `return document.getElementById('transport').textContent;`, &s)
	return s
}

// A page whose WebSocket to the comet cannot get through (the only way to
// the comet is a proxy that refuses WebSocket and passes /sse) falls back
// to SSE after two failed attempts, receives pushes with exact mids, and a
// message pushed while its stream was cut, each message once.
func TestBrowserFallsBackToSSE(t *testing.T) {
	s := startSSECluster(t)
	var refusing atomic.Bool
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: s.comet.WS})
	rp.FlushInterval = -1
	var wsTried atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			wsTried.Add(1)
			http.Error(w, "no WebSocket here", http.StatusForbidden)
			return
		}
		if r.URL.Path != "/sse" || refusing.Load() {
			http.Error(w, "blocked", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	static := httptest.NewServer(http.FileServer(http.Dir(".")))
	t.Cleanup(static.Close)

	p := openPage(t, static.URL+"/example.html?"+url.Values{
		"web": {"http://" + s.web.HTTP}, "key": {s.key}, "cometURL": {proxy.URL},
	}.Encode())
	p.wait(t, "subscribed", func(st pageState) bool { return st.Status == "subscribed" })
	if tr := p.transport(t); tr != "sse" || wsTried.Load() < 2 {
		t.Fatalf("transport %q after %d WebSocket attempts, want sse after 2", tr, wsTried.Load())
	}
	mid1 := s.push(t, `{"text":"over sse 1"}`)
	p.wait(t, "the first message", func(st pageState) bool { return len(st.Mids) >= 1 })
	if p.st.Mids[0] != mid1 || p.st.Texts[0] != `{"text":"over sse 1"}` {
		t.Fatalf("page shows %q %q, want mid %s (exact)", p.st.Mids, p.st.Texts, mid1)
	}

	// Cut the stream and keep the way closed while a message is pushed.
	refusing.Store(true)
	proxy.CloseClientConnections()
	p.wait(t, "that it lost the stream", func(st pageState) bool { return st.Status != "subscribed" })
	mid2 := s.push(t, `{"text":"while away"}`)
	time.Sleep(300 * time.Millisecond)
	refusing.Store(false)
	p.wait(t, "the message pushed while away", func(st pageState) bool { return len(st.Mids) >= 2 })
	p.wait(t, "subscribed again", func(st pageState) bool { return st.Status == "subscribed" })
	mid3 := s.push(t, `{"text":"over sse 3"}`)
	p.wait(t, "the third message", func(st pageState) bool { return len(st.Mids) >= 3 })
	time.Sleep(500 * time.Millisecond)
	p.b.eval(t, readPage, &p.st)
	if strings.Join(p.st.Mids, " ") != strings.Join([]string{mid1, mid2, mid3}, " ") {
		t.Fatalf("page shows %q, want exactly [%s %s %s]", p.st.Mids, mid1, mid2, mid3)
	}
	if tr := p.transport(t); tr != "sse" {
		t.Errorf("transport %q at the end", tr)
	}
	if n := s.cometStat(t, "ws_accepted"); n != 0 {
		t.Errorf("comet accepted %d WebSocket connections, want none", n)
	}
	if n := s.cometStat(t, "sse_accepted"); n < 2 {
		t.Errorf("comet accepted %d SSE connections, want 2 or more", n)
	}
}

// The same through the shipped nginx configuration (deploy/nginx): the page
// asks web through nginx, its WebSocket to /comet/<addr>/sub gets nginx's
// 404, and the SSE stream comes through nginx unbuffered, across a restart
// of the comet.
func TestBrowserSSEThroughNginx(t *testing.T) {
	s := startSSECluster(t)
	shipped, err := os.ReadFile("../deploy/nginx/gopush.conf")
	if err != nil {
		t.Fatal(err)
	}
	public, admin := testenv.FreeAddr(t), testenv.FreeAddr(t)
	conf := string(shipped)
	for _, r := range [][2]string{
		{"listen 8080;", "listen " + public + ";"},
		{"listen 127.0.0.1:8081;", "listen " + admin + ";"},
		{"127.0.0.1:8090", s.web.HTTP},
		{"127.0.0.1:8092", s.web.HTTP},
		{"127.0.0.1:8091", s.web.Admin},
		{"127.0.0.1:8093", s.web.Admin},
		{"127.0.0.1:6968", s.comet.WS},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("deploy/nginx/gopush.conf no longer contains %q; update this test", r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	testenv.StartNginx(t, conf, public, admin)
	static := httptest.NewServer(http.FileServer(http.Dir(".")))
	t.Cleanup(static.Close)

	p := openPage(t, static.URL+"/example.html?"+url.Values{
		"web": {"http://" + public}, "key": {s.key}, "cometURL": {"http://" + public + "/comet/{server}"},
	}.Encode())
	p.wait(t, "subscribed", func(st pageState) bool { return st.Status == "subscribed" })
	if tr := p.transport(t); tr != "sse" {
		t.Fatalf("transport %q, want sse", tr)
	}
	mid1 := s.push(t, `{"text":"through nginx"}`)
	p.wait(t, "the first message", func(st pageState) bool { return len(st.Mids) >= 1 })

	// The comet restarts; a message pushed meanwhile arrives once.
	if code := s.comet.Stop(); code != 0 {
		t.Errorf("comet exited with %d", code)
	}
	p.wait(t, "that it lost the comet", func(st pageState) bool { return st.Status != "subscribed" })
	s.cl.RestartComet(s.comet)
	mid2 := s.push(t, `{"text":"after the restart"}`)
	p.wait(t, "the second message", func(st pageState) bool { return len(st.Mids) >= 2 })
	p.wait(t, "subscribed again", func(st pageState) bool { return st.Status == "subscribed" })
	mid3 := s.push(t, `{"text":"online again"}`)
	p.wait(t, "the third message", func(st pageState) bool { return len(st.Mids) >= 3 })
	time.Sleep(500 * time.Millisecond)
	p.b.eval(t, readPage, &p.st)
	if strings.Join(p.st.Mids, " ") != strings.Join([]string{mid1, mid2, mid3}, " ") {
		t.Fatalf("page shows %q, want exactly [%s %s %s]", p.st.Mids, mid1, mid2, mid3)
	}
	if n := s.cometStat(t, "sse"); n != 1 {
		t.Errorf("comet holds %d SSE connections, want the page's one", n)
	}
}
