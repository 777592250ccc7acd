package comet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/internal/testenv"
)

// sseClient is a raw Server-Sent Events client: it writes the request
// itself and reads the exact bytes that follow.
type sseClient struct {
	*tcpClient
	status int
	header http.Header
	close  bool // the answer said Connection: close
}

// dialSSE sends GET /sse?q with the extra header lines and reads the
// response status and header.
func dialSSE(t testing.TB, addr string, q url.Values, extra ...string) *sseClient {
	t.Helper()
	cl := dialTCP(t, addr)
	req := "GET /sse?" + q.Encode() + " HTTP/1.1\r\nHost: " + addr + "\r\nAccept: text/event-stream\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	cl.write([]byte(req + "\r\n"))
	_ = cl.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatalf("sse answer: %v", err)
	}
	return &sseClient{tcpClient: cl, status: resp.StatusCode, header: resp.Header, close: resp.Close}
}

// body reads an error answer's body (Content-Length bytes).
func (c *sseClient) body() string {
	c.t.Helper()
	n, err := strconv.Atoi(c.header.Get("Content-Length"))
	if err != nil {
		c.t.Fatalf("error answer without Content-Length: %v", c.header)
	}
	return c.readN(n)
}

// event reads one event or comment: the bytes up to and including the
// blank line that ends it.
func (c *sseClient) event() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read event: %v (so far %q)", err, b.String())
		}
		b.WriteString(line)
		if line == "\n" {
			return b.String()
		}
	}
}

func sseQuery(key, hb, token, ver string) url.Values { return wsQuery(key, hb, token, ver) }

// subscribeSSE opens an SSE stream of key that got ":+h".
func subscribeSSE(t testing.TB, c *Comet, key, ver string, extra ...string) *sseClient {
	t.Helper()
	cl := dialSSE(t, c.WSAddrs()[0], sseQuery(key, "30", "", ver), extra...)
	if cl.status != http.StatusOK {
		t.Fatalf("sse subscribe of %s: status %d, body %q", key, cl.status, cl.body())
	}
	if got := cl.event(); got != ":+h\n\n" {
		t.Fatalf("first bytes %q, want the comment :+h", got)
	}
	return cl
}

// sseEvent is the exact bytes of a private message event.
func sseEvent(mid int64, data string) string {
	return fmt.Sprintf("id: %d\ndata: %s\n\n", mid, data)
}

func TestSSEStreamExactBytes(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	c := New(cfg, newTestLogger(t))
	c.sseBeat = 300 * time.Millisecond
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(t.Context()) })
	rc := rpcClient(t, c)

	cur := subscribeSSE(t, c, "ssekey", "1.0.5")
	old := subscribeSSE(t, c, "ssekey", "")
	for name, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache, no-store",
		"X-Accel-Buffering": "no",
	} {
		if got := cur.header.Get(name); got != want {
			t.Errorf("header %s: %q, want %q", name, got, want)
		}
	}
	if !cur.close || cur.header.Get("Content-Length") != "" || cur.header.Get("Transfer-Encoding") != "" {
		t.Errorf("a stream has no length and no chunking: %v", cur.header)
	}

	push(t, rc, "ssekey", `{"a": [1, "x\ny"]}`, 0)
	got := cur.event()
	var d delivered
	if _, err := fmt.Sscanf(got, "id: %d\n", &d.Mid); err != nil {
		t.Fatalf("event %q has no id", got)
	}
	if want := sseEvent(d.Mid, fmt.Sprintf(`{"msg":{"a":[1,"x\ny"]},"mid":%d,"gid":0}`, d.Mid)); got != want {
		t.Fatalf("current form:\n got %q\nwant %q", got, want)
	}
	if want := sseEvent(d.Mid, fmt.Sprintf(`{"msg":"{\"a\":[1,\"x\\ny\"]}","mid":%d,"gid":0}`, d.Mid)); old.event() != want {
		t.Fatalf("old form: want %q", want)
	}

	// A public message has no id: Last-Event-ID stays the last private mid.
	var r int
	call(t, rc, api.CometBroadcast, &api.CometBroadcastArgs{Msg: json.RawMessage(`"all"`), MsgId: 42}, &r)
	if got, want := cur.event(), "data: {\"msg\":\"all\",\"mid\":42,\"gid\":1}\n\n"; got != want {
		t.Fatalf("public message %q, want %q", got, want)
	}
	if got, want := old.event(), "data: {\"msg\":\"\\\"all\\\"\",\"mid\":42,\"gid\":1}\n\n"; got != want {
		t.Fatalf("public message, old form %q, want %q", got, want)
	}

	// Heartbeats are comments.
	if got := cur.event(); got != ":h\n\n" {
		t.Fatalf("heartbeat %q, want :h", got)
	}
	st := stat(t, c, "type=connection")
	if st["sse"] != 2.0 || st["sse_accepted"] != 2.0 || st["current"] != 2.0 || st["total"] != 2.0 {
		t.Fatalf("stat connection: %v, want 2 sse connections", st)
	}
	cur.nc.Close()
	old.nc.Close()
	testenv.WaitFor(t, 10*time.Second, "the sse connections to be gone", func() bool {
		return c.stats.sseConns.Load() == 0 && c.stats.subscribed() == 0 && c.hub.numChannels() == 0
	})
}

// Every refusal is an HTTP error with the TCP reply as body, before any
// stream starts; the connection is closed after it.
func TestSSEErrorsBeforeTheStream(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.MaxSubscriber = 1
	cfg.Channel.Origins = []string{"https://good.example"}
	c := startComet(t, cfg)
	addr := c.WSAddrs()[0]
	check := func(name string, cl *sseClient, status int, body string) {
		t.Helper()
		if cl.status != status {
			t.Errorf("%s: status %d, want %d", name, cl.status, status)
			return
		}
		if got := cl.body(); got != body {
			t.Errorf("%s: body %q, want %q", name, got, body)
		}
		if ct := cl.header.Get("Content-Type"); strings.Contains(ct, "event-stream") {
			t.Errorf("%s: an error is not a stream (%s)", name, ct)
		}
		cl.expectClosed(5 * time.Second)
	}
	for name, q := range map[string]url.Values{
		"no parameters":  {},
		"empty key":      sseQuery("", "30", "", "1"),
		"heartbeat < 30": sseQuery("k", "10", "", "1"),
		"heartbeat text": sseQuery("k", "x", "", "1"),
		"long key":       sseQuery(strings.Repeat("k", 65), "30", "", "1"),
	} {
		check(name, dialSSE(t, addr, q), 400, "-p\r\n")
	}
	for name, h := range map[string]string{
		"Last-Event-ID not a number": "Last-Event-ID: abc",
		"Last-Event-ID negative":     "Last-Event-ID: -5",
		"Last-Event-ID too long":     "Last-Event-ID: 99999999999999999999",
	} {
		check(name, dialSSE(t, addr, sseQuery("k", "30", "", "1"), h), 400, "-p\r\n")
	}
	check("origin not allowed", dialSSE(t, addr, sseQuery("k", "30", "", "1"), "Origin: https://evil.example"), 403, "origin not allowed\r\n")

	// An allowed origin gets CORS headers.
	ok := subscribeSSE(t, c, "corskey", "1", "Origin: https://good.example")
	if got := ok.header.Get("Access-Control-Allow-Origin"); got != "https://good.example" {
		t.Errorf("Access-Control-Allow-Origin %q", got)
	}
	// -c: maxsubscriber is 1 and corskey has its connection.
	check("maxsubscriber", dialSSE(t, addr, sseQuery("corskey", "30", "", "1")), 429, "-c\r\n")

	// -n: the ring gives the key to another node (set directly: a
	// Migrate must match ZooKeeper, where only node1 is registered).
	if err := c.migrate(map[string]int{"other": 1}); err != nil {
		t.Fatal(err)
	}
	check("key of another node", dialSSE(t, addr, sseQuery("k", "30", "", "1")), 421, "-n\r\n")
	ok.expectClosed(5 * time.Second) // its key moved
	if err := c.migrate(map[string]int{"node1": 1}); err != nil {
		t.Fatal(err)
	}

	// Wrong method.
	resp, err := http.Post("http://"+addr+"/sse?key=k&heartbeat=30", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("POST: %s, want 405", resp.Status)
	}
	// A CORS preflight from an allowed origin.
	req, _ := http.NewRequest(http.MethodOptions, "http://"+addr+"/sse", nil)
	req.Header.Set("Origin", "https://good.example")
	req.Header.Set("Access-Control-Request-Headers", "last-event-id")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://good.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Last-Event-ID") {
		t.Errorf("preflight: %s %v", resp.Status, resp.Header)
	}
	testenv.WaitFor(t, 10*time.Second, "no sse connection left", func() bool { return c.stats.sseConns.Load() == 0 })
}

func TestSSEAuthUsesTheSameTokens(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Auth = true
	c := startComet(t, cfg)
	addr := c.WSAddrs()[0]
	cl := dialSSE(t, addr, sseQuery("authkey", "30", "tok", "1"))
	if cl.status != 403 || cl.body() != "-a\r\n" {
		t.Fatalf("no token added: status %d", cl.status)
	}
	var r int
	call(t, rpcClient(t, c), api.CometNew, &api.CometNewArgs{Key: "authkey", Token: "tok"}, &r)
	cl = dialSSE(t, addr, sseQuery("authkey", "30", "tok", "1"))
	if cl.status != 200 || cl.event() != ":+h\n\n" {
		t.Fatalf("with the token: status %d", cl.status)
	}
}

// Last-Event-ID: the stored messages after it come first, then the live
// ones, each mid once, in order; also while pushes go on during the
// resume.
func TestSSELastEventIDResumes(t *testing.T) {
	t.Parallel()
	c, fake, rc := cometWithFake(t, false)
	var mids []int64
	// A stream that records the mids, to learn them.
	rec := subscribeSSE(t, c, "resume", "1")
	for i := range 5 {
		push(t, rc, "resume", strconv.Itoa(i), 600)
		var mid int64
		if _, err := fmt.Sscanf(rec.event(), "id: %d\n", &mid); err != nil {
			t.Fatal(err)
		}
		mids = append(mids, mid)
	}
	// A client that saw the first two comes back.
	cl := subscribeSSE(t, c, "resume", "1", "Last-Event-ID: "+strconv.FormatInt(mids[1], 10))
	for i := 2; i < 5; i++ {
		want := sseEvent(mids[i], fmt.Sprintf(`{"msg":%d,"mid":%d,"gid":0}`, i, mids[i]))
		if got := cl.event(); got != want {
			t.Fatalf("resumed event %d: %q, want %q", i, got, want)
		}
	}
	push(t, rc, "resume", `"live"`, 0)
	if got := cl.event(); !strings.HasPrefix(got, "id: ") || !strings.Contains(got, `"msg":"live"`) {
		t.Fatalf("live event after the resume: %q", got)
	}
	// A message stored by a 1.0.5 node as web got it, across lines, is
	// still one data line.
	fake.mu.Lock()
	fake.record("resume", json.RawMessage("{\n  \"old\": 1\n}"), mids[4]+1)
	fake.mu.Unlock()
	old := subscribeSSE(t, c, "resume", "1", "Last-Event-ID: "+strconv.FormatInt(mids[4], 10))
	if got, want := old.event(), sseEvent(mids[4]+1, fmt.Sprintf(`{"msg":{"old":1},"mid":%d,"gid":0}`, mids[4]+1)); got != want {
		t.Fatalf("resumed multi-line message %q, want %q", got, want)
	}
	if n := c.stats.resumed.Load(); n != 4 {
		t.Errorf("sse_resumed %d, want 4", n)
	}

	if got := rec.event(); !strings.Contains(got, `"msg":"live"`) {
		t.Fatalf("recorder: %q", got)
	}

	// Pushes racing with resumes: every resumer gets every mid after its
	// Last-Event-ID exactly once, ascending, whether from the store or live.
	const pushes = 60
	mid := func(cl *sseClient) int64 {
		t.Helper()
		ev := cl.event()
		var m int64
		if _, err := fmt.Sscanf(ev, "id: %d\n", &m); err != nil {
			t.Fatalf("event %q has no id", ev)
		}
		return m
	}
	pushed := make(chan error, 1)
	go func() {
		for i := range pushes {
			var r int
			args := &api.CometPushPrivateArgs{Key: "resume", Msg: json.RawMessage(strconv.Itoa(100 + i)), Expire: 600}
			if err := rc.Call(t.Context(), api.CometPushPrivate, args, &r); err != nil {
				pushed <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		pushed <- nil
	}()
	var resumers []*sseClient
	for range 5 {
		resumers = append(resumers, subscribeSSE(t, c, "resume", "1", "Last-Event-ID: "+strconv.FormatInt(mids[4]+1, 10)))
		time.Sleep(10 * time.Millisecond)
	}
	var want []int64
	for range pushes {
		want = append(want, mid(rec))
	}
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	for i, cl := range resumers {
		for j, w := range want {
			if got := mid(cl); got != w {
				t.Fatalf("resumer %d, message %d: mid %d, want %d", i, j, got, w)
			}
		}
	}
}

func TestSSEResumeWithoutStorageIsAnHTTPError(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1")) // no message node
	cl := dialSSE(t, c.WSAddrs()[0], sseQuery("k", "30", "", "1"), "Last-Event-ID: 5")
	if cl.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", cl.status)
	}
	cl.body()
	cl.expectClosed(5 * time.Second)
	waitIdle(t, c)
}

// A client that never reads is closed when its queue fills, as a slow
// WebSocket client is; the others go on.
func TestSSESlowClientIsClosed(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Msgbuf.Num = 32
	cfg.Channel.Sndbuf.Size = 4096
	c := startComet(t, cfg)
	rc := rpcClient(t, c)
	slow := subscribeSSE(t, c, "shared", "1")
	_ = slow.nc.(*net.TCPConn).SetReadBuffer(4096)
	fast := subscribeSSE(t, c, "shared", "1")
	msg := `"` + strings.Repeat("x", 16<<10) + `"`
	for i := range 400 {
		push(t, rc, "shared", msg, 0)
		if ev := fast.event(); len(ev) < 16<<10 {
			t.Fatalf("message %d: %d bytes", i, len(ev))
		}
	}
	testenv.WaitFor(t, 10*time.Second, "the slow client to be closed", func() bool {
		return c.stats.slowClosed.Load() >= 1 && c.hub.count("shared") == 1
	})
	_ = slow.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, slow.br); err != nil {
		t.Fatalf("slow client: %v, want EOF", err)
	}
}

// A byte from the client ends the stream (it has nothing to say).
func TestSSEClientBytesCloseTheStream(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	cl := subscribeSSE(t, c, "talker", "1")
	cl.write([]byte("h"))
	cl.expectClosed(5 * time.Second)
	// Bytes pipelined behind the request are refused at once.
	pc := dialTCP(t, c.WSAddrs()[0])
	pc.write([]byte("GET /sse?key=p&heartbeat=30 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(pc.br), nil)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("pipelined request: %v %v", resp, err)
	}
	waitIdle(t, c)
}

func TestOnlineCountsEveryProtocol(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	subscribeTCP(t, c, "who", "", "1")
	subscribeWS(t, c, "who", "", "1")
	subscribeSSE(t, c, "who", "1")
	subscribeSSE(t, c, "other", "1")
	rc := rpcClient(t, c)
	var resp api.CometOnlineResp
	call(t, rc, api.CometOnline, &api.CometOnlineArgs{Keys: []string{"who", "nobody", "other", "who"}}, &resp)
	if fmt.Sprint(resp.Counts) != "[3 0 1 3]" || resp.Conns != 4 {
		t.Fatalf("Online: %v conns %d, want [3 0 1 3] and 4", resp.Counts, resp.Conns)
	}
	call(t, rc, api.CometOnline, &api.CometOnlineArgs{}, &resp)
	if len(resp.Counts) != 0 || resp.Conns != 4 {
		t.Fatalf("Online without keys: %v %d", resp.Counts, resp.Conns)
	}
	err := rc.Call(t.Context(), api.CometOnline, &api.CometOnlineArgs{Keys: make([]string, api.MaxOnlineKeys+1)}, &resp)
	if err == nil || !strings.Contains(err.Error(), "param: ") {
		t.Fatalf("too many keys: %v", err)
	}
}

// Many idle SSE streams: all counted, all reached by one broadcast, all
// freed when their clients go. (The 5 000-connection RSS figure is taken
// with cmd/comet-idle -sse-frac 1; docs/performance.md.)
func TestManyIdleSSEStreams(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	const n = 300
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	clients := make([]*sseClient, n)
	for i := range clients {
		clients[i] = subscribeSSE(t, c, "idle-"+strconv.Itoa(i), "1")
	}
	if got := c.stats.sseConns.Load(); got != n {
		t.Fatalf("%d sse connections counted, want %d", got, n)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("%d idle SSE streams: %.1f KiB of stack and %.1f KiB of heap per stream in this process (comet and clients together)",
		n, float64(after.StackInuse-before.StackInuse)/1024/n, float64(int64(after.HeapInuse)-int64(before.HeapInuse))/1024/n)
	var r int
	call(t, rpcClient(t, c), api.CometBroadcast, &api.CometBroadcastArgs{Msg: json.RawMessage(`"all"`), MsgId: 7}, &r)
	for i, cl := range clients {
		if got := cl.event(); got != "data: {\"msg\":\"all\",\"mid\":7,\"gid\":1}\n\n" {
			t.Fatalf("stream %d: %q", i, got)
		}
	}
	for _, cl := range clients {
		cl.nc.Close()
	}
	waitIdle(t, c)
}

// Over HTTP/2 (what a browser negotiates with a TLS listener that offers
// h2) the connection cannot be taken over: the stream goes through
// net/http with the same bytes, errors and heartbeats, and ends when the
// client goes.
func TestSSEOverHTTP2(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	c := New(cfg, newTestLogger(t))
	c.sseBeat = 300 * time.Millisecond
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(t.Context()) })
	srv := httptest.NewUnstartedServer(c.wsMux())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	hc := srv.Client()

	resp, err := hc.Get(srv.URL + "/sse?heartbeat=30")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 400 || string(body) != "-p\r\n" {
		t.Fatalf("no key over h2: %s %d %q", resp.Proto, resp.StatusCode, body)
	}

	resp, err = hc.Get(srv.URL + "/sse?" + sseQuery("h2key", "30", "", "1").Encode())
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream over h2: %s %d %v", resp.Proto, resp.StatusCode, resp.Header)
	}
	br := bufio.NewReader(resp.Body)
	read := func() string {
		t.Helper()
		var b strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v (%q)", err, b.String())
			}
			b.WriteString(line)
			if line == "\n" {
				return b.String()
			}
		}
	}
	if got := read(); got != ":+h\n\n" {
		t.Fatalf("first event %q", got)
	}
	push(t, rpcClient(t, c), "h2key", `{"h":2}`, 0)
	got := read()
	var mid int64
	if _, err := fmt.Sscanf(got, "id: %d\n", &mid); err != nil || got != sseEvent(mid, fmt.Sprintf(`{"msg":{"h":2},"mid":%d,"gid":0}`, mid)) {
		t.Fatalf("event %q", got)
	}
	if got := read(); got != ":h\n\n" {
		t.Fatalf("heartbeat %q", got)
	}
	if n := c.hub.count("h2key"); n != 1 {
		t.Fatalf("h2key has %d connections", n)
	}
	resp.Body.Close()
	testenv.WaitFor(t, 10*time.Second, "the h2 stream to be freed", func() bool {
		return c.stats.sseConns.Load() == 0 && c.hub.count("h2key") == 0
	})
}
