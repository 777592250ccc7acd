package client

// Tests against a real cluster: message, comets and web started from the
// built binaries, with the private ZooKeeper and Redis of `make test`.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopush/conf"
	"gopush/internal/testenv"
	"gopush/ketama"
)

// pushed is one push attempt: its payload is unique, so a message can be
// told from a retry of the same one.
type pushed struct {
	n, try int
}

func payload(p pushed) string { return fmt.Sprintf(`{"n":%d,"try":%d}`, p.n, p.try) }

// pushAll pushes count messages to key with expire > 0, one after another,
// retrying each one that web refuses (as a backend would) until it is
// accepted. afterAccepted is called with the number accepted so far.
func pushAll(t *testing.T, admin, key string, count int, afterAccepted func(int)) (accepted []pushed, refused []pushed) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for n := range count {
		for try := 0; ; try++ {
			p := pushed{n, try}
			ret, err := testenv.Push(admin, key, payload(p), 600)
			if err == nil && ret == 0 {
				accepted = append(accepted, p)
				break
			}
			refused = append(refused, p)
			if time.Now().After(deadline) {
				t.Fatalf("push %d still refused after 90s: ret %d err %v", n, ret, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if afterAccepted != nil {
			afterAccepted(len(accepted))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return accepted, refused
}

// gatedTransport refuses /1/server/get while closed.
type gatedTransport struct {
	closed atomic.Bool
	rt     *http.Transport
}

func (g *gatedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if g.closed.Load() && r.URL.Path == "/1/server/get" {
		return nil, errors.New("closed by the test")
	}
	return g.rt.RoundTrip(r)
}

// waitServed waits until web says some comet serves key over TCP.
func waitServed(t *testing.T, web, key, want string) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "web to route "+key+" to "+want, func() bool {
		s, _, err := testenv.ServerOf("http://"+web, key, "2")
		return err == nil && (s == want || (want == "" && s != ""))
	})
}

// A subscriber whose comet is killed while 100 messages are pushed to it
// gets every accepted message exactly once, in mid order: the ones pushed
// while it was connected online, the others from the offline fetch after it
// reconnected to the standby comet that took over.
func TestClusterCometKilled(t *testing.T) {
	for _, proto := range []string{TCP, WebSocket} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			cl := testenv.NewCluster(t)
			cl.StartMessage(func(cfg *conf.Message) { cfg.Storage.Store = 300 })
			serving := cl.StartComet("node1", 1)
			web := cl.StartWeb()
			key := testenv.Unique(t)
			waitServed(t, web.HTTP, key, serving.TCP)
			// The standby registers after the serving one, so it sorts last.
			standby := cl.StartComet("node1", 1)

			// While the gate is closed the client cannot find a comet, so
			// what is pushed meanwhile can only reach it offline.
			gate := &gatedTransport{rt: http.DefaultTransport.(*http.Transport).Clone()}
			defer gate.rt.CloseIdleConnections()
			var mu sync.Mutex
			var comets []string
			connected := make(chan string, 10)
			c := start(t, Config{
				Web: "http://" + web.HTTP, Key: key, Proto: proto,
				MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
				HTTPClient: &http.Client{Transport: gate, Timeout: 10 * time.Second},
				OnConnect: func(s string) {
					mu.Lock()
					comets = append(comets, s)
					mu.Unlock()
					// Never block the client: a test that fails
					// early must still be able to close it.
					select {
					case connected <- s:
					default:
					}
				},
			})
			first := serving.TCP
			if proto == WebSocket {
				first = serving.WS
			}
			select {
			case s := <-connected:
				if s != first {
					t.Fatalf("subscribed to %s, want the serving comet %s", s, first)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("client did not subscribe within 30s")
			}

			var got []Message
			var received atomic.Int64
			gotAll := make(chan struct{})
			var recvDone sync.WaitGroup
			recvDone.Go(func() {
				for m := range c.Messages() {
					got = append(got, m)
					received.Add(1)
					if len(got) == 100 {
						close(gotAll)
					}
				}
			})
			accepted, refused := pushAll(t, web.Admin, key, 100, func(n int) {
				switch n {
				case 30:
					// The first 30 arrive online; then the comet dies.
					testenv.WaitFor(t, 30*time.Second, "30 messages online", func() bool { return received.Load() >= 30 })
					gate.closed.Store(true)
					serving.Kill()
				case 50:
					gate.closed.Store(false)
				}
			})
			select {
			case <-gotAll:
			case <-time.After(60 * time.Second):
			}
			// Anything more (a duplicate) would show within a moment.
			time.Sleep(300 * time.Millisecond)
			c.Close()
			recvDone.Wait()

			want := make(map[string]bool)
			for _, p := range accepted {
				want[payload(p)] = true
			}
			maybe := make(map[string]bool) // refused pushes may still have been stored
			for _, p := range refused {
				maybe[payload(p)] = true
			}
			seen := make(map[string]bool)
			var last int64
			for i, m := range got {
				if m.Mid <= last {
					t.Errorf("message %d: mid %d not above the previous %d", i, m.Mid, last)
				}
				last = m.Mid
				var p pushed
				var body struct{ N, Try int }
				if err := json.Unmarshal(m.Msg, &body); err != nil {
					t.Errorf("message %d: %s is not what was pushed: %v", i, m.Msg, err)
					continue
				}
				p = pushed{body.N, body.Try}
				s := payload(p)
				if seen[s] {
					t.Errorf("message %s delivered twice", s)
				}
				seen[s] = true
				if !want[s] && !maybe[s] {
					t.Errorf("message %s was never pushed", s)
				}
			}
			for _, p := range accepted {
				if !seen[payload(p)] {
					t.Errorf("accepted message %s never delivered", payload(p))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			st := c.Stats()
			t.Logf("%d accepted, %d refused while no comet served the key, %d delivered (%d online, %d offline), comets %v",
				len(accepted), len(refused), len(got), st.Online, st.Offline, comets)
			// 30 were pushed before the kill and 20 while the client could
			// not find a comet. A few of the first may still come through
			// the fetch that follows the first subscribe (and the online
			// copy is then the duplicate), so allow some slack online.
			if st.Online < 20 || st.Offline < 20 {
				t.Errorf("delivered %d online and %d offline, want at least 20 of each (30 pushed before the kill, 20 while away)", st.Online, st.Offline)
			}
			second := standby.TCP
			if proto == WebSocket {
				second = standby.WS
			}
			if len(comets) < 2 || comets[len(comets)-1] != second {
				t.Errorf("client subscribed to %v, want it on the standby %s at the end", comets, second)
			}
		})
	}
}

// Two message nodes of different weights: offline messages are stored and
// read back whichever node each call picks, and stopping one node loses no
// push, because comet and web stop calling it.
func TestClusterTwoMessageNodes(t *testing.T) {
	t.Parallel()
	cl := testenv.NewCluster(t)
	cl.StartMessage(func(cfg *conf.Message) { cfg.Storage.Store = 300 })
	heavy := cl.StartMessage(func(cfg *conf.Message) { cfg.Node.Weight = 3; cfg.Storage.Store = 300 })
	comet := cl.StartComet("node1", 1)
	web := cl.StartWeb()
	key := testenv.Unique(t)
	waitServed(t, web.HTTP, key, comet.TCP)
	base := "http://" + web.HTTP

	push := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			ret, err := testenv.Push(web.Admin, key, fmt.Sprintf(`{"i":%d}`, i), 600)
			if err != nil || ret != 0 {
				t.Fatalf("push %d: ret %d err %v", i, ret, err)
			}
		}
	}
	// readAll reads the stored messages several times: each read may go to
	// either node, and each must return all of them in mid order.
	readAll := func(count int) {
		t.Helper()
		for r := range 8 {
			a, err := testenv.WebGet(base, "/1/msg/get", url.Values{"k": {key}, "m": {"0"}})
			if err != nil || a.Ret != 0 {
				t.Fatalf("read %d: ret %v err %v", r, a, err)
			}
			var d struct {
				Msgs []struct {
					Msg struct{ I int }
					Mid int64
				}
			}
			if err := json.Unmarshal(a.Data, &d); err != nil {
				t.Fatal(err)
			}
			if len(d.Msgs) != count {
				t.Fatalf("read %d: %d messages, want %d", r, len(d.Msgs), count)
			}
			for i, m := range d.Msgs {
				if m.Msg.I != i {
					t.Fatalf("read %d: message %d is %d", r, i, m.Msg.I)
				}
				if i > 0 && m.Mid <= d.Msgs[i-1].Mid {
					t.Fatalf("read %d: mids not ascending at %d", r, i)
				}
			}
		}
	}
	push(0, 40)
	readAll(40)

	// Stop the heavier node (it would get three calls in four).
	if code := heavy.Stop(); code != 0 {
		t.Errorf("message exited with %d", code)
	}
	push(40, 80)
	readAll(80)

	// A subscriber gets all of them, once each, from the offline store.
	c := start(t, Config{Web: base, Key: key})
	for i := range 80 {
		m := recv(t, c)
		var body struct{ I int }
		if err := json.Unmarshal(m.Msg, &body); err != nil || body.I != i {
			t.Fatalf("message %d: %s", i, m.Msg)
		}
	}
	noMore(t, c)
}

// With auth = true on comet, a client without a valid token is refused (-a,
// reported through OnError) and keeps trying; once the token is added
// through web's /1/token/add, it subscribes and receives.
func TestClusterToken(t *testing.T) {
	t.Parallel()
	cl := testenv.NewCluster(t)
	cl.StartMessage()
	comet := cl.StartComet("node1", 1, func(cfg *conf.Comet) { cfg.Channel.Auth = true })
	web := cl.StartWeb()
	key := testenv.Unique(t)
	waitServed(t, web.HTTP, key, comet.TCP)

	for _, proto := range []string{TCP, WebSocket} {
		refusedErr := make(chan error, 100)
		c := start(t, Config{Web: "http://" + web.HTTP, Key: key, Token: "secret-" + proto, Proto: proto,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			OnError: func(err error) {
				select {
				case refusedErr <- err:
				default:
				}
			}})
		select {
		case err := <-refusedErr:
			var se *ServerError
			if !errors.As(err, &se) || se.Code != 'a' {
				t.Fatalf("%s: error %v, want -a (token refused)", proto, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no error reported for a missing token", proto)
		}
		if c.Stats().Subscribes != 0 {
			t.Fatalf("%s: subscribed without a token", proto)
		}

		resp, err := http.Get("http://" + web.Admin + "/1/token/add?" + url.Values{"k": {key}, "t": {"secret-" + proto}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		testenv.WaitFor(t, 30*time.Second, proto+" client to subscribe with its token", func() bool {
			return c.Stats().Subscribes > 0
		})
		if ret, err := testenv.Push(web.Admin, key, `{"auth":"`+proto+`"}`, 0); err != nil || ret != 0 {
			t.Fatalf("push: ret %d err %v", ret, err)
		}
		if m := recv(t, c); string(m.Msg) != `{"auth":"`+proto+`"}` {
			t.Fatalf("%s: got %s", proto, m.Msg)
		}
		c.Close()
	}
}

// When a new comet joins and the ring gives it the key, the old comet
// closes the connection (migration); the client follows the key to the new
// comet and misses nothing.
func TestClusterMigration(t *testing.T) {
	t.Parallel()
	cl := testenv.NewCluster(t)
	cl.StartMessage()
	old := cl.StartComet("node1", 1)
	web := cl.StartWeb()
	// A key that the ring of both nodes gives to node2.
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 3})
	var key string
	for i := 0; ; i++ {
		key = fmt.Sprintf("%s-%d", testenv.Unique(t), i)
		if ring.Get(key) == "node2" {
			break
		}
	}
	waitServed(t, web.HTTP, key, old.TCP)
	c := start(t, Config{Web: "http://" + web.HTTP, Key: key,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	testenv.WaitFor(t, 30*time.Second, "the client to subscribe", func() bool { return c.Comet() == old.TCP })

	accepted, _ := pushAll(t, web.Admin, key, 10, nil)
	newer := cl.StartComet("node2", 3)
	testenv.WaitFor(t, 30*time.Second, "the client to follow its key to node2", func() bool { return c.Comet() == newer.TCP })
	more, _ := pushAll(t, web.Admin, key, 10, nil) // n 0..9 again
	accepted = append(accepted, more...)

	var last int64
	for i, p := range accepted {
		m := recv(t, c)
		var body struct{ N, Try int }
		if err := json.Unmarshal(m.Msg, &body); err != nil || (pushed{body.N, body.Try}) != p || m.Mid <= last {
			t.Fatalf("message %d: %s mid %d (previous %d), want %s", i, m.Msg, m.Mid, last, payload(p))
		}
		last = m.Mid
	}
	noMore(t, c)
	if s := c.Stats(); s.Subscribes < 2 {
		t.Errorf("Stats %+v: want a second subscription", s)
	}
}
