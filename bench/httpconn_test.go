package bench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHTTPConnKeepAliveChunkedAndRedial(t *testing.T) {
	var mu sync.Mutex
	remotes := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		remotes[r.RemoteAddr]++
		mu.Unlock()
		switch r.URL.Path {
		case "/echo":
			w.Write(body)
		case "/chunked":
			w.Write([]byte(`{"ret":`))
			w.(http.Flusher).Flush() // forces chunked encoding
			w.Write([]byte(`0}`))
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		case "/missing":
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := newHTTPConn(strings.TrimPrefix(srv.URL, "http://"), 5*time.Second)
	defer c.Close()

	for i := 0; i < 3; i++ {
		st, b, err := c.Post("/echo?x=1", []byte(`{"a":1}`))
		if err != nil || st != 200 || string(b) != `{"a":1}` {
			t.Fatalf("echo %d: %d %q %v", i, st, b, err)
		}
	}
	if len(remotes) != 1 {
		t.Errorf("3 calls used %d connections, want 1 (keep-alive)", len(remotes))
	}
	st, b, err := c.Post("/chunked", nil)
	if err != nil || st != 200 || string(b) != `{"ret":0}` {
		t.Fatalf("chunked: %d %q %v", st, b, err)
	}
	st, b, err = c.Post("/missing", nil)
	if err != nil || st != 404 {
		t.Fatalf("missing: %d %q %v", st, b, err)
	}
	if _, _, err := decodeAnswer(st, b); err == nil {
		t.Error("a 404 should not decode as an answer")
	}
	if st, b, err := c.Post("/close", nil); err != nil || st != 200 || string(b) != "bye" {
		t.Fatalf("close: %d %q %v", st, b, err)
	}
	// The server closed the connection: the next call dials again.
	if st, _, err := c.Post("/echo", []byte("x")); err != nil || st != 200 {
		t.Fatalf("after close: %d %v", st, err)
	}
	// An idle connection closed by the server is redialled transparently.
	srv.CloseClientConnections()
	if st, _, err := c.Post("/echo", []byte("y")); err != nil || st != 200 {
		t.Fatalf("after the server dropped idle connections: %d %v", st, err)
	}
	// Nothing listening: a clear error, no hang.
	srv.Close()
	if _, _, err := c.Post("/echo", nil); err == nil {
		t.Error("server gone: want an error")
	}
}
