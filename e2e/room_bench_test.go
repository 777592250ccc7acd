package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"gopush/api"
	"gopush/internal/testenv"
	"gopush/ketama"
)

// Figures for docs/rooms.md: how long push/room to 10 000 online keys and
// push/all to 18 000 connections take to reach the last subscriber, with
// the real daemons on this machine. Run them by hand:
//
//	go test -run '^$' -bench 'ClusterPush(Room|All)' -benchtime 5x ./e2e
//
// Every subscriber is a raw TCP connection of its own key, read by its own
// goroutine that notes when the pushed message arrived.

// benchSubs is a set of raw TCP subscribers waiting for one message each.
type benchSubs struct {
	conns   []net.Conn
	readers []*bufio.Reader
	keys    []string
}

// subscribeMany opens n subscribers spread over the comets by the ring,
// key prefix+i each, heartbeat 600 s so that none times out while the
// others connect.
func subscribeMany(b *testing.B, byNode map[string]*testenv.CometNode, ring *ketama.Ring, prefix string, n int) *benchSubs {
	b.Helper()
	s := &benchSubs{conns: make([]net.Conn, n), readers: make([]*bufio.Reader, n), keys: make([]string, n)}
	b.Cleanup(func() {
		for _, c := range s.conns {
			if c != nil {
				c.Close()
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	for i := range n {
		key := fmt.Sprintf("%s%d", prefix, i)
		s.keys[i] = key
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, r, reply, err := subscribeOnce(byNode[ring.Get(key)].TCP, key)
			if c == nil {
				errs <- fmt.Errorf("subscribe %s: %q %v", key, reply, err)
				return
			}
			s.conns[i], s.readers[i] = c, r
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return s
}

// waitAll waits until every subscriber has read a frame containing marker
// and returns when the last one did (or fails after a minute).
func (s *benchSubs) waitAll(b *testing.B, marker string) time.Time {
	b.Helper()
	var mu sync.Mutex
	var last time.Time
	var wg sync.WaitGroup
	var failed error
	for i, c := range s.conns {
		r := s.readers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(time.Minute))
			var scratch []byte
			for {
				kind, body, err := api.ReadTCPFrame(r, scratch)
				if err == nil && kind == api.FrameError {
					err = fmt.Errorf("comet answered -%s", body)
				}
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return
				}
				scratch = body[:0]
				if kind == api.FrameMessage && bytes.Contains(body, []byte(marker)) {
					now := time.Now()
					mu.Lock()
					if now.After(last) {
						last = now
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		b.Fatalf("a subscriber did not get %s: %v", marker, failed)
	}
	return last
}

// benchCluster starts a message node, two comets of equal weight and a web.
func benchCluster(b *testing.B) (map[string]*testenv.CometNode, *ketama.Ring, *testenv.WebNode) {
	c := testenv.NewCluster(b)
	c.StartMessage(roomMessage(map[string]string{"a:1": testenv.Redis(b)}, 100000))
	n1 := c.StartComet("node1", 1)
	n2 := c.StartComet("node2", 1)
	w := c.StartWeb()
	byNode := map[string]*testenv.CometNode{"node1": n1, "node2": n2}
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 1})
	// Wait until web routes to both comets and both comets own their keys.
	deadline := time.Now().Add(30 * time.Second)
	for _, node := range []string{"node1", "node2"} {
		key := keyOn(ring, node, "warmup-")
		for {
			a, err := httpPostB(fmt.Sprintf("http://%s/1/admin/push/private?expire=0&key=%s", w.Admin, key), `{}`)
			c, _, _, _ := subscribeOnce(byNode[node].TCP, key)
			if c != nil {
				c.Close()
			}
			if err == nil && a == `{"ret":0}` && c != nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("the cluster is not ready for %s: %s %v", node, a, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return byNode, ring, w
}

// httpPostB posts body and returns the answer's body.
func httpPostB(u, body string) (string, error) {
	resp, err := httpClient.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return string(out), err
}

// subscribeOnce subscribes key on addr over TCP with heartbeat 600 s and
// returns the connection and its reader once comet answered +h (else nil
// and the reply).
func subscribeOnce(addr, key string) (net.Conn, *bufio.Reader, string, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, nil, "", err
	}
	req := api.Subscribe{Key: key, Heartbeat: 600, Version: ver}.AppendTCP(nil)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, nil, "", err
	}
	r := bufio.NewReader(c)
	kind, body, err := api.ReadTCPFrame(r, nil)
	if err != nil || kind != api.FrameOK {
		c.Close()
		return nil, nil, reply(kind, body), err
	}
	c.SetDeadline(time.Time{})
	return c, r, "+h", nil
}

func BenchmarkClusterPushRoom10k(b *testing.B) {
	byNode, ring, w := benchCluster(b)
	prefix := testenv.Unique(b) + "-"
	subs := subscribeMany(b, byNode, ring, prefix, 10000)
	rid := "bench." + testenv.Unique(b)
	if a, err := httpPostB("http://"+w.Admin+"/1/admin/room/join?rid="+rid, keysBody(subs.keys)); a != `{"ret":0}` {
		b.Fatalf("join: %s %v", a, err)
	}
	for _, expire := range []int{0, 600} {
		b.Run(fmt.Sprintf("expire=%d", expire), func(b *testing.B) {
			var total, call time.Duration
			for i := 0; i < b.N; i++ {
				marker := fmt.Sprintf(`"room-%d-%d"`, expire, i)
				start := time.Now()
				a, err := httpPostB(fmt.Sprintf("http://%s/1/admin/push/room?expire=%d&rid=%s", w.Admin, expire, rid), `{"m":`+marker+`}`)
				call += time.Since(start)
				if a != `{"ret":0}` {
					b.Fatalf("push/room: %s %v", a, err)
				}
				total += subs.waitAll(b, marker).Sub(start)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-last")
			b.ReportMetric(float64(call.Milliseconds())/float64(b.N), "ms-http")
		})
	}
}

func BenchmarkClusterPushAll18k(b *testing.B) {
	byNode, ring, w := benchCluster(b)
	prefix := testenv.Unique(b) + "-"
	subs := subscribeMany(b, byNode, ring, prefix, 18000)
	for _, expire := range []int{0, 600} {
		b.Run(fmt.Sprintf("expire=%d", expire), func(b *testing.B) {
			var total, call time.Duration
			for i := 0; i < b.N; i++ {
				marker := fmt.Sprintf(`"all-%d-%d"`, expire, i)
				start := time.Now()
				a, err := httpPostB(fmt.Sprintf("http://%s/1/admin/push/all?expire=%d", w.Admin, expire), `{"m":`+marker+`}`)
				call += time.Since(start)
				if !strings.HasPrefix(a, `{"ret":0,"data":{"mid":`) || strings.Contains(a, `"fn"`) {
					b.Fatalf("push/all: %s %v", a, err)
				}
				total += subs.waitAll(b, marker).Sub(start)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-last")
			b.ReportMetric(float64(call.Milliseconds())/float64(b.N), "ms-http")
		})
	}
}
