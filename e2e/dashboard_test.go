package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"gopush/conf"
	"gopush/internal/testenv"
	"gopush/ketama"
)

// dashState is what the dashboard page shows, read from its DOM.
type dashState struct {
	Rows   map[string]dashRow // by node
	Shards []string           // message shards shown up
	Events []string
	Chart  struct {
		Last   map[string]float64
		Points int
		Image  string // the canvas as a data URL
	}
	Problem string
}

type dashRow struct {
	Status, Conns, Pushes string
}

const readDashboard = `
var rows = {};
document.querySelectorAll('#comets tbody tr[data-node]').forEach(function (tr) {
  rows[tr.getAttribute('data-node')] = {Status: tr.getAttribute('data-status'),
    Conns: tr.querySelector('.conns').textContent, Pushes: tr.querySelector('.pushes').textContent};
});
var shards = [];
document.querySelectorAll('#messages span[data-shard].up').forEach(function (s) { shards.push(s.getAttribute('data-shard')); });
var events = [];
document.querySelectorAll('#events li[data-kind]').forEach(function (li) { events.push(li.textContent); });
var c = document.getElementById('chart-pushes');
return {Rows: rows, Shards: shards, Events: events, Problem: document.getElementById('problem').textContent,
  Chart: {Last: JSON.parse(c.getAttribute('data-last') || '{}'), Points: +(c.getAttribute('data-points') || 0), Image: c.toDataURL()}};`

// screenshotPath is where the test leaves the dashboard's screenshots:
// $GOPUSH_SCREENSHOTS, or the temporary directory.
func screenshotPath(name string) string {
	dir := os.Getenv("GOPUSH_SCREENSHOTS")
	if dir == "" {
		dir = os.TempDir()
	}
	return filepath.Join(dir, name)
}

// The cluster dashboard in headless Chromium against two real comets: it
// shows both with their connection counts, its pushes/s chart moves under
// load, a hung comet shows down while cluster.json still answers at once,
// and a SIGKILLed comet shows down and then disappears once pruned.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	cl := testenv.NewCluster(t)
	cl.StartMessage()
	c1 := cl.StartComet("node1", 1)
	c2 := cl.StartComet("node2", 1)
	// 30 failed pings (9 s): time to see a dead comet before it is pruned.
	w := cl.StartWeb(func(c *conf.Web) { c.Prune.Failures = 30 })
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 1})
	prefix := testenv.Unique(t) + "-"
	k1a, k1b, k2 := keyOn(ring, "node1", prefix+"a"), keyOn(ring, "node1", prefix+"b"), keyOn(ring, "node2", prefix+"c")
	for k, addr := range map[string]string{k1a: c1.TCP, k1b: c1.TCP, k2: c2.TCP} {
		waitFor(t, "web to route "+k, func() bool {
			s, ret, err := testenv.ServerOf("http://"+w.HTTP, k, "2")
			return err == nil && ret == 0 && s == addr
		})
	}
	subs := []subscriber{
		subscribeWhenReady(t, 2, c1.TCP, k1a, ""),
		subscribeWhenReady(t, 1, c1.WS, k1b, ""),
		subscribeWhenReady(t, 2, c2.TCP, k2, ""),
	}

	b := testenv.StartBrowser(t, 1280, 1000)
	b.Open(t, "http://"+w.Admin+"/admin/")
	var st dashState
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			st = dashState{} // Unmarshal would merge into the old maps
			b.Eval(t, readDashboard, &st)
			if cond() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the dashboard never showed %s; it shows %+v\nconsole:\n%s", what, st, b.Console())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	wait("both comets up with their connections", func() bool {
		return st.Rows["node1"].Status == "up" && st.Rows["node1"].Conns == "2" &&
			st.Rows["node2"].Status == "up" && st.Rows["node2"].Conns == "1" && len(st.Shards) == 1
	})

	// Load: pushes to all three keys until stopped; the subscribers drain.
	stop := make(chan struct{})
	var load sync.WaitGroup
	for _, k := range []string{k1a, k1b, k2} {
		load.Add(1)
		go func() {
			defer load.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post("http://"+w.Admin+"/1/admin/push/private?expire=0&key="+url.QueryEscape(k), "application/json",
					strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	for _, s := range subs {
		go drain(s)
	}
	before := ""
	wait("the pushes/s chart moving for both comets", func() bool {
		moving := st.Chart.Last["node1"] > 0 && st.Chart.Last["node2"] > 0
		if moving && before == "" {
			before = st.Chart.Image
			return false
		}
		return moving && before != "" && st.Chart.Image != before
	})
	b.Screenshot(t, screenshotPath("gopush-dashboard-load.png"))
	close(stop)
	load.Wait()

	// A hung comet (SIGSTOP): down on the page, and cluster.json answers
	// at once all along.
	syscall.Kill(c2.Pid(), syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			syscall.Kill(c2.Pid(), syscall.SIGCONT)
		}
	})
	wait("the hung comet down", func() bool {
		start := time.Now()
		a := httpGet(t, "http://"+w.Admin+"/admin/cluster.json")
		if d := time.Since(start); d > time.Second || a.Status != 200 {
			t.Fatalf("cluster.json with a hung comet: %d after %v", a.Status, d)
		}
		return st.Rows["node2"].Status == "down" && st.Rows["node1"].Status == "up"
	})
	syscall.Kill(c2.Pid(), syscall.SIGCONT)
	stopped = false
	wait("the comet up again", func() bool { return st.Rows["node2"].Status == "up" })

	// SIGKILL: down, then gone once web prunes it.
	c2.Kill()
	wait("the killed comet down", func() bool { return st.Rows["node2"].Status == "down" })
	var view struct {
		Comets []struct {
			Node, Status, Error string
		}
	}
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+w.Admin+"/admin/cluster.json").Body), &view); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster.json after the kill: %+v", view.Comets)
	b.Screenshot(t, screenshotPath("gopush-dashboard-down.png"))
	wait("the killed comet gone after pruning", func() bool {
		_, there := st.Rows["node2"]
		return !there && st.Rows["node1"].Status == "up"
	})
	pruned := false
	for _, e := range st.Events {
		pruned = pruned || (strings.Contains(e, "prune") && strings.Contains(e, "node2"))
	}
	if !pruned {
		t.Errorf("no prune event of node2 among %q", st.Events)
	}
	b.Screenshot(t, screenshotPath("gopush-dashboard.png"))
	t.Logf("screenshots in %s", screenshotPath("gopush-dashboard*.png"))
}

// drain reads a subscriber's messages, and sends its heartbeats, until
// its connection ends.
func drain(s subscriber) {
	switch s := s.(type) {
	case *tcpSub:
		s.conn.SetDeadline(time.Time{})
		go func() {
			for {
				time.Sleep(10 * time.Second)
				if _, err := s.conn.Write([]byte("h")); err != nil {
					return
				}
			}
		}()
		io.Copy(io.Discard, s.conn)
	case *wsSub:
		s.conn.SetReadDeadline(time.Time{})
		go func() {
			for {
				time.Sleep(10 * time.Second)
				if err := s.conn.WriteMessage(websocket.TextMessage, []byte("h")); err != nil {
					return
				}
			}
		}()
		for {
			if _, _, err := s.conn.ReadMessage(); err != nil {
				return
			}
		}
	default:
		panic(fmt.Sprintf("unknown subscriber %T", s))
	}
}
