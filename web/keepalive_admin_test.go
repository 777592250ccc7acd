package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"testing"
)

// TestWebKeepsAdminConnectionsAlive is docs/protocol.md §9.7 on the admin port, where
// backends push: successive pushes, and answers with an error code, share
// one TCP connection.
func TestWebKeepsAdminConnectionsAlive(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	w := c.startWeb(nil)
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	var conns []string
	for i, path := range []string{
		"/1/admin/push/private?key=a&expire=0", // 1001: no comet yet
		"/1/admin/push/private?key=a&expire=x", // 65534
		"/1/admin/push/mprivate?expire=0",      // 65534: body has no k
		"/1/admin/push/private?key=b&expire=0",
	} {
		a, local := doTraced(t, hc, http.MethodPost, "http://"+w.AdminAddrs()[0]+path, strings.NewReader(`{"a":1}`))
		if a.status != http.StatusOK || a.connection == "close" {
			t.Fatalf("request %d (%s): %d, Connection %q, %s", i, path, a.status, a.connection, a.body)
		}
		conns = append(conns, local)
	}
	if len(slices.Compact(slices.Clone(conns))) != 1 {
		t.Fatalf("4 admin requests used connections %v, want one", conns)
	}
}

// tracedAnswer is an answer and its Connection header.
type tracedAnswer struct {
	status     int
	connection string
	body       string
}

// doTraced sends one request through hc and returns the answer and the
// local address of the connection it went over.
func doTraced(t *testing.T, hc *http.Client, method, u string, body io.Reader) (tracedAnswer, string) {
	t.Helper()
	var local string
	trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { local = ci.Conn.LocalAddr().String() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, u, err)
	}
	return tracedAnswer{status: resp.StatusCode, connection: resp.Header.Get("Connection"), body: string(b)}, local
}
