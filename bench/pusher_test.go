package bench

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPushPrivateAndMprivateAgainstFakeWeb(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]string{} // path → bodies
	conns := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[r.URL.Path] = append(seen[r.URL.Path], string(body))
		conns[r.RemoteAddr] = true
		mu.Unlock()
		switch r.URL.Path {
		case "/1/admin/push/private":
			if r.URL.Query().Get("key") == "bad" {
				w.Write([]byte(`{"ret":65534}`))
				return
			}
			w.Write([]byte(`{"ret":0}`))
		case "/1/admin/push/mprivate":
			w.Write([]byte(`{"ret":0,"data":{"fk":["k2"]}}`))
		}
	}))
	defer srv.Close()
	admin := strings.TrimPrefix(srv.URL, "http://")
	online := func(k string) int { return map[string]int{"k0": 1, "k1": 2, "k2": 1}[k] }

	res := Push(context.Background(), PushConfig{Admin: admin, Mode: "private", Clients: 2, Max: 8,
		Keys: []string{"k0", "k1", "k2", "bad"}, Online: online, Duration: time.Minute}, 100)
	if res.Calls != 8 || res.Accepted != 6 || res.Refused != 2 {
		t.Fatalf("calls %d accepted %d refused %d, want 8/6/2", res.Calls, res.Accepted, res.Refused)
	}
	// Two rounds over k0 (1 conn), k1 (2), k2 (1).
	if res.ExpectedN != 8 || len(res.Expected) != 6 {
		t.Errorf("expected %d deliveries over %d pushes, want 8 over 6", res.ExpectedN, len(res.Expected))
	}
	if _, ok := res.Expected[100]; !ok {
		t.Errorf("sequence numbers should start at 100: %v", res.Expected)
	}
	for _, b := range seen["/1/admin/push/private"] {
		if _, err := ParseDelivery([]byte(b)); err != nil || !json.Valid([]byte(b)) {
			t.Errorf("body %q is not a JSON payload", b)
		}
	}
	if len(conns) > 2 {
		t.Errorf("%d client connections for 2 clients: keep-alive is not working", len(conns))
	}

	res = Push(context.Background(), PushConfig{Admin: admin, Mode: "mprivate", Clients: 1, Max: 1,
		Keys: []string{"k0", "k1", "k2", "k3"}, KeysPerCall: 4, Online: online, Duration: time.Minute}, 1)
	if res.Accepted != 1 || res.FailedKeys != 1 || res.ExpectedN != 3 {
		t.Errorf("mprivate: accepted %d failed keys %d expected %d, want 1/1/3 (k2 failed, k3 offline)", res.Accepted, res.FailedKeys, res.ExpectedN)
	}
	var body struct{ M, K string }
	if err := json.Unmarshal([]byte(seen["/1/admin/push/mprivate"][0]), &body); err != nil {
		t.Fatal(err)
	}
	if body.K != "k0,k1,k2,k3" {
		t.Errorf("k = %q", body.K)
	}
	if p, err := ParseDelivery([]byte(body.M)); err != nil || p.S != 1 {
		t.Errorf("m = %q: %v", body.M, err)
	}
}

func TestPushRateIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"ret":0}`))
	}))
	defer srv.Close()
	start := time.Now()
	res := Push(context.Background(), PushConfig{Admin: strings.TrimPrefix(srv.URL, "http://"), Mode: "private",
		Clients: 4, Rate: 50, Duration: 400 * time.Millisecond, Keys: []string{"k"}}, 1)
	// 50/s for 0.4 s allows 20 calls; a slow machine may make fewer.
	if res.Calls > 20 || res.Calls == 0 {
		t.Errorf("%d calls at 50/s for 0.4s, want 1..20", res.Calls)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("a 0.4 s run took %v", time.Since(start))
	}
}

func TestCallKeysWrapAround(t *testing.T) {
	cfg := PushConfig{Mode: "mprivate", Keys: []string{"a", "b", "c", "d", "e"}, KeysPerCall: 2}
	var got []string
	for n := uint64(0); n < 4; n++ {
		got = append(got, strings.Join(callKeys(cfg, n), ","))
	}
	if strings.Join(got, " ") != "a,b c,d e,a b,c" {
		t.Errorf("got %v", got)
	}
}
