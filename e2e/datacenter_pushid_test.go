package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/api"
	"gopush/internal/testenv"
)

// idPushAnswer is what a backend reads from a push made with an id.
type idPushAnswer struct {
	Ret  int `json:"ret"`
	Data struct {
		Mid   int64  `json:"mid"`
		Dup   bool   `json:"dup"`
		Retry string `json:"retry"`
	} `json:"data"`
}

// pushWithId makes one push/private with an id through the web admin at
// admin, giving up after the client's timeout.
func pushWithId(hc *http.Client, admin, key, id, msg string, expire int) (idPushAnswer, error) {
	var a idPushAnswer
	q := url.Values{"key": {key}, "expire": {fmt.Sprint(expire)}, "id": {id}}
	resp, err := hc.Post("http://"+admin+"/1/admin/push/private?"+q.Encode(), "application/json", strings.NewReader(msg))
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("answer %q: %w", b, err)
	}
	return a, nil
}

// rawMids subscribes key on a comet's TCP address with a plain connection
// and counts every message frame by mid: what a client that does not drop
// repeated mids would see.
type rawMids struct {
	mu    sync.Mutex
	count map[int64]int
	msgs  map[int64]string
}

func subscribeRawMids(t *testing.T, addr, key string) *rawMids {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(api.Subscribe{Key: key, Heartbeat: 600, Version: ver}.AppendTCP(nil)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if kind, body, err := api.ReadTCPFrame(br, nil); err != nil || kind != api.FrameOK {
		t.Fatalf("raw subscribe %s on %s: %d %q %v", key, addr, kind, body, err)
	}
	conn.SetReadDeadline(time.Time{})
	r := &rawMids{count: map[int64]int{}, msgs: map[int64]string{}}
	go func() {
		for {
			kind, body, err := api.ReadTCPFrame(br, nil)
			if err != nil {
				return
			}
			if kind != api.FrameMessage {
				continue
			}
			m, err := api.DecodeMessage(body, false)
			if err != nil {
				continue
			}
			r.mu.Lock()
			r.count[m.MsgId]++
			r.msgs[m.MsgId] = string(m.Msg)
			r.mu.Unlock()
		}
	}()
	return r
}

// idBackend pushes its own numbered messages, each under an id of its
// own, and retries every push that did not answer ret 0, or not within
// its HTTP timeout, with the same id until it does, as a backend should
// (docs/reliability.md, "Push ids").
type idBackend struct {
	c    *dcCluster
	key  string
	name string
	hc   *http.Client

	mu       sync.Mutex
	accepted []string         // messages answered ret 0
	mids     map[string]int64 // message → mid answered

	attempts, failures, timeouts, safe, sameId, dups atomic.Int64
	firstOKAfterThaw                                 atomic.Int64 // unix ns
}

func (b *idBackend) run(stop <-chan struct{}, thawed *atomic.Int64) {
	for n := 1; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		msg := fmt.Sprintf(`{"b":%q,"n":%d}`, b.name, n)
		id := fmt.Sprintf("%s-%d", b.name, n)
		for try := 0; ; try++ {
			// A retry goes through either web: the id, not the web, makes it the same push.
			admin := b.c.web2Admin
			if try%2 == 1 {
				admin = b.c.web1Admin
			}
			b.attempts.Add(1)
			a, err := pushWithId(b.hc, admin, b.key, id, msg, 60)
			if err == nil && a.Ret == 0 {
				if a.Data.Dup {
					b.dups.Add(1)
				}
				if t := thawed.Load(); t != 0 {
					b.firstOKAfterThaw.CompareAndSwap(0, time.Now().UnixNano())
				}
				b.mu.Lock()
				b.accepted = append(b.accepted, msg)
				b.mids[msg] = a.Data.Mid
				b.mu.Unlock()
				break
			}
			if err != nil {
				b.timeouts.Add(1) // no answer in time: outcome unknown, retry with the id
			} else {
				b.failures.Add(1)
			}
			switch a.Data.Retry {
			case api.RetrySafe:
				b.safe.Add(1)
			case api.RetrySameId:
				b.sameId.Add(1)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// Scenario 8 of docs/reliability.md: backends that retry every failed or
// timed-out push with the same id while Redis is frozen (SIGSTOP) and
// thawed. Every message is stored once (the key's sorted set holds each
// once, under the mid its push was answered with) and delivered once: the
// Go client gets each message exactly once, and a raw subscriber that
// drops nothing sees no mid twice and no message under two mids.
func TestDatacenterPushIdRetriesWhileRedisFrozen(t *testing.T) {
	c := startDCCluster(t, 1)
	c.waitRing(t)
	tcp1 := c.comet1.Addr(6969)
	key := c.keyOn(t, tcp1)
	r := c.receive(t, key)
	testenv.WaitFor(t, 20*time.Second, "the client on comet1", func() bool { return r.cl.Comet() == tcp1 })
	raw := subscribeRawMids(t, tcp1, key)

	var thawed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	backends := make([]*idBackend, 6)
	for i := range backends {
		// Half the backends wait 500 ms for an answer, less than web
		// waits for comet (1 s): a push they gave up on may still be done.
		// The others wait for web's answer (65535 with data.retry).
		wait := 500 * time.Millisecond
		if i%2 == 1 {
			wait = 5 * time.Second
		}
		b := &idBackend{c: c, key: key, name: fmt.Sprintf("b%d", i), mids: map[string]int64{},
			hc: &http.Client{Timeout: wait}}
		backends[i] = b
		wg.Add(1)
		go func() { defer wg.Done(); b.run(stop, &thawed) }()
	}
	time.Sleep(time.Second)
	// A long freeze: saves reach Redis after their callers gave up (the
	// script's deadline check refuses them).
	c.redis.Signal(syscall.SIGSTOP)
	frozen := time.Now()
	time.Sleep(5 * time.Second)
	c.redis.Signal(syscall.SIGCONT)
	thawed.Store(time.Now().UnixNano())
	t.Logf("Redis frozen for %v", time.Since(frozen).Round(10*time.Millisecond))
	time.Sleep(time.Second)
	// Short freezes, longer than the backends wait (500 ms) but shorter
	// than web's rpc.timeout (1 s): pushes the backends gave up on are done
	// all the same, and their retries must find the id.
	for range 4 {
		c.redis.Signal(syscall.SIGSTOP)
		time.Sleep(700 * time.Millisecond)
		c.redis.Signal(syscall.SIGCONT)
		time.Sleep(700 * time.Millisecond)
	}
	time.Sleep(time.Second)
	close(stop)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("backends still retrying 30 s after the thaw")
	}

	var all []string
	mids := map[string]int64{}
	var attempts, failures, timeouts, safe, sameId, dups int64
	var firstOK int64
	for _, b := range backends {
		all = append(all, b.accepted...)
		for m, mid := range b.mids {
			mids[m] = mid
		}
		attempts += b.attempts.Load()
		failures += b.failures.Load()
		timeouts += b.timeouts.Load()
		safe += b.safe.Load()
		sameId += b.sameId.Load()
		dups += b.dups.Load()
		if v := b.firstOKAfterThaw.Load(); v != 0 && (firstOK == 0 || v < firstOK) {
			firstOK = v
		}
	}
	if failures+timeouts == 0 {
		t.Fatal("no push failed while Redis was frozen: the scenario did not happen")
	}
	if dups == 0 {
		t.Error("no retry found its id: no push was done after its backend gave up, the scenario did not happen")
	}
	if failures == 0 {
		t.Error("no push answered 65535 while Redis was frozen")
	}
	if safe+sameId != failures {
		t.Errorf("%d failed pushes, %d of them with data.retry safe or same-id; want all", failures, safe+sameId)
	}

	// Delivered once: the Go client gets every message exactly once ...
	r.exactlyOnce(t, "messages pushed with retries under their ids", all)
	time.Sleep(500 * time.Millisecond) // room for a late duplicate
	// ... and nothing reached the wire twice.
	raw.mu.Lock()
	rawFrames, rawDups := 0, 0
	byMsg := map[string][]int64{}
	for mid, n := range raw.count {
		rawFrames += n
		if n > 1 {
			rawDups += n - 1
		}
		byMsg[raw.msgs[mid]] = append(byMsg[raw.msgs[mid]], mid)
	}
	raw.mu.Unlock()
	if rawDups > 0 {
		t.Errorf("%d frames repeated a mid on the raw connection", rawDups)
	}
	for m, ms := range byMsg {
		if len(ms) > 1 {
			t.Errorf("message %s reached the raw connection under %d mids %v", m, len(ms), ms)
		}
	}

	// Stored once, under the mid the push was answered with.
	conn, err := redis.Dial("tcp", c.redisAddr, redis.DialConnectTimeout(5*time.Second), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	members, err := redis.ByteSlices(conn.Do("ZRANGE", key, 0, -1))
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for _, raw := range members {
		var m struct {
			Msg json.RawMessage `json:"msg"`
			Mid int64           `json:"mid"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("member %q: %v", raw, err)
		}
		stored[string(m.Msg)]++
		if want, ok := mids[string(m.Msg)]; ok && want != m.Mid {
			t.Errorf("message %s stored under mid %d, answered with %d", m.Msg, m.Mid, want)
		}
	}
	for _, m := range all {
		if stored[m] != 1 {
			t.Errorf("message %s stored %d times, want once", m, stored[m])
		}
	}
	if len(members) != len(all) {
		t.Errorf("the key's set holds %d messages, %d were pushed", len(members), len(all))
	}
	recovery := time.Duration(0)
	if firstOK != 0 {
		recovery = time.Duration(firstOK - thawed.Load())
	}
	t.Logf("%d messages, %d push attempts, %d not answered in 500 ms, %d failed (retry safe %d, same-id %d), %d answered dup; "+
		"first success %v after the thaw; raw frames %d (repeated mids %d); stored %d",
		len(all), attempts, timeouts, failures, safe, sameId, dups, recovery.Round(time.Millisecond),
		rawFrames, rawDups, len(members))
}
