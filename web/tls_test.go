package web

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/certs/certtest"
)

// p=3 answers the wss address (host:port or a full URL, as published) and
// p=4 the TLS-TCP one; p=1 and p=2 answer exactly what they did; a node
// without TLS addresses answers 1001 to p=3 and p=4.
func TestServerGetTLSAddresses(t *testing.T) {
	weights := map[string]int{"tls": 1}
	tw := newTestWeb(t, weights, []string{"tls"}, nil)
	n := tw.w.cluster.load().nodes["tls"]
	n.data.WSS = []string{"wss://push.example.com/c/tls/sub", "comet1.example.com:6443"}
	n.data.TCPTLS = []string{"comet1.example.com:6444"}
	for _, c := range []struct{ path, want string }{
		{"/1/server/get?k=a&p=1", `{"ret":0,"data":{"server":"ws-tls-1"}}`},
		{"/1/server/get?k=a&p=2", `{"ret":0,"data":{"server":"tcp-tls-1"}}`},
		{"/1/server/get?k=a&p=3", `{"ret":0,"data":{"server":"wss://push.example.com/c/tls/sub"}}`},
		{"/1/server/get?k=a&p=4", `{"ret":0,"data":{"server":"comet1.example.com:6444"}}`},
		{"/2/server/get?k=a&p=3", `{"ret":0,"data":{"server":["wss://push.example.com/c/tls/sub","comet1.example.com:6443"]}}`},
		{"/server/get?key=a&proto=4", `{"ret":0,"msg":"ok","data":{"server":"comet1.example.com:6444"}}`},
	} {
		if a := get(t, tw.public.URL+c.path); a.body != c.want {
			t.Errorf("%s: %s, want %s", c.path, a.body, c.want)
		}
	}

	plain := newTestWeb(t, map[string]int{"plain": 1}, []string{"plain"}, nil)
	expectCode(t, get(t, plain.public.URL+"/1/server/get?k=a&p=3"), api.CodeNoNode)
	expectCode(t, get(t, plain.public.URL+"/1/server/get?k=a&p=4"), api.CodeNoNode)
}

// With http.tls.bind and admin.tls.bind web serves both APIs over HTTPS
// (and only those ports need the pair); SIGHUP's Reload swaps the
// certificate for new connections, and a bad pair is refused.
func TestWebServesHTTPS(t *testing.T) {
	c := newTestCluster(t)
	c.addComet("node1", 1)
	c.addMessage()
	ca := certtest.NewCA(t, "web test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, "web-1", certtest.Options{}).Write(t, dir)
	w := c.startWeb(func(cfg *conf.Web) {
		cfg.HTTP.TLS.Bind = conf.AddrList{"127.0.0.1:0"}
		cfg.Admin.TLS.Bind = conf.AddrList{"127.0.0.1:0"}
		cfg.TLS = conf.TLSFiles{Cert: certFile, Key: keyFile}
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientConfig()}}
	defer client.CloseIdleConnections()
	getTLS := func(u string) (string, string) {
		t.Helper()
		client.CloseIdleConnections() // a new handshake each time
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	body, cn := getTLS("https://" + w.HTTPSAddrs()[0] + "/1/server/get?k=a&p=2")
	if !strings.Contains(body, `"ret":0`) || cn != "web-1" {
		t.Fatalf("https server/get: %s (certificate %s)", body, cn)
	}
	resp, err := client.Post("https://"+w.AdminTLSAddrs()[0]+"/1/admin/push/private?key=a&expire=0", "text/plain", strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	var ans struct{ Ret int }
	json.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if ans.Ret != 0 {
		t.Fatalf("https admin push: ret %d", ans.Ret)
	}
	// The plain ports still speak plain HTTP.
	if a := get(t, "http://"+w.HTTPAddrs()[0]+"/1/time/get"); a.ret(t) != 0 {
		t.Fatalf("plain public port: %s", a.body)
	}

	ca.Issue(t, "web-2", certtest.Options{}).Write(t, dir)
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, cn := getTLS("https://" + w.HTTPSAddrs()[0] + "/1/time/get"); cn != "web-2" {
		t.Fatalf("after reload: certificate %s, want web-2", cn)
	}
	other := certtest.NewCA(t, "other").Issue(t, "x", certtest.Options{})
	if err := writeKey(keyFile, other.KeyPEM); err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(); err == nil {
		t.Fatal("reload with a mismatched key succeeded")
	}
	if _, cn := getTLS("https://" + w.HTTPSAddrs()[0] + "/1/time/get"); cn != "web-2" {
		t.Fatalf("after a refused reload: certificate %s, want web-2", cn)
	}
	// A client trusting another CA is refused.
	strict := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certtest.NewCA(t, "stranger").Pool()}}}
	if _, err := strict.Get(fmt.Sprintf("https://%s/1/time/get", w.HTTPSAddrs()[0])); err == nil {
		t.Fatal("a client trusting another CA accepted web's certificate")
	}
}

func writeKey(name string, b []byte) error { return os.WriteFile(name, b, 0o600) }
