package floor

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopush/bench"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// subscribe connects n subscribers, two per key, to addr.
func subscribe(t *testing.T, addr string, n int) (*bench.Pool, *bench.Tracker, []string) {
	t.Helper()
	keys := make([]string, n/2)
	targets := make([]bench.Target, n)
	for i := range targets {
		if i < len(keys) {
			keys[i] = "floor-" + strconv.Itoa(i)
		}
		targets[i] = bench.Target{Key: "floor-" + strconv.Itoa(i%len(keys)), Addr: addr}
	}
	tr := bench.NewTracker()
	p := bench.NewPool(bench.SubConfig{Proto: "tcp", Version: "1.0", Parallel: 8}, tr)
	t.Cleanup(p.Close)
	p.Connect(context.Background(), targets)
	if st := p.Stats(); st.Connected != int64(n) {
		t.Fatalf("%d of %d subscribers connected (%v)", st.Connected, n, st.Failed)
	}
	return p, tr, keys
}

// push runs one mode against admin and returns the tally once the
// expected deliveries (plus extra) arrived or a second passed.
func push(t *testing.T, admin, mode string, keys []string, tr *bench.Tracker, seq0 uint64, extra uint64) bench.Tally {
	t.Helper()
	tr.Reset()
	cfg := bench.PushConfig{Admin: admin, Mode: mode, Clients: 2, Max: 6, Keys: keys, KeysPerCall: 4,
		Duration: time.Minute, Online: func(string) int { return 2 }}
	if mode == "room" {
		cfg.Room = "floor-room"
		if err := bench.JoinRoom(admin, cfg.Room, keys); err != nil {
			t.Fatal(err)
		}
	}
	pr := bench.Push(context.Background(), cfg, seq0)
	if pr.Accepted != 6 || pr.ExpectedN+pr.UnconfirmedN == 0 {
		t.Fatalf("%s: %d of 6 calls accepted, %d deliveries expected (%s)", mode, pr.Accepted, pr.ExpectedN, pr.FirstError)
	}
	deadline := time.Now().Add(time.Second)
	for tr.Delivered() < pr.ExpectedN+extra && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return bench.Count(pr, tr.Snapshot())
}

func startWriter(t *testing.T, fault Fault) (tcp, admin string) {
	t.Helper()
	hub, err := NewHub("127.0.0.1:0", fault, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	srv, err := ServeHTTP("127.0.0.1:0", NewWriter(hub, quiet).Handler(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return hub.Addr(), srv.Addr()
}

// The bare writer delivers every push of every mode gopush-bench drives
// exactly once to every connection it names.
func TestWriterDeliversEveryModeOnce(t *testing.T) {
	tcp, admin := startWriter(t, Fault{})
	_, tr, keys := subscribe(t, tcp, 200) // 100 keys: fan-outs of 200 use both write goroutines
	for i, mode := range []string{"private", "mprivate", "all", "room"} {
		tl := push(t, admin, mode, keys, tr, uint64(i)*1000+1, 0)
		if err := tl.Err(); err != nil || tl.Delivered != tl.Expected {
			t.Errorf("%s: %v (expected %d, delivered %d)", mode, err, tl.Expected, tl.Delivered)
		}
		if want := map[string]uint64{"private": 12, "mprivate": 48, "all": 1200, "room": 1200}[mode]; tl.Expected != want {
			t.Errorf("%s: %d deliveries expected, want %d", mode, tl.Expected, want)
		}
		if mode == "all" && tl.FanoutP50() <= 0 {
			t.Errorf("all: no fan-out rate")
		}
	}
}

// A writer that drops or repeats deliveries fails the correctness check:
// the yardstick cannot look fast by skipping work unnoticed.
func TestChecksCatchLossAndDuplicates(t *testing.T) {
	tcp, admin := startWriter(t, Fault{DropEvery: 7})
	_, tr, keys := subscribe(t, tcp, 20)
	tl := push(t, admin, "all", keys, tr, 1, 0)
	if tl.Lost == 0 || tl.Err() == nil {
		t.Errorf("dropping every 7th delivery: lost %d, err %v; want a loss", tl.Lost, tl.Err())
	}

	tcp, admin = startWriter(t, Fault{DupEvery: 5})
	_, tr, keys = subscribe(t, tcp, 20)
	tl = push(t, admin, "mprivate", keys, tr, 1, 4)
	if tl.Duplicated == 0 || tl.Err() == nil {
		t.Errorf("writing every 5th delivery twice: duplicated %d, err %v; want duplicates", tl.Duplicated, tl.Err())
	}

	// Delivered, but answered as failed: not a duplicate, still a failure.
	tcp, admin = startWriter(t, Fault{ListAsFailed: true})
	_, tr, keys = subscribe(t, tcp, 20)
	tl = push(t, admin, "mprivate", keys, tr, 1, 48)
	if tl.FailedButDelivered != 48 || tl.Duplicated != 0 || tl.Lost != 0 || tl.Err() == nil {
		t.Errorf("delivered to keys listed in fk: %+v, err %v; want 48 counted apart and an error", tl, tl.Err())
	}
}

// The bare push path: HTTP, one RPC, one frame; a body that is not JSON
// is refused and reaches nobody.
func TestPushPathDeliversOnceAndChecksJSON(t *testing.T) {
	hub, err := NewHub("127.0.0.1:0", Fault{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	pc, err := NewPushComet(hub, "127.0.0.1:0", quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	pw, err := NewPushWeb(pc.Addr(), hub.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close() })
	srv, err := ServeHTTP("127.0.0.1:0", pw.Handler(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)

	// gopush-bench asks /1/server/get where to connect.
	route, err := bench.Route(context.Background(), srv.Addr(), "tcp", []string{"k"}, 1)
	if err != nil || route["k"] != hub.Addr() {
		t.Fatalf("route %v, %v; want %s", route, err, hub.Addr())
	}
	_, tr, keys := subscribe(t, hub.Addr(), 40)
	tl := push(t, srv.Addr(), "private", keys, tr, 1, 0)
	if err := tl.Err(); err != nil || tl.Delivered != 12 {
		t.Errorf("%v, delivered %d of 12", err, tl.Delivered)
	}

	tr.Reset()
	resp, err := http.Post("http://"+srv.Addr()+"/1/admin/push/private?key="+keys[0], "application/json", strings.NewReader(`{"t":1,`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"ret":65534}` {
		t.Errorf("non-JSON body answered %s, want ret 65534", body)
	}
	time.Sleep(50 * time.Millisecond)
	if n := tr.Delivered(); n != 0 {
		t.Errorf("a refused push delivered %d frames", n)
	}
}
