package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"gopush/conf"
	"gopush/internal/testenv"
	"gopush/ketama"
)

// obsCluster is a testenv cluster (whose daemons serve /metrics) with two
// comets.
type obsCluster struct {
	cl     *testenv.Cluster
	msg    *testenv.MessageNode
	c1, c2 *testenv.CometNode
	web    *testenv.WebNode
	ring   *ketama.Ring
}

func (o *obsCluster) adminPost(t *testing.T, pathQuery, body string) answer {
	t.Helper()
	return httpPost(t, "http://"+o.web.Admin+pathQuery, body)
}

// keyOnNode returns a key of this test that the ring gives node.
func (o *obsCluster) keyOnNode(t *testing.T, node, tag string) string {
	return keyOn(o.ring, node, testenv.Unique(t)+"-"+tag+"-")
}

// waitServed waits until web routes key to the TCP address addr.
func (o *obsCluster) waitServed(t *testing.T, key, addr string) {
	t.Helper()
	waitFor(t, "web to route "+key, func() bool {
		s, ret, err := testenv.ServerOf("http://"+o.web.HTTP, key, "2")
		return err == nil && ret == 0 && s == addr
	})
}

// After pushes of every kind to subscribers on two comets, the counters of
// comet, web and message move by exactly what was done; refused subscribes
// are counted by reply; histograms have observations; no label holds a key.
func TestMetricsCountWhatWasDone(t *testing.T) {
	t.Parallel()
	o := &obsCluster{cl: testenv.NewCluster(t)}
	o.msg = o.cl.StartMessage()
	o.c1 = o.cl.StartComet("node1", 1, func(c *conf.Comet) { c.Channel.MaxSubscriber = 1 })
	o.c2 = o.cl.StartComet("node2", 1, func(c *conf.Comet) { c.Channel.Auth = true })
	o.web = o.cl.StartWeb()
	o.ring = ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 1})

	k1 := o.keyOnNode(t, "node1", "a")  // TCP on comet 1
	k1b := o.keyOnNode(t, "node1", "b") // WebSocket on comet 1
	k2 := o.keyOnNode(t, "node2", "c")  // TCP on comet 2, with a token
	o.waitServed(t, k1, o.c1.TCP)
	o.waitServed(t, k2, o.c2.TCP)
	tok := "secret-" + testenv.Unique(t)
	if a := o.adminPost(t, "/1/token/add?k="+url.QueryEscape(k2)+"&t="+tok, ""); a.Body != `{"ret":0}` {
		t.Fatalf("token add: %s", a.Body)
	}
	s1 := subscribeWhenReady(t, 2, o.c1.TCP, k1, "")
	s1b := subscribeWhenReady(t, 1, o.c1.WS, k1b, "")
	s2 := subscribeWhenReady(t, 2, o.c2.TCP, k2, tok)

	// comet 1 knows the two-node ring once it refuses k2 (before the
	// baseline, so that these attempts are not counted).
	waitFor(t, "comet 1 to refuse "+k2, func() bool {
		s, r := subscribeTCP(t, o.c1.TCP, k2, "")
		if s != nil {
			s.close()
		}
		return r == "-n"
	})

	b1, b2, bw, bm := testenv.Scrape(t, o.c1.Metrics), testenv.Scrape(t, o.c2.Metrics), testenv.Scrape(t, o.web.Metrics), testenv.Scrape(t, o.msg.Metrics)

	// Refused subscribes, one of each reply.
	if _, r := subscribeTCP(t, o.c1.TCP, k2, ""); r != "-n" {
		t.Fatalf("subscribe %s on node1: %q, want -n", k2, r)
	}
	if _, r := subscribeTCP(t, o.c1.TCP, k1, ""); r != "-c" {
		t.Fatalf("second subscribe of %s with maxsubscriber 1: %q, want -c", k1, r)
	}
	if r := rawTCP(t, o.c1.TCP, "*3\r\n$3\r\nsub\r\n$1\r\nk\r\n$1\r\n1\r\n"); r != "-p" {
		t.Fatalf("subscribe with heartbeat 1: %q, want -p", r)
	}
	if _, r := subscribeTCP(t, o.c2.TCP, k2, "wrong"); r != "-a" {
		t.Fatalf("subscribe with a wrong token: %q, want -a", r)
	}

	// Pushes of every kind.
	for i := range 3 {
		if a := o.adminPost(t, "/1/admin/push/private?expire=0&key="+url.QueryEscape(k1), fmt.Sprintf(`{"p":%d}`, i)); a.Body != `{"ret":0}` {
			t.Fatalf("push: %s", a.Body)
		}
	}
	for i := range 2 {
		if a := o.adminPost(t, "/1/admin/push/private?expire=600&key="+url.QueryEscape(k2), fmt.Sprintf(`{"q":%d}`, i)); a.Body != `{"ret":0}` {
			t.Fatalf("push: %s", a.Body)
		}
	}
	if a := o.adminPost(t, "/1/admin/push/mprivate?expire=600", fmt.Sprintf(`{"m":"{\"m\":1}","k":"%s,%s,%s"}`, k1, k1b, k2)); a.Body != `{"ret":0}` {
		t.Fatalf("mprivate: %s", a.Body)
	}
	rid := testenv.Unique(t)
	if a := o.adminPost(t, "/1/admin/room/join?rid="+rid, fmt.Sprintf(`{"k":"%s,%s"}`, k1, k2)); a.Body != `{"ret":0}` {
		t.Fatalf("room join: %s", a.Body)
	}
	if a := o.adminPost(t, "/1/admin/push/room?expire=0&rid="+rid, `{"room":1}`); a.Body != `{"ret":0}` {
		t.Fatalf("push/room: %s", a.Body)
	}
	if a := o.adminPost(t, "/1/admin/push/all?expire=0", `{"all":1}`); !strings.HasPrefix(a.Body, `{"ret":0,"data":{"mid":`) || strings.Contains(a.Body, "fn") {
		t.Fatalf("push/all: %s", a.Body)
	}
	// Every subscriber gets what was sent to it (so every frame is queued).
	for name, want := range map[subscriber]int{s1: 6, s1b: 2, s2: 5} {
		for range want {
			name.next(t)
		}
	}

	a1, a2, aw, am := testenv.Scrape(t, o.c1.Metrics), testenv.Scrape(t, o.c2.Metrics), testenv.Scrape(t, o.web.Metrics), testenv.Scrape(t, o.msg.Metrics)
	check := func(what string, before, after testenv.Metrics, want float64, name string, labels ...string) {
		t.Helper()
		if got := after.Get(name, labels...) - before.Get(name, labels...); got != want {
			t.Errorf("%s: %s%v moved by %v, want %v", what, name, labels, got, want)
		}
	}
	// comet 1: k1 (TCP) and k1b (WebSocket); comet 2: k2.
	check("comet1", b1, a1, 3, "gopush_comet_rpc_pushes_total", "method", "PushPrivate")
	check("comet1", b1, a1, 2, "gopush_comet_rpc_pushes_total", "method", "PushPrivates") // mprivate, room
	check("comet1", b1, a1, 1, "gopush_comet_rpc_pushes_total", "method", "Broadcast")
	check("comet1", b1, a1, 1, "gopush_comet_broadcasts_total")
	check("comet1", b1, a1, 6, "gopush_comet_pushed_keys_total") // 3 private, k1+k1b, room k1
	check("comet1", b1, a1, 8, "gopush_comet_deliveries_total")  // 6 private + 2 broadcast
	check("comet1", b1, a1, 2, "gopush_comet_stored_total")      // mprivate k1, k1b
	check("comet1", b1, a1, 1, "gopush_comet_subscribes_total", "reply", "-n")
	check("comet1", b1, a1, 1, "gopush_comet_subscribes_total", "reply", "-c")
	check("comet1", b1, a1, 1, "gopush_comet_subscribes_total", "reply", "-p")
	check("comet1", b1, a1, 0, "gopush_comet_subscribes_total", "reply", "+h")
	check("comet2", b2, a2, 2, "gopush_comet_rpc_pushes_total", "method", "PushPrivate")
	check("comet2", b2, a2, 2, "gopush_comet_rpc_pushes_total", "method", "PushPrivates")
	check("comet2", b2, a2, 4, "gopush_comet_pushed_keys_total")
	check("comet2", b2, a2, 5, "gopush_comet_deliveries_total")
	check("comet2", b2, a2, 3, "gopush_comet_stored_total")
	check("comet2", b2, a2, 1, "gopush_comet_subscribes_total", "reply", "-a")
	// The refused connections linger a moment after their reply (comet
	// reads what the client still sends): wait for them to go.
	waitFor(t, "comet1 to hold its one TCP subscriber", func() bool {
		return testenv.Scrape(t, o.c1.Metrics).Get("gopush_comet_connections", "proto", "tcp") == 1
	})
	if got := a1.Get("gopush_comet_connections", "proto", "websocket"); got != 1 {
		t.Errorf("comet1 websocket connections %v, want 1", got)
	}
	if a1.Get("gopush_comet_written_bytes_total") <= b1.Get("gopush_comet_written_bytes_total") {
		t.Error("comet1 wrote no bytes")
	}
	// web
	check("web", bw, aw, 5, "gopush_web_pushes_total", "kind", "private", "result", "ok")
	check("web", bw, aw, 1, "gopush_web_pushes_total", "kind", "mprivate", "result", "ok")
	check("web", bw, aw, 1, "gopush_web_pushes_total", "kind", "room", "result", "ok")
	check("web", bw, aw, 1, "gopush_web_pushes_total", "kind", "all", "result", "ok")
	check("web", bw, aw, 0, "gopush_web_push_failed_keys_total")
	check("web", bw, aw, 5, "gopush_web_http_requests_total", "route", "/1/admin/push/private", "code", "200")
	check("web", bw, aw, 3, "gopush_web_comet_rpc_duration_seconds_count", "node", "node1", "method", "PushPrivate")
	check("web", bw, aw, 2, "gopush_web_comet_rpc_duration_seconds_count", "node", "node2", "method", "PushPrivate")
	check("web", bw, aw, 2, "gopush_web_comet_rpc_duration_seconds_count", "node", "node1", "method", "PushPrivates")
	check("web", bw, aw, 1, "gopush_web_comet_rpc_duration_seconds_count", "node", "node2", "method", "Broadcast")
	check("web", bw, aw, 0, "gopush_web_comet_rpc_errors_total")
	check("web", bw, aw, 5, "gopush_web_http_request_duration_seconds_count", "route", "/1/admin/push/private")
	if aw.Get("gopush_web_ring_nodes") != 2 || aw.Get("gopush_web_serving_comets") != 2 {
		t.Errorf("web ring %v nodes, %v serving; want 2 and 2", aw.Get("gopush_web_ring_nodes"), aw.Get("gopush_web_serving_comets"))
	}
	// message: comet 2 stores its 2 private pushes, made one after the
	// other, through one SaveBatch each (comet groups only saves made at
	// the same time); mprivate stores through one SavePrivatesEach per
	// comet (2 + 1 keys).
	check("message", bm, am, 0, "gopush_message_rpc_calls_total", "method", "SavePrivate", "result", "ok")
	check("message", bm, am, 2, "gopush_message_rpc_calls_total", "method", "SaveBatch", "result", "ok")
	check("message", bm, am, 2, "gopush_message_rpc_calls_total", "method", "SavePrivatesEach", "result", "ok")
	check("message", bm, am, 5, "gopush_message_messages_stored_total")
	check("message", bm, am, 1, "gopush_message_rpc_calls_total", "method", "RoomJoin", "result", "ok")
	check("message", bm, am, 1, "gopush_message_rpc_calls_total", "method", "RoomKeys", "result", "ok")
	check("message", bm, am, 2, "gopush_message_rpc_duration_seconds_count", "method", "SaveBatch")
	check("message", bm, am, 0, "gopush_message_storage_errors_total")
	if got := am.Get("gopush_message_storage_duration_seconds_count", "op", "save_many") - bm.Get("gopush_message_storage_duration_seconds_count", "op", "save_many"); got != 4 {
		t.Errorf("message: %v batch saves in the storage histogram, want 4 (2 SaveBatch, 2 SavePrivatesEach)", got)
	}
	for who, m := range map[string]testenv.Metrics{"comet1": a1, "comet2": a2, "web": aw, "message": am} {
		if m.Get("gopush_zookeeper_session_up") != 1 {
			t.Errorf("%s: gopush_zookeeper_session_up is not 1", who)
		}
		if !m.Has("go_goroutines") || !m.Has("process_resident_memory_bytes") {
			t.Errorf("%s: the Go runtime or process collector is missing", who)
		}
		for _, s := range m {
			for _, v := range s.Labels {
				for _, k := range []string{k1, k1b, k2, tok, rid} {
					if strings.Contains(v, k) {
						t.Errorf("%s: series %s has a label holding the key or token %q", who, s.Name, k)
					}
				}
			}
		}
	}
	for who, m := range map[string]testenv.Metrics{"comet1": a1, "web": aw} {
		if !m.Has("gopush_comet_listener_refused_total") && !m.Has("gopush_web_listener_refused_total") {
			t.Errorf("%s: no connection-limit counters", who)
		}
	}
	if !aw.Has("gopush_web_admin_denied_total") {
		t.Error("web: no gopush_web_admin_denied_total")
	}
	if a1.Get("gopush_zookeeper_registrations_total") != 1 || a1.Get("gopush_zookeeper_registered") != 1 {
		t.Errorf("comet1 registered %v, registrations %v; want 1 and 1",
			a1.Get("gopush_zookeeper_registered"), a1.Get("gopush_zookeeper_registrations_total"))
	}
}

// rawTCP sends raw bytes to a comet's TCP port and returns its first reply
// line.
func rawTCP(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	return strings.TrimRight(string(buf[:n]), "\r\n")
}

// readyz answers the status code and body of GET /readyz.
func readyz(addr string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// waitReady waits until addr's /readyz answers code with a body holding
// every one of words.
func waitReady(t *testing.T, who, addr string, code int, words ...string) {
	t.Helper()
	var got int
	var body string
	deadline := time.Now().Add(40 * time.Second)
	for {
		got, body = readyz(addr)
		ok := got == code
		for _, w := range words {
			ok = ok && strings.Contains(body, w)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s /readyz: %d %s; want %d with %q", who, got, body, code, words)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// /readyz of every daemon goes 503, naming the reason, while ZooKeeper is
// unreachable (a proxy in front of it is paused), and back to 200 after.
func TestReadyzZooKeeperOutage(t *testing.T) {
	t.Parallel()
	cl := testenv.NewCluster(t)
	proxy := testenv.ZKProxy(t)
	cl.ZK = proxy.Addr()
	msg := cl.StartMessage()
	c1 := cl.StartComet("node1", 1)
	w := cl.StartWeb()
	daemons := map[string]string{"message": msg.Metrics, "comet": c1.Metrics, "web": w.Metrics}
	for who, addr := range daemons {
		waitReady(t, who, addr, http.StatusOK, `"status":"ready"`)
	}
	proxy.Pause()
	for who, addr := range daemons {
		waitReady(t, who, addr, http.StatusServiceUnavailable, `"status":"not ready"`, `"name":"zookeeper"`, "no ZooKeeper session")
		if m := testenv.Scrape(t, addr); m.Get("gopush_zookeeper_session_up") != 0 {
			t.Errorf("%s: gopush_zookeeper_session_up is not 0 during the outage", who)
		}
	}
	proxy.Resume()
	for who, addr := range daemons {
		waitReady(t, who, addr, http.StatusOK, `"status":"ready"`)
	}
}

// A message node with one of its two Redis shards stopped is "degraded",
// 503, naming the shard; it is ready again once the shard is back.
func TestReadyzRedisShardDown(t *testing.T) {
	t.Parallel()
	cl := testenv.NewCluster(t)
	own := testenv.StartRedis(t)
	msg := cl.StartMessage(func(c *conf.Message) {
		c.Redis.DialTimeout = conf.Duration(500 * time.Millisecond)
		c.Redis.Source = map[string]string{"shared:1": "tcp@" + cl.Redis, "ownshard:1": "tcp@" + own.Addr()}
	})
	waitReady(t, "message", msg.Metrics, http.StatusOK, `"status":"ready"`, "2 shards answer")
	own.Stop()
	waitReady(t, "message", msg.Metrics, http.StatusServiceUnavailable, `"status":"degraded"`, `"name":"storage shard ownshard"`)
	if _, body := readyz(msg.Metrics); strings.Contains(body, "storage shard shared") {
		t.Errorf("the shard that answers is listed as down: %s", body)
	}
	own.Start()
	waitReady(t, "message", msg.Metrics, http.StatusOK, `"status":"ready"`)
}

// web is not ready without a comet on the ring, ready with one, and not
// ready again once its only comet is gone.
func TestReadyzWebWithoutComet(t *testing.T) {
	t.Parallel()
	cl := testenv.NewCluster(t)
	cl.StartMessage()
	w := cl.StartWeb()
	waitReady(t, "web", w.Metrics, http.StatusServiceUnavailable, `"name":"comets"`, "no comet node on the ring")
	c1 := cl.StartComet("node1", 1)
	waitReady(t, "web", w.Metrics, http.StatusOK, `"status":"ready"`, "1 of 1 ring nodes serving")
	c1.Stop()
	waitReady(t, "web", w.Metrics, http.StatusServiceUnavailable, `"name":"comets"`)
	cl.RestartComet(c1)
	waitReady(t, "web", w.Metrics, http.StatusOK, `"status":"ready"`)
}

// Scrapes answer during a ZooKeeper outage without holding up pushes,
// 100 scrapes at once all answer, an unknown path is 404, and scrapes
// during a shutdown answer (or find the port closed) without hanging.
func TestMetricsUnderFaults(t *testing.T) {
	t.Parallel()
	cl := testenv.NewCluster(t)
	proxy := testenv.ZKProxy(t)
	cl.ZK = proxy.Addr()
	msg := cl.StartMessage()
	c1 := cl.StartComet("node1", 1)
	w := cl.StartWeb()
	key := testenv.Unique(t)
	waitFor(t, "web to route the key", func() bool {
		s, ret, err := testenv.ServerOf("http://"+w.HTTP, key, "2")
		return err == nil && ret == 0 && s == c1.TCP
	})
	sub := subscribeWhenReady(t, 2, c1.TCP, key, "")
	daemons := map[string]string{"message": msg.Metrics, "comet": c1.Metrics, "web": w.Metrics}

	for who, addr := range daemons {
		if code, _ := get(t, "http://"+addr+"/no/such/path"); code != http.StatusNotFound {
			t.Errorf("%s: unknown path answered %d, want 404", who, code)
		}
		if code, _ := get(t, "http://"+addr+"/healthz"); code != http.StatusOK {
			t.Errorf("%s: /healthz answered %d", who, code)
		}
	}

	// The outage: scrapes keep answering fast, pushes keep flowing.
	proxy.Pause()
	stop := make(chan struct{})
	scrapeErrs := make(chan error, 100)
	var scrapes sync.WaitGroup
	for who, addr := range daemons {
		scrapes.Add(1)
		go func() {
			defer scrapes.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				if _, err := testenv.TryScrape(addr, 5*time.Second); err != nil {
					scrapeErrs <- fmt.Errorf("%s during the outage: %w", who, err)
					return
				}
				if d := time.Since(start); d > 3*time.Second {
					scrapeErrs <- fmt.Errorf("%s: a scrape took %v during the outage", who, d)
					return
				}
			}
		}()
	}
	waitReady(t, "comet", c1.Metrics, http.StatusServiceUnavailable, "no ZooKeeper session")
	for i := range 20 {
		start := time.Now()
		if a := httpPost(t, "http://"+w.Admin+"/1/admin/push/private?expire=0&key="+url.QueryEscape(key), fmt.Sprintf(`{"n":%d}`, i)); a.Body != `{"ret":0}` {
			t.Fatalf("push %d during the outage: %s", i, a.Body)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("push %d took %v during the outage", i, d)
		}
		if m := sub.next(t); string(m.Msg) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("subscriber got %s, want push %d", m.Msg, i)
		}
	}
	close(stop)
	scrapes.Wait()
	close(scrapeErrs)
	for err := range scrapeErrs {
		t.Error(err)
	}
	proxy.Resume()

	// 100 scrapes at once, on every daemon.
	for who, addr := range daemons {
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := testenv.TryScrape(addr, 30*time.Second)
				if err == nil && !m.Has("gopush_zookeeper_session_up") {
					err = fmt.Errorf("a scrape without gopush_zookeeper_session_up")
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%s, 100 concurrent scrapes: %v", who, err)
		}
	}

	// The shutdown of comet while it is scraped: every scrape answers in
	// full or finds the port closed; none hangs.
	done := make(chan struct{})
	results := make(chan error, 1000)
	var shutdown sync.WaitGroup
	for range 4 {
		shutdown.Add(1)
		go func() {
			defer shutdown.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				start := time.Now()
				_, err := testenv.TryScrape(c1.Metrics, 5*time.Second)
				if time.Since(start) > 4*time.Second {
					results <- fmt.Errorf("a scrape during shutdown took %v (%v)", time.Since(start), err)
				} else if err != nil && !isRefused(err) {
					results <- fmt.Errorf("a scrape during shutdown: %w", err)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if code := c1.Stop(); code != 0 {
		t.Errorf("comet exited %d", code)
	}
	close(done)
	shutdown.Wait()
	close(results)
	for err := range results {
		t.Error(err)
	}
}

// isRefused reports whether err is a closed port, or a connection the
// stopping server closed before answering.
func isRefused(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "connection reset") || strings.Contains(s, "EOF")
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	a := httpGet(t, u)
	return a.Status, a.Body
}
