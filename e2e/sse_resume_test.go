package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopush/api"
	"gopush/internal/testenv"
)

// cuttingProxy passes TCP connections to target and closes each one period
// after it opened, as some proxies end long responses (every 30 s, say).
type cuttingProxy struct {
	ln     net.Listener
	target string
	period time.Duration
	wg     sync.WaitGroup
	mu     sync.Mutex
	n      int // connections cut
}

func startCuttingProxy(t *testing.T, target string, period time.Duration) *cuttingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttingProxy{ln: ln, target: target, period: period}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *cuttingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		cut := time.AfterFunc(p.period, func() {
			p.mu.Lock()
			p.n++
			p.mu.Unlock()
			c.Close()
			up.Close()
		})
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(up, c); up.Close(); cut.Stop() }()
		go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
	}
}

func (p *cuttingProxy) cutCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// resumingClient is what an EventSource does: it reads events, remembers
// the last id, and when the stream ends reconnects at once with that id as
// Last-Event-ID. It records the mid of every message it is given. It runs
// on its own goroutine, so it returns its errors.
func resumingClient(addr, key string, want int, stop <-chan struct{}) ([]int64, int, error) {
	var mids []int64
	lastID := ""
	streams := 0
	for len(mids) < want {
		select {
		case <-stop:
			return mids, streams, nil
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return mids, streams, fmt.Errorf("dial the proxy: %w", err)
		}
		q := api.Subscribe{Key: key, Heartbeat: 30, Version: ver}.Query()
		req := "GET " + api.SSEPath + "?" + q.Encode() + " HTTP/1.1\r\nHost: " + addr + "\r\n"
		if lastID != "" {
			req += api.LastEventIDHeader + ": " + lastID + "\r\n"
		}
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
			conn.Close()
			continue
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			conn.Close()
			continue // cut before the answer
		}
		if resp.StatusCode != http.StatusOK {
			conn.Close()
			return mids, streams, fmt.Errorf("sse answer %s", resp.Status)
		}
		streams++
		id := ""
		for len(mids) < want {
			line, err := br.ReadString('\n')
			if err != nil {
				break // cut: resume
			}
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimSpace(line[4:])
			case strings.HasPrefix(line, "data: "):
				mid, err := strconv.ParseInt(id, 10, 64)
				if err != nil {
					conn.Close()
					return mids, streams, fmt.Errorf("message without an id: %q", line)
				}
				mids = append(mids, mid)
				lastID = id
			}
		}
		conn.Close()
	}
	return mids, streams, nil
}

// A proxy that closes every stream after a period (30 s in the wild, a
// fraction of a second here): a client that reconnects with Last-Event-ID
// gets every stored message exactly once, in order, while pushes go on.
func TestClusterSSEResumesAcrossCutStreams(t *testing.T) {
	t.Parallel()
	const period = 250 * time.Millisecond // configurable: the proxy's cut
	const pushes = 60
	c := testenv.NewCluster(t)
	c.StartMessage()
	cm := c.StartComet("node1", 1)
	w := c.StartWeb()
	key := testenv.Unique(t)
	waitRouted(t, w, key, cm.TCP)
	// The key's own subscriber tells us which mids were given.
	direct := subscribeAny(t, "tcp", cm, key)
	proxy := startCuttingProxy(t, cm.WS, period)

	stop := make(chan struct{})
	type result struct {
		mids    []int64
		streams int
		err     error
	}
	res := make(chan result, 1)
	go func() {
		mids, streams, err := resumingClient(proxy.ln.Addr().String(), key, pushes, stop)
		res <- result{mids, streams, err}
	}()
	time.Sleep(200 * time.Millisecond) // the first stream opens
	var want []int64
	for i := range pushes {
		if a := push(t, w, key, 600, fmt.Sprintf(`{"n":%d}`, i)); a.Body != `{"ret":0}` {
			close(stop)
			t.Fatalf("push %d: %s", i, a.Body)
		}
		want = append(want, direct.next(t).MsgId)
		time.Sleep(10 * time.Millisecond)
	}
	var r result
	select {
	case r = <-res:
	case <-time.After(60 * time.Second):
		close(stop)
		t.Fatal("the resuming client did not get every message within 60 s")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.mids) != len(want) {
		t.Fatalf("got %d messages, want %d", len(r.mids), len(want))
	}
	for i := range want {
		if r.mids[i] != want[i] {
			t.Fatalf("message %d: mid %d, want %d (lost, duplicated or out of order)\ngot  %v\nwant %v", i, r.mids[i], want[i], r.mids[max(0, i-3):min(len(r.mids), i+3)], want[max(0, i-3):min(len(want), i+3)])
		}
	}
	if proxy.cutCount() < 2 || r.streams < 3 {
		t.Fatalf("only %d cuts and %d streams: the test did not cut anything", proxy.cutCount(), r.streams)
	}
	t.Logf("%d messages over %d streams, %d cut by the proxy every %v", pushes, r.streams, proxy.cutCount(), period)
}
