package js

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"gopush/client"
	"gopush/conf"
	"gopush/internal/certs/certtest"
	"gopush/internal/testenv"
)

// tlsSite is the certificate every TLS server of a browser test presents
// (comet, web, nginx, the page's own server) and a browser that trusts
// exactly that certificate's key, nothing else.
type tlsSite struct {
	ca        *certtest.CA
	cert, key string // files
	pair      tls.Certificate
	browser   *webDriver
}

func newTLSSite(t *testing.T) *tlsSite {
	ca := certtest.NewCA(t, "browser test CA")
	leaf := ca.Issue(t, "gopush test", certtest.Options{Hosts: []string{"localhost", "127.0.0.1"}})
	s := &tlsSite{ca: ca}
	s.cert, s.key = leaf.Write(t, t.TempDir())
	var err error
	if s.pair, err = tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM); err != nil {
		t.Fatal(err)
	}
	s.browser = startBrowser(t, "--ignore-certificate-errors-spki-list="+leaf.SPKIHash())
	return s
}

// pageServer serves this directory (example.html, gopush.js) over https.
func (s *tlsSite) pageServer(t *testing.T) string {
	srv := httptest.NewUnstartedServer(http.FileServer(http.Dir(".")))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{s.pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// subscribeAndReceive opens the example page over https with web at
// webURL, waits until it is subscribed through server (what web answered
// for p=3), pushes one message through admin and checks the page shows it
// with the mid a Go subscriber (sub) saw.
func (s *tlsSite) subscribeAndReceive(t *testing.T, webURL, admin, key, server string, sub *client.Client) {
	t.Helper()
	page := s.pageServer(t) + "/example.html?" + url.Values{"web": {webURL}, "key": {key}}.Encode()
	s.browser.open(t, page)
	var st pageState
	var shown string
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			s.browser.eval(t, readPage, &st)
			s.browser.eval(t, `return document.getElementById('server').textContent;`, &shown)
			if cond() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("page never showed %s; it shows %+v (server %q)\nconsole:\n%s", what, st, shown, s.browser.console())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("subscribed", func() bool { return st.Status == "subscribed" })
	if shown != server {
		t.Fatalf("page subscribed through %q, want %q (web's p=3 answer)", shown, server)
	}
	testenv.WaitFor(t, 30*time.Second, "the Go subscriber to connect", func() bool { return sub.Comet() != "" })
	if ret, err := testenv.Push(admin, key, `{"text":"over tls"}`, 600); err != nil || ret != 0 {
		t.Fatalf("push: ret %d err %v", ret, err)
	}
	var mid string
	select {
	case m := <-sub.Messages():
		mid = strconv.FormatInt(m.Mid, 10)
	case <-time.After(30 * time.Second):
		t.Fatal("the Go subscriber got nothing within 30s")
	}
	wait("the message", func() bool { return len(st.Mids) >= 1 })
	if st.Mids[0] != mid || st.Texts[0] != `{"text":"over tls"}` {
		t.Fatalf("page shows %q %q, want mid %s and the message", st.Mids, st.Texts, mid)
	}
}

// An https page in Chromium (trusting only the test certificate's key)
// loads gopush.js, asks web over https for the wss address (p=3), opens
// wss straight to the comet's TLS listener and receives a push.
func TestBrowserTLSDirectToComet(t *testing.T) {
	s := newTLSSite(t)
	cl := testenv.NewCluster(t)
	cl.StartMessage()
	comet := cl.StartComet("node1", 1, testenv.CometTLS(t, s.cert, s.key))
	web := cl.StartWeb(testenv.WebTLS(t, s.cert, s.key))
	key := testenv.Unique(t)
	testenv.WaitFor(t, 30*time.Second, "web to know the comet", func() bool {
		srv, _, err := testenv.ServerOf("http://"+web.HTTP, key, "3")
		return err == nil && srv == comet.WSS
	})
	// The Go subscriber too goes over wss, verifying the test CA.
	sub, err := client.New(client.Config{Web: "https://" + web.HTTPS, Key: key, Proto: client.WebSocket,
		TLS: s.ca.ClientConfig(), MinBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	s.subscribeAndReceive(t, "https://"+web.HTTPS, web.Admin, key, comet.WSS, sub)
}

// The single TLS port: the shipped deploy/nginx/gopush-tls.conf terminates
// TLS for web's public API and proxies /c/node1/sub to the comet's plain
// WebSocket port; the comet advertises that wss URL, and the https page
// subscribes through it.
func TestBrowserTLSThroughNginx(t *testing.T) {
	s := newTLSSite(t)
	public := testenv.FreeAddr(t)
	wssURL := "wss://" + public + "/c/node1/sub"
	cl := testenv.NewCluster(t)
	cl.StartMessage()
	comet := cl.StartComet("node1", 1, func(cfg *conf.Comet) { cfg.WebSocket.TLS.Advertise = conf.AddrList{wssURL} })
	web := cl.StartWeb()
	shipped, err := os.ReadFile("../deploy/nginx/gopush-tls.conf")
	if err != nil {
		t.Fatal(err)
	}
	site := testenv.ReplaceAll(t, string(shipped),
		"listen 443 ssl;", "listen "+public+" ssl;",
		"/etc/ssl/gopush/fullchain.pem", s.cert,
		"/etc/ssl/gopush/privkey.pem", s.key,
		"127.0.0.1:8090", web.HTTP,
		"127.0.0.1:8092", web.HTTP,
		"127.0.0.1:6968", comet.WS)
	testenv.StartNginx(t, site, public)
	key := testenv.Unique(t)
	testenv.WaitFor(t, 30*time.Second, "web to hand out the wss URL", func() bool {
		srv, _, err := testenv.ServerOf("http://"+web.HTTP, key, "3")
		return err == nil && srv == wssURL
	})
	sub, err := client.New(client.Config{Web: "https://" + public, Key: key, Proto: client.WebSocket,
		TLS: s.ca.ClientConfig(), MinBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	s.subscribeAndReceive(t, "https://"+public, web.Admin, key, wssURL, sub)
}
