package bench

import (
	"bufio"
	"bytes"
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

// The push-batch load sends JSON lines of BatchSize entries, each to its
// key in turn with its own sequence number, and expects deliveries for
// every push web did not list as failed (or stored).
func TestPushBatchAgainstFakeWeb(t *testing.T) {
	var mu sync.Mutex
	var entries []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/1/admin/push/batch" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			var e map[string]any
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("line %q: %v", sc.Text(), err)
			}
			mu.Lock()
			entries = append(entries, e)
			mu.Unlock()
		}
		// Every call: entry 1 failed, entry 2 stored but not delivered.
		w.Write([]byte(`{"ret":0,"data":{"failed":[{"index":1,"key":"x","why":"disk full"}],"stored":[{"index":2,"key":"y","mid":5}]}}`))
	}))
	defer srv.Close()
	admin := strings.TrimPrefix(srv.URL, "http://")
	keys := []string{"k0", "k1", "k2", "k3", "k4"}
	res := Push(context.Background(), PushConfig{Admin: admin, Mode: "batch", BatchSize: 4, Clients: 2, Max: 3,
		Keys: keys, Expire: 60, Duration: time.Minute, Online: func(string) int { return 2 }}, 10)
	if res.Calls != 3 || res.Accepted != 3 || res.Pushes != 6 || res.FailedKeys != 6 {
		t.Fatalf("calls %d accepted %d pushes %d failed %d, want 3, 3, 6, 6", res.Calls, res.Accepted, res.Pushes, res.FailedKeys)
	}
	if len(entries) != 12 {
		t.Fatalf("%d entries sent, want 12", len(entries))
	}
	seqs := map[uint64]bool{}
	for _, e := range entries {
		msg, _ := json.Marshal(e["msg"])
		p, err := ParseDelivery(msg)
		if err != nil || e["expire"] != float64(60) {
			t.Fatalf("entry %v: %v", e, err)
		}
		if seqs[p.S] || p.S < 10 || p.S >= 22 {
			t.Fatalf("sequence %d repeated or out of 10..21", p.S)
		}
		seqs[p.S] = true
		// Entry j of call n is for key (n*4+j) mod 5, sequence 10+n*4+j.
		if want := keys[(p.S-10)%5]; e["key"] != want {
			t.Errorf("sequence %d went to %v, want %s", p.S, e["key"], want)
		}
	}
	if len(res.Expected) != 6 || res.ExpectedN != 12 {
		t.Errorf("expected %v (%d deliveries), want 6 pushes of 2", res.Expected, res.ExpectedN)
	}
	for seq := range res.Expected {
		if j := (seq - 10) % 4; j == 1 || j == 2 {
			t.Errorf("sequence %d was failed or stored, yet deliveries are expected", seq)
		}
	}
}
