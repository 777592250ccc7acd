package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
	"gopush/ketama"
)

// statsComet answers CometRPC.Stats with growing counters, or hangs until
// its context ends while hung is set.
type statsComet struct {
	pushes atomic.Int64
	hung   atomic.Bool
}

func (s *statsComet) Call(ctx context.Context, method string, _, reply any) error {
	if s.hung.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if method != api.CometStats {
		return errors.New("unexpected " + method)
	}
	*reply.(*api.CometStatsResp) = api.CometStatsResp{Node: "n", Start: 1, Connections: 3, Pushes: s.pushes.Add(100), Deliveries: s.pushes.Load() * 2}
	return nil
}

// The poller computes rates from two polls; a hung comet shows down after
// the poll timeout while cluster.json answers at once; a node that leaves
// the ring leaves the view; the changes are events.
func TestDashboardPoller(t *testing.T) {
	t.Parallel()
	w := New(conf.DefaultWeb(), slog.New(slog.DiscardHandler))
	good, hung := &statsComet{}, &statsComet{}
	weights := map[string]int{"good": 1, "hung": 1}
	nodes := map[string]*cometNode{"good": {name: "good", child: "good/1", rpc: good}, "hung": {name: "hung", child: "hung/1", rpc: hung}}
	w.cluster.cur.Store(&clusterView{ring: ketama.FromWeights(ketama.DefaultBase, weights), weights: weights, nodes: nodes})
	now := time.Unix(1000, 0)
	w.dash.now = func() time.Time { return now }

	w.dash.round(context.Background())
	now = now.Add(2 * time.Second)
	w.dash.round(context.Background())
	v := w.dash.snapshot()
	if len(v.Comets) != 2 || v.Comets[0].Node != "good" || v.Comets[0].Status != "up" || v.Comets[0].Connections != 3 {
		t.Fatalf("comets %+v", v.Comets)
	}
	if got := v.Comets[0].PushRate; got != 50 { // 100 more pushes in 2 s
		t.Errorf("push rate %v, want 50", got)
	}
	if got := v.Comets[0].DeliverRate; got != 100 {
		t.Errorf("delivery rate %v, want 100", got)
	}
	if len(v.Comets[0].Samples) != 2 {
		t.Errorf("%d samples, want 2", len(v.Comets[0].Samples))
	}

	// A hung comet: the round waits for it at most dashTimeout, and the
	// JSON endpoint answers meanwhile from what the poller has.
	hung.hung.Store(true)
	mux := w.adminMux()
	done := make(chan struct{})
	go func() { w.dash.round(context.Background()); close(done) }()
	start := time.Now()
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/cluster.json", nil))
	if d := time.Since(start); d > 500*time.Millisecond || rec.Code != 200 {
		t.Fatalf("cluster.json during a hung poll: %d after %v", rec.Code, d)
	}
	select {
	case <-done:
	case <-time.After(dashTimeout + 5*time.Second):
		t.Fatal("a round with a hung comet did not end within its timeout")
	}
	v = w.dash.snapshot()
	if v.Comets[1].Node != "hung" || v.Comets[1].Status != "down" || !strings.Contains(v.Comets[1].Error, "deadline") {
		t.Fatalf("hung comet shown as %+v", v.Comets[1])
	}

	// It leaves the ring.
	delete(weights, "hung")
	delete(nodes, "hung")
	w.cluster.cur.Store(&clusterView{ring: ketama.FromWeights(ketama.DefaultBase, weights), weights: weights, nodes: nodes})
	w.dash.round(context.Background())
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/cluster.json", nil))
	var got clusterJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Comets) != 1 || len(got.Ring) != 1 || got.Ring[0].Node != "good" {
		t.Fatalf("after leaving: ring %+v comets %+v", got.Ring, got.Comets)
	}
	var texts []string
	for _, e := range got.Events {
		texts = append(texts, e.Text)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"comet node hung joined the ring", "comet node hung down", "comet node hung left the ring"} {
		if !strings.Contains(all, want) {
			t.Errorf("no event %q among:\n%s", want, all)
		}
	}
}

// The page is served at /admin/ only, embedded, and fetches nothing from
// another site.
func TestDashboardPage(t *testing.T) {
	t.Parallel()
	mux := New(conf.DefaultWeb(), nil).adminMux()
	for path, want := range map[string]int{"/admin/": 200, "/admin": 301, "/admin/nothing": 404} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
		if want == 200 {
			body := rec.Body.String()
			if !strings.Contains(body, "cluster.json") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
				t.Errorf("the page does not poll cluster.json, or links another site")
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q", ct)
			}
		}
	}
}
