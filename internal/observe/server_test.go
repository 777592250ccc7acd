package observe

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func serve(t *testing.T, ready ReadyFunc) (*Server, string) {
	t.Helper()
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "gopush_test_total", Help: "a test counter"})
	c.Add(3)
	reg.MustRegister(c)
	s, err := Serve([]string{"127.0.0.1:0"}, reg, ready, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, "http://" + s.Addrs()[0]
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /metrics has the registry's metrics and the Go and process collectors;
// /healthz answers; anything else is 404.
func TestServePaths(t *testing.T) {
	_, base := serve(t, nil)
	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, "gopush_test_total 3") || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_cpu_seconds_total") {
		t.Fatalf("/metrics: %d\n%.400s", code, body)
	}
	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, `"alive"`) {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	for _, p := range []string{"/", "/metric", "/metrics/x", "/debug/pprof/", "/stat"} {
		if code, _ := get(t, base+p); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
}

// /readyz: 200 when every check passes, 503 "not ready" when one fails,
// 503 "degraded" when only degraded checks fail, 503 "stopping" once the
// daemon shuts down; the reasons are in the JSON.
func TestReadyz(t *testing.T) {
	var mu sync.Mutex
	checks := []Check{{Name: "zookeeper", OK: true}}
	s, base := serve(t, func(context.Context) []Check {
		mu.Lock()
		defer mu.Unlock()
		return checks
	})
	set := func(c ...Check) { mu.Lock(); checks = c; mu.Unlock() }
	want := func(code int, status string, detail string) {
		t.Helper()
		got, body := get(t, base+"/readyz")
		var ans struct {
			Status string
			Checks []Check
		}
		if err := json.Unmarshal([]byte(body), &ans); err != nil {
			t.Fatalf("/readyz body %q: %v", body, err)
		}
		if got != code || ans.Status != status || !strings.Contains(body, detail) {
			t.Fatalf("/readyz: %d %s, want %d %q with %q", got, body, code, status, detail)
		}
	}
	want(200, StatusReady, "zookeeper")
	set(Check{Name: "zookeeper", Detail: "no session"}, Check{Name: "shard b", Degraded: true, Detail: "b down"})
	want(503, StatusNotReady, "no session")
	set(Check{Name: "zookeeper", OK: true}, Check{Name: "shard b", Degraded: true, Detail: "b down"})
	want(503, StatusDegraded, "b down")
	s.Stopping()
	want(503, StatusStopping, "shutting down")
	if code, _ := get(t, base+"/metrics"); code != 200 {
		t.Fatalf("/metrics while stopping: %d", code)
	}
}

// 100 scrapes at once all answer in full.
func TestConcurrentScrapes(t *testing.T) {
	_, base := serve(t, nil)
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 30 * time.Second}
			resp, err := c.Get(base + "/metrics")
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !strings.Contains(string(b), "gopush_test_total 3") {
				errs <- resp.Status
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// A second listener on a port in use fails the start and keeps nothing.
func TestServeBindError(t *testing.T) {
	s, _ := serve(t, nil)
	_, err := Serve([]string{"127.0.0.1:0", s.Addrs()[0]}, NewRegistry(), nil, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "metrics.bind") {
		t.Fatalf("err %v, want one naming metrics.bind", err)
	}
	var nilServer *Server
	if nilServer.Close(context.Background()) != nil || nilServer.Addrs() != nil {
		t.Fatal("a nil server must be a no-op")
	}
}
