package testenv

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// HTTPAnswer is an HTTP response read whole.
type HTTPAnswer struct {
	Status int
	Header http.Header
	Body   string
}

// httpClient gives up on a request after 30 s, so that a daemon that never
// answers fails the test instead of hanging it.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// HTTPDo sends one request, with Content-Type ctype when not empty, and
// reads the whole answer. A request that cannot be sent or read fails the
// test; any status is returned.
func HTTPDo(t testing.TB, method, url, ctype string, body io.Reader) HTTPAnswer {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return HTTPAnswer{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}
