package client

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopush/internal/certs/certtest"
	"gopush/internal/testenv"
)

// Against real daemons: the client subscribes over TCP-TLS and over wss,
// verifying comet's (and web's https) certificate with the test CA, and
// receives a push; with another CA it refuses comet's certificate and
// never subscribes.
func TestClusterTLS(t *testing.T) {
	t.Parallel()
	ca := certtest.NewCA(t, "client test CA")
	dir := t.TempDir()
	cert, key := ca.Issue(t, "comet", certtest.Options{}).Write(t, dir)
	c := testenv.NewCluster(t)
	c.StartMessage()
	c.StartComet("node1", 1, testenv.CometTLS(t, cert, key))
	w := c.StartWeb(testenv.WebTLS(t, cert, key))
	waitServed(t, w.HTTP, "tls-tcp", "")

	for _, proto := range []string{TCP, WebSocket} {
		t.Run(proto, func(t *testing.T) {
			key := "tls-" + proto
			connected := make(chan string, 4)
			cl, err := New(Config{
				Web: "https://" + w.HTTPS, Key: key, Proto: proto,
				TLS:       &tls.Config{RootCAs: ca.Pool()},
				OnConnect: func(comet string) { connected <- comet },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			select {
			case addr := <-connected:
				if strings.Contains(addr, "://") {
					t.Fatalf("comet %q", addr)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("not subscribed within 20 s")
			}
			if ret, err := testenv.Push(w.Admin, key, `{"over":"tls"}`, 0); err != nil || ret != 0 {
				t.Fatalf("push: %d %v", ret, err)
			}
			select {
			case m := <-cl.Messages():
				if string(m.Msg) != `{"over":"tls"}` {
					t.Fatalf("got %s", m.Msg)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no message within 10 s")
			}
		})
	}

	// A client that trusts only another CA: every attempt fails on comet's
	// certificate (web is asked over plain http here), none subscribes.
	for _, proto := range []string{TCP, WebSocket} {
		errs := make(chan error, 16)
		cl, err := New(Config{
			Web: "http://" + w.HTTP, Key: "stranger", Proto: proto,
			TLS:        &tls.Config{RootCAs: certtest.NewCA(t, "another CA").Pool()},
			OnConnect:  func(string) { errs <- fmt.Errorf("subscribed with a certificate of another CA") },
			OnError:    func(err error) { errs <- err },
			MinBackoff: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("%s: first error %v, want a certificate error", proto, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s: no error within 20 s", proto)
		}
		cl.Close()
	}
}
