package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopush/conf"
	"gopush/internal/testenv"
)

// backend pushes numbered messages with expire > 0 to its keys through
// one web's admin API, one after another, until stopped, and records the
// outcome of each push.
type backend struct {
	name  string
	admin string // host:port of the admin API it pushes through
	keys  []string

	mu       sync.Mutex
	n        int
	accepted map[string][]string // per key, the messages answered ret 0
	refused  []time.Time         // when each refused push was answered
	why      map[string]int      // refused pushes by answer (ret code or error)
	took     []pushTime          // how long each push took to be answered
	lastOK   time.Time
}

// startLoad runs the backends, each pushing every interval, until the
// returned stop is called (or the test ends); stop waits for them and may be
// called again.
func startLoad(t *testing.T, interval time.Duration, backends ...*backend) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for _, b := range backends {
		wg.Add(1)
		go func() { defer wg.Done(); b.run(interval, quit, make(chan struct{})) }()
	}
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func newBackend(name, admin string, keys ...string) *backend {
	return &backend{name: name, admin: admin, keys: keys, accepted: map[string][]string{}, why: map[string]int{}}
}

// run pushes every interval until stop is closed, then closes done.
func (b *backend) run(interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		key := b.keys[i%len(b.keys)]
		b.mu.Lock()
		b.n++
		msg := fmt.Sprintf(`{"b":%q,"n":%d}`, b.name, b.n)
		b.mu.Unlock()
		sent := time.Now()
		ret, err := testenv.Push(b.admin, key, msg, 300)
		b.mu.Lock()
		b.took = append(b.took, pushTime{sent, time.Since(sent)})
		if err == nil && ret == 0 {
			b.accepted[key] = append(b.accepted[key], msg)
			b.lastOK = time.Now()
		} else {
			b.refused = append(b.refused, time.Now())
			why := fmt.Sprintf("ret %d", ret)
			if err != nil {
				why = err.Error()
			}
			b.why[why]++
		}
		b.mu.Unlock()
		time.Sleep(interval)
	}
}

// pushTime is when a push was sent and how long its answer took.
type pushTime struct {
	sent time.Time
	took time.Duration
}

// slowest returns the longest answer time of the pushes sent since from.
func (b *backend) slowest(from time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var d time.Duration
	for _, p := range b.took {
		if !p.sent.Before(from) {
			d = max(d, p.took)
		}
	}
	return d
}

// reasons returns the refused pushes by answer so far.
func (b *backend) reasons() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.why)
}

// snapshot returns copies of what run recorded.
func (b *backend) snapshot() (accepted map[string][]string, refused []time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	accepted = make(map[string][]string, len(b.accepted))
	for k, v := range b.accepted {
		accepted[k] = append([]string(nil), v...)
	}
	return accepted, append([]time.Time(nil), b.refused...)
}

// Scenario 4 of docs/reliability.md: the Redis primary of the offline
// store's shard is killed under load. The shard is a primary with two
// replicas watched by three Sentinels, each on a host of its own; the
// message node finds the master through the Sentinels and saves with
// redis.wait = 1. The Sentinels promote a replica, the message node
// follows without restart, pushes refused meanwhile are refused (not
// answered ret 0), and every push answered ret 0 reaches its client
// exactly once: online for a client connected throughout, through the
// offline fetch for one that connects only afterwards — and every one is
// in the store after the failover.
func TestDatacenterRedisPrimaryKilled(t *testing.T) {
	var shard *testenv.DCSentinelShard
	c := startDCCluster(t, 1, dcOption{
		store: func(dc *testenv.Datacenter) string {
			servers := []*testenv.Host{dc.AddHost("redis1"), dc.AddHost("redis2"), dc.AddHost("redis3")}
			sentinels := []*testenv.Host{dc.AddHost("sent1"), dc.AddHost("sent2"), dc.AddHost("sent3")}
			shard = dc.StartSentinelShardOn(servers, sentinels)
			return shard.Source()
		},
		message: func(m *conf.Message) {
			m.Redis.Wait = 1
			m.Redis.WaitTimeout = conf.Duration(500 * time.Millisecond)
			m.Redis.DialTimeout = conf.Duration(time.Second)
		},
	})
	c.waitRing(t)
	tcp1, tcp2 := c.comet1.Addr(6969), c.comet2.Addr(6969)
	online1, online2 := c.keyOn(t, tcp1), c.keyOn(t, tcp2)
	offline := "offline-" + online1 // nobody subscribes until the end
	r1, r2 := c.receive(t, online1), c.receive(t, online2)
	testenv.WaitFor(t, 20*time.Second, "both clients connected", func() bool {
		return r1.cl.Comet() == tcp1 && r2.cl.Comet() == tcp2
	})

	// Two backends, one through each web, about 20 pushes/s each.
	b1 := newBackend("b1", c.web1Admin, online1, online2, offline)
	b2 := newBackend("b2", c.web2Admin, online2, offline, online1)
	stopLoad := startLoad(t, 50*time.Millisecond, b1, b2)
	accepted := func() int {
		n := 0
		for _, b := range []*backend{b1, b2} {
			a, _ := b.snapshot()
			for _, v := range a {
				n += len(v)
			}
		}
		return n
	}
	testenv.WaitFor(t, 20*time.Second, "pushes accepted before the kill", func() bool { return accepted() >= 40 })

	old := shard.Primary()
	if old != shard.Addrs[0] {
		t.Fatalf("the Sentinels name %q as master, want the first server %s", old, shard.Addrs[0])
	}
	killed := time.Now()
	shard.Servers[0].Kill()
	testenv.WaitFor(t, 30*time.Second, "the Sentinels to promote a replica", func() bool {
		p := shard.Primary()
		return p != "" && p != old && testenv.Role(p) == "master"
	})
	promoted := time.Since(killed)
	// Saves work again: both backends have pushes accepted after their
	// last refusal, for at least two seconds.
	testenv.WaitFor(t, 30*time.Second, "pushes accepted again for 2 s through both webs", func() bool {
		for _, b := range []*backend{b1, b2} {
			_, refused := b.snapshot()
			last := killed
			if len(refused) > 0 {
				last = refused[len(refused)-1]
			}
			if time.Since(last) < 2*time.Second {
				return false
			}
		}
		return true
	})
	stopLoad()
	reasons := b1.reasons()
	for k, n := range b2.reasons() {
		reasons[k] += n
	}

	var lastRefused time.Time
	refusedBefore, refusedAfter := 0, 0
	for _, b := range []*backend{b1, b2} {
		_, refused := b.snapshot()
		for _, at := range refused {
			if !at.After(killed) {
				refusedBefore++
				continue
			}
			refusedAfter++
			if at.After(lastRefused) {
				lastRefused = at
			}
		}
	}
	recovered := time.Duration(0)
	if !lastRefused.IsZero() {
		recovered = lastRefused.Sub(killed)
	}

	want := map[string][]string{}
	for _, b := range []*backend{b1, b2} {
		a, _ := b.snapshot()
		for k, v := range a {
			want[k] = append(want[k], v...)
		}
	}
	r1.exactlyOnce(t, "client connected throughout (comet1)", want[online1])
	r2.exactlyOnce(t, "client connected throughout (comet2)", want[online2])
	// Clients that subscribe only now find everything in the store: the
	// offline key's messages, and the online keys' too (fetched from mid 0).
	late := c.receive(t, offline)
	late.exactlyOnce(t, "client that subscribed after the failover", want[offline])
	for _, k := range []string{online1, online2} {
		c.receive(t, k).exactlyOnce(t, "everything stored for "+k+", fetched after the failover", want[k])
	}
	if c.message.Exited() {
		t.Error("the message node exited")
	}
	// Why the message node failed saves (its log samples them): the
	// primary unreachable or not yet replaced, or a save the remaining
	// replica did not acknowledge in time.
	failed := map[string]bool{}
	for _, line := range strings.Split(c.message.Log(), "\n") {
		if !strings.Contains(line, "save private failed") {
			continue
		}
		if strings.Contains(line, "not acknowledged") {
			failed["not acknowledged by a replica"] = true
		} else {
			failed["no master reached"] = true
		}
	}
	t.Logf("replica promoted %v after the kill; last push refused %v after it; %d pushes accepted, %d refused after the kill (%d before), refused by answer: %v",
		promoted.Round(10*time.Millisecond), recovered.Round(10*time.Millisecond),
		len(want[online1])+len(want[online2])+len(want[offline]), refusedAfter, refusedBefore, reasons)
	t.Logf("kinds of save failures in the message node's log: %v", slices.Sorted(maps.Keys(failed)))
}
