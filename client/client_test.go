package client

import (
	"errors"
	"fmt"
	"gopush/api"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (the clients'
// included), once the shared HTTP client's idle connections are closed.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// big mids, above 2^53, as real ones are.
const base = int64(17_000_000_000_000_000)

type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) add(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *errLog) list() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func start(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 10 * time.Millisecond
		cfg.MaxBackoff = 50 * time.Millisecond
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *Client) Message {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatal("Messages closed")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return Message{}
}

// noMore checks that nothing else is delivered for a short while.
func noMore(t *testing.T, c *Client) {
	t.Helper()
	select {
	case m := <-c.Messages():
		t.Fatalf("unexpected message mid=%d msg=%s", m.Mid, m.Msg)
	case <-time.After(200 * time.Millisecond):
	}
}

func expect(t *testing.T, c *Client, mid int64, msg string) {
	t.Helper()
	m := recv(t, c)
	if m.Mid != mid || string(m.Msg) != msg {
		t.Fatalf("got mid=%d msg=%s, want mid=%d msg=%s", m.Mid, m.Msg, mid, msg)
	}
}

func TestSubscribeAndReceive(t *testing.T) {
	for _, proto := range []string{TCP, WebSocket} {
		t.Run(proto, func(t *testing.T) {
			web := newFakeWeb(t)
			comet := newFakeComet(t, proto)
			web.setServers(comet.addr)
			var connected []string
			var mu sync.Mutex
			c := start(t, Config{Web: web.srv.URL, Key: "Terry-Mao", Token: "tok", Proto: proto,
				OnConnect: func(s string) { mu.Lock(); connected = append(connected, s); mu.Unlock() }})
			s := comet.next(t)
			if want := (api.Subscribe{Key: "Terry-Mao", Heartbeat: 30, Token: "tok", Version: DefaultVersion}); s.sub != want {
				t.Fatalf("subscribe %+v, want %+v", s.sub, want)
			}
			wantP := "2"
			if proto == WebSocket {
				wantP = "1"
			}
			web.mu.Lock()
			if web.protos[0] != wantP {
				t.Errorf("/1/server/get p=%s, want %s", web.protos[0], wantP)
			}
			web.mu.Unlock()
			s.push(t, msgJSON(base+1, `{"test":1}`))
			s.push(t, msgJSON(base+2, `"text"`))
			s.push(t, msgJSON(base+3, `[1,2,{"a":"b"}]`))
			expect(t, c, base+1, `{"test":1}`)
			expect(t, c, base+2, `"text"`)
			expect(t, c, base+3, `[1,2,{"a":"b"}]`)
			if c.LastMid() != base+3 {
				t.Errorf("LastMid %d, want %d", c.LastMid(), base+3)
			}
			if c.Comet() != comet.addr {
				t.Errorf("Comet() %q, want %q", c.Comet(), comet.addr)
			}
			mu.Lock()
			if !slices.Equal(connected, []string{comet.addr}) {
				t.Errorf("OnConnect calls %q", connected)
			}
			mu.Unlock()
			if g := web.msgGets(); !slices.Equal(g, []string{"0"}) {
				t.Errorf("/1/msg/get calls with m=%q, want one with m=0", g)
			}
			c.Close()
			if _, ok := <-c.Messages(); ok {
				t.Error("Messages not closed after Close")
			}
			select {
			case <-s.gone:
			case <-time.After(10 * time.Second):
				t.Error("connection still open after Close")
			}
		})
	}
}

func TestHeartbeats(t *testing.T) {
	for _, proto := range []string{TCP, WebSocket} {
		t.Run(proto, func(t *testing.T) {
			web := newFakeWeb(t)
			comet := newFakeComet(t, proto)
			web.setServers(comet.addr)
			start(t, Config{Web: web.srv.URL, Key: "k", Proto: proto, Heartbeat: 45 * time.Second,
				heartbeatEvery: 20 * time.Millisecond, readTimeout: 5 * time.Second})
			s := comet.next(t)
			if s.sub.Heartbeat != 45 {
				t.Errorf("heartbeat sent as %d, want 45", s.sub.Heartbeat)
			}
			for i := range 5 {
				select {
				case <-s.heartbeats:
				case <-time.After(10 * time.Second):
					t.Fatalf("heartbeat %d not received", i)
				}
			}
			select {
			case <-comet.subs:
				t.Fatal("client reconnected although comet answered its heartbeats")
			default:
			}
		})
	}
}

// A comet that stops answering is left, and the client comes back through
// /1/server/get.
func TestSilentCometIsLeft(t *testing.T) {
	web := newFakeWeb(t)
	comet := newFakeComet(t, TCP)
	comet.set(func(c *fakeComet) { c.silent = true })
	web.setServers(comet.addr)
	start(t, Config{Web: web.srv.URL, Key: "k",
		heartbeatEvery: 20 * time.Millisecond, readTimeout: 200 * time.Millisecond})
	s := comet.next(t)
	select {
	case <-s.gone:
	case <-time.After(10 * time.Second):
		t.Fatal("client kept a silent connection")
	}
	comet.next(t)
}

// After a disconnect the client reconnects, fetches what it missed with the
// last mid it delivered, and delivers each message once, in order, even when
// web and comet hand it messages it already has.
func TestReconnectFetchesMissedOnce(t *testing.T) {
	for _, proto := range []string{TCP, WebSocket} {
		t.Run(proto, func(t *testing.T) {
			web := newFakeWeb(t)
			comet1 := newFakeComet(t, proto)
			comet2 := newFakeComet(t, proto)
			web.setServers(comet1.addr)
			var errs errLog
			c := start(t, Config{Web: web.srv.URL, Key: "k", Proto: proto, OnError: errs.add})
			s := comet1.next(t)
			s.push(t, msgJSON(base+1, `1`))
			s.push(t, msgJSON(base+2, `2`))
			expect(t, c, base+1, `1`)
			expect(t, c, base+2, `2`)

			// Stored while the client is away; web (misbehaving) also
			// returns the ones it already has, out of order.
			web.store(wm(base+4, `4`), wm(base+1, `1`), wm(base+2, `2`), wm(base+3, `3`), wm(base+5, `5`))
			web.setServers(comet2.addr)
			s.close()
			s2 := comet2.next(t)
			expect(t, c, base+3, `3`)
			expect(t, c, base+4, `4`)
			expect(t, c, base+5, `5`)
			// Online again: a duplicate of a fetched one, then a new one.
			s2.push(t, msgJSON(base+5, `5`))
			s2.push(t, msgJSON(base+6, `6`))
			expect(t, c, base+6, `6`)
			noMore(t, c)
			if st := c.Stats(); st != (Stats{Subscribes: 2, Online: 3, Offline: 3}) {
				t.Errorf("Stats %+v, want 2 subscribes, 3 online, 3 offline", st)
			}
			gets := web.msgGets()
			if len(gets) != 2 || gets[0] != "0" || gets[1] != "17000000000000002" {
				t.Errorf("/1/msg/get calls with m=%q, want [0 17000000000000002]", gets)
			}
			if len(errs.list()) == 0 {
				t.Error("OnError not told about the lost connection")
			}
		})
	}
}

// Messages that arrive online while the offline fetch is in flight come
// after the fetched ones, each once.
func TestOnlineDuringFetch(t *testing.T) {
	web := newFakeWeb(t)
	comet := newFakeComet(t, TCP)
	web.setServers(comet.addr)
	block := make(chan struct{})
	web.mu.Lock()
	web.msgBlock = block
	web.mu.Unlock()
	web.store(wm(base+1, `"a"`), wm(base+2, `"b"`))
	c := start(t, Config{Web: web.srv.URL, Key: "k", LastMid: base})
	s := comet.next(t)
	s.push(t, msgJSON(base+2, `"b"`))
	s.push(t, msgJSON(base+3, `"c"`))
	// Until the fetch answers, nothing may be delivered.
	noMore(t, c)
	close(block)
	expect(t, c, base+1, `"a"`)
	expect(t, c, base+2, `"b"`)
	expect(t, c, base+3, `"c"`)
	noMore(t, c)
	if g := web.msgGets(); g[0] != "17000000000000000" {
		t.Errorf("first fetch m=%s, want Config.LastMid", g[0])
	}
}

// Comet's error replies and web's error codes are reported, and the client
// keeps trying through /1/server/get until a comet accepts it.
func TestErrorsAreReportedAndRetried(t *testing.T) {
	for _, proto := range []string{TCP, WebSocket} {
		t.Run(proto, func(t *testing.T) {
			web := newFakeWeb(t)
			wrong := newFakeComet(t, proto)
			wrong.set(func(c *fakeComet) { c.reply = "-n" })
			refusing := newFakeComet(t, proto)
			refusing.set(func(c *fakeComet) { c.reply = "-a" })
			good := newFakeComet(t, proto)
			// no comet, wrong comet, token refused, then the right one.
			web.setServers("", wrong.addr, refusing.addr, good.addr)
			var errs errLog
			c := start(t, Config{Web: web.srv.URL, Key: "k", Proto: proto, OnError: errs.add})
			s := good.next(t)
			s.push(t, msgJSON(base+1, `{}`))
			expect(t, c, base+1, `{}`)
			got := errs.list()
			if len(got) != 3 {
				t.Fatalf("errors reported: %v, want 3", got)
			}
			var api *APIError
			if !errors.As(got[0], &api) || api.Ret != RetNoNode {
				t.Errorf("first error %v, want APIError 1001", got[0])
			}
			var se *ServerError
			if !errors.As(got[1], &se) || se.Code != 'n' || se.Comet != wrong.addr {
				t.Errorf("second error %v, want -n from %s", got[1], wrong.addr)
			}
			if !errors.As(got[2], &se) || se.Code != 'a' || !strings.Contains(got[2].Error(), "token refused") {
				t.Errorf("third error %v, want -a", got[2])
			}
		})
	}
}

// Garbage from comet ends that connection; the client reconnects and
// carries on.
func TestBadFramesFromComet(t *testing.T) {
	bad := map[string]string{
		"not json":       "$5\r\nhello\r\n",
		"no mid":         "$10\r\n{\"msg\":{}}\r\n",
		"negative len":   "$-3\r\n",
		"huge len":       "$99999999999\r\n",
		"unknown reply":  "+x\r\n",
		"no crlf":        "$2\r\n{}xx",
		"bare newline":   "+h\n",
		"unknown prefix": "!h\r\n",
	}
	for name, frame := range bad {
		t.Run(name, func(t *testing.T) {
			web := newFakeWeb(t)
			comet := newFakeComet(t, TCP)
			web.setServers(comet.addr)
			var errs errLog
			c := start(t, Config{Web: web.srv.URL, Key: "k", OnError: errs.add})
			s := comet.next(t)
			// raw write, bypassing the bulk framing of push
			s.write2(t, frame)
			select {
			case <-s.gone:
			case <-time.After(10 * time.Second):
				t.Fatal("client kept a connection that sent garbage")
			}
			s2 := comet.next(t)
			s2.push(t, msgJSON(base+1, `1`))
			expect(t, c, base+1, `1`)
			if len(errs.list()) == 0 {
				t.Error("garbage not reported")
			}
		})
	}
}

// Bad answers from web are reported and retried.
func TestBadWebAnswers(t *testing.T) {
	web := newFakeWeb(t)
	comet := newFakeComet(t, TCP)
	web.setServers(comet.addr)
	web.mu.Lock()
	web.rawSrv = []string{`not json`, `{"data":{"server":"x"}}`, `{"ret":0}`, `{"ret":0,"data":{"server":5}}`, `{"ret":65535}`}
	web.rawMsg = `{"ret":0,"data":{"msgs":[{"msg":{},"mid":"x"}]}}`
	web.mu.Unlock()
	var errs errLog
	c := start(t, Config{Web: web.srv.URL, Key: "k", OnError: errs.add})
	s := comet.next(t)
	// the bad fetch ends the session; the client comes back.
	select {
	case <-s.gone:
	case <-time.After(10 * time.Second):
		t.Fatal("session kept after a bad /1/msg/get answer")
	}
	web.mu.Lock()
	web.rawMsg = ""
	web.mu.Unlock()
	s2 := comet.next(t)
	s2.push(t, msgJSON(base+1, `1`))
	expect(t, c, base+1, `1`)
	got := errs.list()
	if len(got) < 6 {
		t.Fatalf("errors reported: %v, want at least 6", got)
	}
	for i, want := range []string{"not JSON", "no ret", "no server", "bad data", "ret 65535", "/1/msg/get"} {
		if !strings.Contains(got[i].Error(), want) {
			t.Errorf("error %d = %q, want it to mention %q", i, got[i], want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]Config{
		"no web":         {Key: "k"},
		"bad scheme":     {Web: "ftp://x", Key: "k"},
		"no key":         {Web: "http://x"},
		"bad proto":      {Web: "http://x", Key: "k", Proto: "udp"},
		"short hb":       {Web: "http://x", Key: "k", Heartbeat: 10 * time.Second},
		"fractional hb":  {Web: "http://x", Key: "k", Heartbeat: 30500 * time.Millisecond},
		"neg mid":        {Web: "http://x", Key: "k", LastMid: -1},
		"backoff order":  {Web: "http://x", Key: "k", MinBackoff: time.Second, MaxBackoff: time.Millisecond},
		"empty host url": {Web: "http://", Key: "k"},
	}
	for name, cfg := range cases {
		if c, err := New(cfg); err == nil {
			c.Close()
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	// A URL without a scheme gets http://.
	web := newFakeWeb(t)
	comet := newFakeComet(t, TCP)
	web.setServers(comet.addr)
	start(t, Config{Web: strings.TrimPrefix(web.srv.URL, "http://") + "/", Key: "k"})
	comet.next(t)
}

// Close stops a client that is in the middle of anything: waiting for web,
// backing off, or delivering to a reader that does not read.
func TestCloseWhileBusy(t *testing.T) {
	web := newFakeWeb(t)
	comet := newFakeComet(t, TCP)
	web.setServers(comet.addr)
	c := start(t, Config{Web: web.srv.URL, Key: "k", Buffer: 1})
	s := comet.next(t)
	for i := range 5 {
		s.push(t, msgJSON(base+int64(i)+1, `0`))
	}
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked while the reader was not reading")
	}

	// backing off for a long time
	web2 := newFakeWeb(t)
	c2 := start(t, Config{Web: web2.srv.URL, Key: "k", MinBackoff: time.Hour, MaxBackoff: time.Hour})
	time.Sleep(50 * time.Millisecond)
	done2 := make(chan struct{})
	go func() { c2.Close(); close(done2) }()
	select {
	case <-done2:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked during a backoff")
	}
}

// Public messages (gid 1) have mids of their own sequence: they are
// deduplicated among themselves, never against the private ones, and the
// offline fetch asks for both with their own last mids.
func TestPublicMessages(t *testing.T) {
	web := newFakeWeb(t)
	comet := newFakeComet(t, WebSocket)
	web.setServers(comet.addr)
	pub := func(mid int64, msg string) string {
		return fmt.Sprintf(`{"msg":%s,"mid":%d,"gid":1}`, msg, mid)
	}
	c := start(t, Config{Web: web.srv.URL, Key: "k", Proto: WebSocket, LastPublicMid: 7})
	s := comet.next(t)
	s.push(t, msgJSON(base+10, `"p10"`))
	expect(t, c, base+10, `"p10"`)   // the first fetch is over: what follows comes online
	s.push(t, pub(base+5, `"all5"`)) // below the last private mid: still new
	s.push(t, msgJSON(base+11, `"p11"`))
	s.push(t, pub(base+5, `"all5"`)) // a duplicate
	s.push(t, pub(base+6, `"all6"`))
	for _, want := range []struct {
		mid int64
		gid int
		msg string
	}{{base + 5, 1, `"all5"`}, {base + 11, 0, `"p11"`}, {base + 6, 1, `"all6"`}} {
		m := recv(t, c)
		if m.Mid != want.mid || m.Gid != want.gid || string(m.Msg) != want.msg {
			t.Fatalf("got %d/%d %s, want %d/%d %s", m.Mid, m.Gid, m.Msg, want.mid, want.gid, want.msg)
		}
	}
	if c.LastMid() != base+11 || c.LastPublicMid() != base+6 {
		t.Fatalf("LastMid %d LastPublicMid %d", c.LastMid(), c.LastPublicMid())
	}

	// Away: one private and two public stored, one public already seen.
	web.store(wm(base+12, `"p12"`))
	web.mu.Lock()
	web.public = []api.Message{wm(base+6, `"all6"`), wm(base+7, `"all7"`), wm(base+13, `"all13"`)}
	web.mu.Unlock()
	s.close()
	comet.next(t)
	expect(t, c, base+7, `"all7"`)
	expect(t, c, base+12, `"p12"`)
	expect(t, c, base+13, `"all13"`)
	noMore(t, c)
	web.mu.Lock()
	defer web.mu.Unlock()
	if !slices.Equal(web.pms, []string{"7", "17000000000000006"}) {
		t.Errorf("/1/msg/get pm=%q, want [7 17000000000000006]", web.pms)
	}
}

// A message pushed with expire 0 (so in no fetch) that arrives while the
// offline fetch is in flight is delivered in its place among the fetched
// ones.
func TestUnstoredDuringFetch(t *testing.T) {
	web := newFakeWeb(t)
	comet := newFakeComet(t, TCP)
	web.setServers(comet.addr)
	block := make(chan struct{})
	web.mu.Lock()
	web.msgBlock = block
	web.mu.Unlock()
	web.store(wm(base+1, `"stored 1"`), wm(base+3, `"stored 3"`))
	c := start(t, Config{Web: web.srv.URL, Key: "k"})
	s := comet.next(t)
	s.push(t, msgJSON(base+2, `"online only"`))
	s.push(t, msgJSON(base+3, `"stored 3"`))
	time.Sleep(100 * time.Millisecond) // let the client read them
	close(block)
	expect(t, c, base+1, `"stored 1"`)
	expect(t, c, base+2, `"online only"`)
	expect(t, c, base+3, `"stored 3"`)
	noMore(t, c)
	if st := c.Stats(); st.Online != 1 || st.Offline != 2 {
		t.Errorf("Stats %+v, want 1 online and 2 offline", st)
	}
}
