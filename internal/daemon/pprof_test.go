package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The profiles are served on every address, nothing else is, and Close
// stops listening.
func TestPprofServesProfilesOnly(t *testing.T) {
	t.Parallel()
	p, err := ServePprof([]string{"127.0.0.1:0", "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addrs := p.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("addrs %v, want 2", addrs)
	}
	for _, a := range addrs {
		if code, body := get(t, "http://"+a+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
			t.Errorf("%s /debug/pprof/: %d %.80q", a, code, body)
		}
		if code, _ := get(t, "http://"+a+"/stat"); code != 404 {
			t.Errorf("%s /stat: %d, want 404", a, code)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addrs[0]); err == nil {
		c.Close()
		t.Errorf("%s still accepts after Close", addrs[0])
	}
}

// An address that cannot be listened on fails with the setting named and
// leaves no other address open; no address serves nothing.
func TestPprofBadBind(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	_, err = ServePprof([]string{freeAddr, taken.Addr().String()}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "pprof.bind "+taken.Addr().String()) {
		t.Fatalf("error %v, want one naming pprof.bind and the address", err)
	}
	ln, err := net.Listen("tcp", freeAddr)
	if err != nil {
		t.Fatalf("%s still held after the failure: %v", freeAddr, err)
	}
	ln.Close()

	p, err := ServePprof(nil, slog.New(slog.DiscardHandler))
	if err != nil || len(p.Addrs()) != 0 {
		t.Fatalf("no address: %v %v", p.Addrs(), err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var none *Pprof
	if err := none.Close(context.Background()); err != nil || none.Addrs() != nil {
		t.Fatal("nil *Pprof must be closable")
	}
}
