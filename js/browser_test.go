package js

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopush/client"
	"gopush/internal/testenv"
)

// The node unit tests of gopush.js (mid comparison and parsing).
func TestGopushJSUnit(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed; it runs js/test/*.test.js")
	}
	out, err := exec.Command(node, "--test", "test/").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("node --test did not report its results:\n%s", out)
	}
}

// pageState is what the example page shows.
type pageState struct {
	Status   string
	Connects string
	Error    string
	Mids     []string
	Gids     []string
	Texts    []string
}

const readPage = `
var items = document.querySelectorAll('#messages li');
var mids = [], gids = [], texts = [];
for (var i = 0; i < items.length; i++) {
  mids.push(items[i].getAttribute('data-mid'));
  gids.push(items[i].getAttribute('data-gid'));
  texts.push(items[i].querySelector('.msg').textContent);
}
return {Status: document.getElementById('status').textContent,
        Connects: document.getElementById('connects').textContent,
        Error: document.getElementById('error').textContent,
        Mids: mids, Gids: gids, Texts: texts};`

// The example page, served from another origin than web and comet, opened
// in headless Chromium: it subscribes, shows a pushed message with its
// exact mid, survives a restart of its comet, and shows a message pushed
// across the restart, each message once.
func TestBrowserExamplePage(t *testing.T) {
	cl := testenv.NewCluster(t)
	cl.StartMessage()
	comet := cl.StartComet("node1", 1)
	web := cl.StartWeb()
	key := testenv.Unique(t)
	testenv.WaitFor(t, 30*time.Second, "web to know the comet", func() bool {
		s, _, err := testenv.ServerOf("http://"+web.HTTP, key, "1")
		return err == nil && s == comet.WS
	})

	// The page's own origin: a static server on another port.
	static := httptest.NewServer(http.FileServer(http.Dir(".")))
	t.Cleanup(static.Close)
	_, webPort, _ := strings.Cut(web.HTTP, ":")

	// A Go subscriber on the same key learns the exact mids.
	sub, err := client.New(client.Config{Web: "http://" + web.HTTP, Key: key, Proto: client.TCP,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	nextMid := func() int64 {
		t.Helper()
		select {
		case m := <-sub.Messages():
			return m.Mid
		case <-time.After(30 * time.Second):
			t.Fatal("the Go subscriber got nothing within 30s")
			return 0
		}
	}

	b := startBrowser(t)
	page := static.URL + "/example.html?" + url.Values{
		"web": {"http://localhost:" + webPort}, // another host name, too
		"key": {key},
	}.Encode()
	b.open(t, page)
	var st pageState
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			b.eval(t, readPage, &st)
			if cond() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("page never showed %s; it shows %+v\nconsole:\n%s", what, st, b.console())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("subscribed", func() bool { return st.Status == "subscribed" })
	testenv.WaitFor(t, 30*time.Second, "the Go subscriber to connect", func() bool { return sub.Comet() != "" })

	push := func(msg string) {
		t.Helper()
		testenv.WaitFor(t, 60*time.Second, "web to accept a push", func() bool {
			ret, err := testenv.Push(web.Admin, key, msg, 600)
			return err == nil && ret == 0
		})
	}
	push(`{"text":"hello browser 1"}`)
	mid1 := strconv.FormatInt(nextMid(), 10)
	wait("the first message", func() bool { return len(st.Mids) >= 1 })
	if st.Mids[0] != mid1 || st.Texts[0] != `{"text":"hello browser 1"}` {
		t.Fatalf("page shows %q %q, want mid %s (exact) and the message", st.Mids, st.Texts, mid1)
	}

	// Restart the comet; push while the page is away.
	if code := comet.Stop(); code != 0 {
		t.Errorf("comet exited with %d", code)
	}
	wait("that it lost the comet", func() bool { return st.Status != "subscribed" })
	cl.RestartComet(comet)
	push(`{"text":"hello browser 2"}`)
	mid2 := strconv.FormatInt(nextMid(), 10)
	wait("the second message", func() bool { return len(st.Mids) >= 2 })
	wait("subscribed again", func() bool { return st.Status == "subscribed" })
	if st.Mids[1] != mid2 || st.Texts[1] != `{"text":"hello browser 2"}` {
		t.Fatalf("page shows %q %q, want mid %s (exact) and the second message", st.Mids, st.Texts, mid2)
	}
	if n, _ := strconv.Atoi(st.Connects); n < 2 {
		t.Errorf("page subscribed %s times, want at least 2", st.Connects)
	}
	// And once more online, after the reconnect.
	push(`{"text":"hello browser 3"}`)
	mid3 := strconv.FormatInt(nextMid(), 10)
	wait("the third message", func() bool { return len(st.Mids) >= 3 })
	time.Sleep(500 * time.Millisecond)
	b.eval(t, readPage, &st)
	if len(st.Mids) != 3 || st.Mids[2] != mid3 {
		t.Fatalf("page shows %q, want exactly [%s %s %s]", st.Mids, mid1, mid2, mid3)
	}

	// A broadcast to everyone (gid 1) shows too.
	resp, err := http.Post("http://"+web.Admin+"/1/admin/push/all?expire=0", "application/json",
		strings.NewReader(`{"text":"to everyone"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mid4 := strconv.FormatInt(nextMid(), 10)
	wait("the broadcast", func() bool { return len(st.Mids) >= 4 })
	if st.Mids[3] != mid4 || st.Gids[3] != "1" || st.Texts[3] != `{"text":"to everyone"}` {
		t.Fatalf("page shows %q %q %q, want a 4th message %s with gid 1", st.Mids, st.Gids, st.Texts, mid4)
	}
}

// With lookup: 'fetch' the page calls web with fetch(), which needs web on
// the page's own origin: here a reverse proxy in front of web serves the
// page too, as nginx would. A message stored before the page opens comes
// from the offline fetch, the next one online, both with exact mids.
func TestBrowserFetchSameOrigin(t *testing.T) {
	cl := testenv.NewCluster(t)
	cl.StartMessage()
	comet := cl.StartComet("node1", 1)
	web := cl.StartWeb()
	key := testenv.Unique(t)
	testenv.WaitFor(t, 30*time.Second, "web to know the comet", func() bool {
		s, _, err := testenv.ServerOf("http://"+web.HTTP, key, "1")
		return err == nil && s == comet.WS
	})
	webURL, _ := url.Parse("http://" + web.HTTP)
	proxy := httputil.NewSingleHostReverseProxy(webURL)
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(".")))
	mux.Handle("/1/", proxy)
	mux.Handle("/msg/get", proxy)
	site := httptest.NewServer(mux)
	t.Cleanup(site.Close)

	sub, err := client.New(client.Config{Web: "http://" + web.HTTP, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	nextMid := func() string {
		t.Helper()
		select {
		case m := <-sub.Messages():
			return strconv.FormatInt(m.Mid, 10)
		case <-time.After(30 * time.Second):
			t.Fatal("the Go subscriber got nothing within 30s")
			return ""
		}
	}
	testenv.WaitFor(t, 30*time.Second, "the Go subscriber to connect", func() bool { return sub.Comet() != "" })
	if ret, err := testenv.Push(web.Admin, key, `"stored"`, 600); err != nil || ret != 0 {
		t.Fatalf("push: ret %d err %v", ret, err)
	}
	mid1 := nextMid()

	b := startBrowser(t)
	b.open(t, site.URL+"/example.html?"+url.Values{"web": {site.URL}, "key": {key}, "lookup": {"fetch"}}.Encode())
	var st pageState
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			b.eval(t, readPage, &st)
			if cond() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("page never showed %s; it shows %+v\nconsole:\n%s", what, st, b.console())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("the stored message", func() bool { return len(st.Mids) >= 1 })
	if st.Mids[0] != mid1 || st.Texts[0] != `"stored"` {
		t.Fatalf("page shows %q %q, want mid %s and \"stored\"", st.Mids, st.Texts, mid1)
	}
	if ret, err := testenv.Push(web.Admin, key, `"online"`, 0); err != nil || ret != 0 {
		t.Fatalf("push: ret %d err %v", ret, err)
	}
	mid2 := nextMid()
	wait("the online message", func() bool { return len(st.Mids) >= 2 })
	if st.Mids[1] != mid2 || st.Texts[1] != `"online"` || st.Status != "subscribed" {
		t.Fatalf("page shows %+v, want mid %s and \"online\"", st, mid2)
	}
}
