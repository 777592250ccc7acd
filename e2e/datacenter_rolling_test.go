package e2e

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopush/client"
	"gopush/internal/testenv"
	"gopush/ketama"
)

// rollSub is one of many Go clients of the rolling restart; it counts
// what it receives by mid and by message.
type rollSub struct {
	key   string
	cl    *client.Client
	mu    sync.Mutex
	byMid map[int64]int
	byMsg map[string]int
}

// missingOrDup returns the messages of want that s has not received, and
// what it received more than once (by mid or by message).
func (s *rollSub) missingOrDup(want []string) (missing, dups []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range want {
		if s.byMsg[m] == 0 {
			missing = append(missing, m)
		}
	}
	for m, n := range s.byMsg {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s ×%d", m, n))
		}
	}
	for mid, n := range s.byMid {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("mid %d ×%d", mid, n))
		}
	}
	return missing, dups
}

// Scenario 5 of docs/reliability.md: a rolling restart of everything —
// each of three ZooKeeper servers, the message node, each comet and each
// web, one at a time — under a steady push load (expire > 0) from two
// backends through nginx in front of both webs, with 1000 Go clients that
// find their comet through nginx too. At the end every push answered ret 0
// has reached its subscriber (online or through the offline fetch), none
// twice, and every subscriber is connected to its key's comet.
func TestDatacenterRollingRestart(t *testing.T) {
	const subscribers = 1000
	start := time.Now()
	c := startDCCluster(t, 3)
	// nginx (in the test's own namespace, reaching the webs over the
	// bridge) never marks a web failed (max_fails=0): a request whose
	// connection a stopped web refuses goes to the other web at once,
	// which is what a rolling restart relies on.
	public, admin := testenv.FreeAddr(t), testenv.FreeAddr(t)
	testenv.StartNginx(t, fmt.Sprintf(`
upstream gp_public {
    server %s max_fails=0;
    server %s max_fails=0;
}
upstream gp_admin {
    server %s max_fails=0;
    server %s max_fails=0;
}
server {
    listen %s;
    location / {
        proxy_pass http://gp_public;
        proxy_connect_timeout 1s;
        proxy_next_upstream error timeout http_502;
    }
}
server {
    listen %s;
    location / {
        proxy_pass http://gp_admin;
        proxy_connect_timeout 1s;
    }
}
`, c.web1.Addr(8090), c.web2.Addr(8090), c.web1.Addr(8091), c.web2.Addr(8091), public, admin), public, admin)
	c.waitRing(t)

	// The subscribers share one HTTP client (their calls to web through
	// nginx); each has a goroutine counting what it gets.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 100
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	subs := make([]*rollSub, subscribers)
	keys := make([]string, subscribers)
	for i := range subs {
		keys[i] = fmt.Sprintf("rr%d", i)
		cl, err := client.New(client.Config{Web: "http://" + public, Key: keys[i], HTTPClient: hc,
			MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second, Buffer: 256})
		if err != nil {
			t.Fatal(err)
		}
		s := &rollSub{key: keys[i], cl: cl, byMid: map[int64]int{}, byMsg: map[string]int{}}
		go func() { // ends when the client is closed
			for m := range cl.Messages() {
				s.mu.Lock()
				s.byMid[m.Mid]++
				s.byMsg[string(m.Msg)]++
				s.mu.Unlock()
			}
		}()
		subs[i] = s
	}
	t.Cleanup(func() {
		for _, s := range subs {
			s.cl.Close()
		}
	})
	// Each key's comet, with both comets on the ring (the ring of
	// docs/protocol.md §6.1; the end of the test checks that web agrees).
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"comet1": 1, "comet2": 1})
	tcp := map[string]string{"comet1": c.comet1.Addr(6969), "comet2": c.comet2.Addr(6969)}
	// allHome counts the subscribers not connected to their key's comet.
	allHome := func() (int, bool) {
		away := 0
		for _, s := range subs {
			if s.cl.Comet() != tcp[ring.Get(s.key)] {
				away++
			}
		}
		return away, away == 0
	}
	waitSubscribers := func(what string) time.Duration {
		t.Helper()
		from := time.Now()
		deadline := from.Add(30 * time.Second)
		for {
			away, ok := allHome()
			if ok {
				return time.Since(from)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d subscribers not connected to their key's comet after 30 s", what, away, subscribers)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	took := waitSubscribers("at start")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d subscribers connected %v after the cluster (%v after the test began); test process: %d goroutines, %d MiB heap",
		subscribers, took.Round(10*time.Millisecond), time.Since(start).Round(100*time.Millisecond),
		runtime.NumGoroutine(), ms.HeapInuse>>20)
	cpu0, wall0 := cpuTime(), time.Now()

	// Two backends through nginx's admin port (both webs behind it), each
	// going through every key, in opposite orders.
	rev := slices.Clone(keys)
	slices.Reverse(rev)
	b1, b2 := newBackend("b1", admin, keys...), newBackend("b2", admin, rev...)
	stopLoad := startLoad(t, 10*time.Millisecond, b1, b2)
	refusedSoFar := func() int {
		_, r1 := b1.snapshot()
		_, r2 := b2.snapshot()
		return len(r1) + len(r2)
	}
	acceptedSoFar := func() int {
		n := 0
		for _, b := range []*backend{b1, b2} {
			a, _ := b.snapshot()
			for _, v := range a {
				n += len(v)
			}
		}
		return n
	}
	reasons := func() map[string]int {
		why := b1.reasons()
		for k, n := range b2.reasons() {
			why[k] += n
		}
		return why
	}
	// pushing waits until both backends have had a push accepted after
	// from.
	pushing := func(what string, from time.Time) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, "pushes accepted again after "+what, func() bool {
			b1.mu.Lock()
			ok := b1.lastOK.After(from)
			b1.mu.Unlock()
			b2.mu.Lock()
			ok = ok && b2.lastOK.After(from)
			b2.mu.Unlock()
			return ok
		})
	}
	pushing("the load started", time.Now())

	type step struct {
		what     string
		back     time.Duration // from the stop to the process serving again
		settled  time.Duration // to pushes accepted and every subscriber on its key's comet
		refused  int
		accepted int
		why      map[string]int
		slowest  time.Duration // the longest a push took to be answered
	}
	var steps []step
	restart := func(what string, stopIt func(), startIt func()) {
		t.Helper()
		r0, a0 := refusedSoFar(), acceptedSoFar()
		w0 := reasons()
		from := time.Now()
		stopIt()
		startIt()
		back := time.Since(from)
		pushing(what, time.Now())
		waitSubscribers("after " + what)
		why := reasons()
		for k, n := range w0 {
			if why[k] -= n; why[k] == 0 {
				delete(why, k)
			}
		}
		steps = append(steps, step{what, back, time.Since(from), refusedSoFar() - r0, acceptedSoFar() - a0, why,
			max(b1.slowest(from), b2.slowest(from))})
	}

	for i := range c.zkProcs {
		restart(fmt.Sprintf("ZooKeeper server %d", i+1),
			func() { c.zkProcs[i].Stop(10 * time.Second) },
			func() {
				c.zkProcs[i] = c.zkProcs[i].Restart()
				testenv.WaitFor(t, 60*time.Second, "ZooKeeper server back", func() bool {
					m := testenv.ZKMode(c.zk[i])
					return m == "leader" || m == "follower"
				})
			})
	}
	restart("the message node",
		func() { c.message.Stop(10 * time.Second) },
		func() {
			c.message = c.message.Restart()
			testenv.WaitListening(t, c.store.Addr(8070), 30*time.Second)
		})
	for i, h := range []*testenv.Host{c.comet1, c.comet2} {
		restart(fmt.Sprintf("comet%d", i+1),
			func() { c.comets[i].Stop(10 * time.Second) },
			func() {
				c.comets[i] = c.comets[i].Restart()
				testenv.WaitListening(t, h.Addr(6969), 30*time.Second)
				testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("comet%d routed to again", i+1), func() bool {
					for _, k := range keys[:50] {
						if s, _, _ := testenv.ServerOf("http://"+public, k, "2"); s == h.Addr(6969) {
							return true
						}
					}
					return false
				})
			})
	}
	for i, h := range []*testenv.Host{c.web1, c.web2} {
		restart(fmt.Sprintf("web%d", i+1),
			func() { c.webs[i].Stop(10 * time.Second) },
			func() {
				c.webs[i] = c.webs[i].Restart()
				testenv.WaitListening(t, h.Addr(8090), 30*time.Second)
				testenv.WaitListening(t, h.Addr(8091), 30*time.Second)
			})
	}
	stopLoad()

	want := map[string][]string{}
	for _, b := range []*backend{b1, b2} {
		a, _ := b.snapshot()
		for k, v := range a {
			want[k] = append(want[k], v...)
		}
	}
	total := 0
	for _, v := range want {
		total += len(v)
	}
	// Every accepted push arrives, none twice.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var missing, dups []string
		for _, s := range subs {
			m, d := s.missingOrDup(want[s.key])
			for _, x := range m {
				missing = append(missing, s.key+": "+x)
			}
			for _, x := range d {
				dups = append(dups, s.key+": "+x)
			}
		}
		if len(dups) > 0 {
			t.Fatalf("%d messages delivered more than once: %.20q", len(dups), dups)
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted pushes never reached their subscriber: %.20q", len(missing), total, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every subscriber is back: connected to the comet web names for its
	// key, after it lost its connection at least once (each comet was
	// restarted, and a stopped comet closes its clients).
	for deadline := time.Now().Add(30 * time.Second); ; {
		var wrong []string
		for _, s := range subs {
			owner, _, _ := testenv.ServerOf("http://"+public, s.key, "2")
			if on := s.cl.Comet(); on == "" || on != owner {
				wrong = append(wrong, fmt.Sprintf("%s on %q, owner %q", s.key, on, owner))
			}
		}
		if len(wrong) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers not connected to their key's comet: %.20q", len(wrong), wrong)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var st client.Stats
	for _, s := range subs {
		cs := s.cl.Stats()
		if cs.Subscribes < 2 {
			t.Errorf("subscriber %s subscribed %d times, want at least 2 (its comet was restarted)", s.key, cs.Subscribes)
		}
		st.Subscribes += cs.Subscribes
		st.Online += cs.Online
		st.Offline += cs.Offline
	}
	for _, st := range steps {
		t.Logf("%-20s back in %6v, settled in %6v: %4d pushes accepted, %3d refused %v, slowest answer %v", st.what,
			st.back.Round(10*time.Millisecond), st.settled.Round(10*time.Millisecond), st.accepted, st.refused, st.why,
			st.slowest.Round(10*time.Millisecond))
	}
	t.Logf("%d pushes accepted, %d refused; 0 lost, 0 duplicates; subscribers: %d subscriptions, %d messages online, %d from the offline fetch",
		total, refusedSoFar(), st.Subscribes, st.Online, st.Offline)
	t.Logf("test process (subscribers, backends, checks): %v CPU over %v; test took %v",
		(cpuTime() - cpu0).Round(10*time.Millisecond), time.Since(wall0).Round(100*time.Millisecond),
		time.Since(start).Round(100*time.Millisecond))
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
