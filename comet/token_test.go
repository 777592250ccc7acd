package comet

import (
	"testing"
	"time"
)

func TestTokensExpireRefreshAndAreBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	var ts tokens
	ts.add("a", 10*time.Second, now, 2)
	if !ts.use("a", now.Add(9*time.Second)) {
		t.Fatal("live token refused")
	}
	// The use pushed the expiry to 19 s.
	if !ts.use("a", now.Add(18*time.Second)) {
		t.Fatal("token not refreshed by use")
	}
	if ts.use("a", now.Add(40*time.Second)) {
		t.Fatal("expired token accepted")
	}
	if ts.use("nope", now) {
		t.Fatal("unknown token accepted")
	}

	ts = nil
	ts.add("a", 10*time.Second, now, 2)
	ts.add("b", 20*time.Second, now, 2)
	ts.add("c", 30*time.Second, now, 2) // evicts a, the closest to expiring
	if len(ts) != 2 || ts.use("a", now) || !ts.use("b", now) || !ts.use("c", now) {
		t.Fatalf("bound not kept or wrong token evicted: %+v", ts)
	}
	ts.sweep(now.Add(15 * time.Second)) // b (refreshed to 20 s) and c (30 s) stay
	if len(ts) != 2 {
		t.Fatalf("sweep dropped live tokens: %+v", ts)
	}
	ts.sweep(now.Add(time.Hour))
	if ts != nil {
		t.Fatalf("sweep kept expired tokens: %+v", ts)
	}
}
