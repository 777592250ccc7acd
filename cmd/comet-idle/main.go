// Command comet-idle measures one running comet: it opens -n idle
// subscribers (TCP, WebSocket with -ws-frac, Server-Sent Events with
// -sse-frac), reports comet's resident
// memory per connection, then pushes one message to all n keys in one
// CometRPC.PushPrivates call and reports how long it takes until every
// subscriber has it.
//
//	comet-idle -tcp 127.0.0.1:6969 -ws 127.0.0.1:6968 -rpc 127.0.0.1:6970 \
//	    -stat 127.0.0.1:6972 -n 10000
//
// With -silent N it first opens N connections that never send anything and
// reports how long comet takes to close them all (its handshake timeout)
// and whether its connection count returns to zero.
//
// comet must run on this machine (its RSS is read from /proc, with the pid
// from /stat?type=server). This is a small probe for the comet issue; the
// full load tool is cmd/gopush-bench.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"gopush/api"
	"gopush/gobrpc"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "comet-idle:", err)
		os.Exit(1)
	}
}

type options struct {
	tcp, ws, rpc, stat string
	n                  int
	wsFrac, sseFrac    float64
	settle             time.Duration
	dialers            int
	silent             int
	src                int
}

func run() error {
	var o options
	flag.StringVar(&o.tcp, "tcp", "127.0.0.1:6969", "comet tcp.bind address")
	flag.StringVar(&o.ws, "ws", "127.0.0.1:6968", "comet websocket.bind address")
	flag.StringVar(&o.rpc, "rpc", "127.0.0.1:6970", "comet rpc.bind address")
	flag.StringVar(&o.stat, "stat", "127.0.0.1:6972", "comet stat.bind address")
	flag.IntVar(&o.n, "n", 10000, "subscribers (one key each)")
	flag.Float64Var(&o.wsFrac, "ws-frac", 0, "fraction of subscribers on WebSocket (0..1)")
	flag.Float64Var(&o.sseFrac, "sse-frac", 0, "fraction of subscribers on Server-Sent Events (0..1, with -ws-frac at most 1)")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "wait after connecting before measuring memory")
	flag.IntVar(&o.dialers, "dialers", 32, "connections opened at once")
	flag.IntVar(&o.silent, "silent", 0, "first open this many connections that never send anything")
	flag.IntVar(&o.src, "src", 1, "spread subscribers over source addresses 127.0.0.1 .. 127.0.0.<src> (more ports)")
	flag.Parse()
	if o.n < 1 || o.wsFrac < 0 || o.sseFrac < 0 || o.wsFrac+o.sseFrac > 1 || o.dialers < 1 || o.src < 1 || o.src > 254 {
		return errors.New("bad flags: -n >= 1, 0 <= -ws-frac, 0 <= -sse-frac, -ws-frac + -sse-frac <= 1, -dialers >= 1, 1 <= -src <= 254")
	}

	pid, err := cometPid(o.stat)
	if err != nil {
		return err
	}
	if o.silent > 0 {
		if err := silentProbe(o, pid); err != nil {
			return err
		}
	}
	rss0, err := rssKB(pid)
	if err != nil {
		return err
	}
	// Every subscriber marks got once when its first message arrives.
	var got sync.WaitGroup
	got.Add(o.n)
	prefix := "idle-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	subs := make([]*subscriber, o.n)
	nWS := int(float64(o.n) * o.wsFrac)
	nSSE := int(float64(o.n) * o.sseFrac)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, o.dialers)
	for range o.dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= o.n {
					return
				}
				p := "tcp"
				switch {
				case i < nWS:
					p = "ws"
				case i < nWS+nSSE:
					p = "sse"
				}
				s, err := subscribe(o, i, prefix+strconv.Itoa(i), p, got.Done)
				if err != nil {
					errc <- fmt.Errorf("subscriber %d: %w", i, err)
					return
				}
				subs[i] = s
			}
		}()
	}
	wg.Wait()
	close(errc)
	defer func() {
		for _, s := range subs {
			if s != nil {
				s.close()
			}
		}
	}()
	if err := <-errc; err != nil {
		return err
	}
	connectTime := time.Since(start)
	time.Sleep(o.settle)
	rss1, err := rssKB(pid)
	if err != nil {
		return err
	}
	mem, _ := statData(o.stat, "memory")
	fmt.Printf("subscribers     %d (%d tcp, %d websocket, %d sse) in %v\n", o.n, o.n-nWS-nSSE, nWS, nSSE, connectTime.Round(time.Millisecond))
	fmt.Printf("comet rss       %d KiB before, %d KiB after: %.2f KiB per connection\n", rss0, rss1, float64(rss1-rss0)/float64(o.n))
	if mem != nil {
		fmt.Printf("comet heap      heap_inuse %v, stack_inuse %v bytes\n", mem["heap_inuse"], mem["stack_inuse"])
	}

	// One push to all n keys.
	keys := make([]string, o.n)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	rc := gobrpc.NewClient(o.rpc, time.Minute)
	defer rc.Close()
	var resp api.CometPushPrivatesResp
	t0 := time.Now()
	err = rc.Call(context.Background(), api.CometPushPrivates,
		&api.CometPushPrivatesArgs{Keys: keys, Msg: json.RawMessage(`{"probe":1}`), Expire: 0}, &resp)
	callTime := time.Since(t0)
	if err != nil {
		return fmt.Errorf("PushPrivates: %w", err)
	}
	if len(resp.FKeys) > 0 {
		return fmt.Errorf("PushPrivates failed for %d keys", len(resp.FKeys))
	}
	done := make(chan struct{})
	go func() { got.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		return errors.New("not every subscriber got the push within a minute")
	}
	fmt.Printf("push to all     PushPrivates returned in %v; all %d subscribers had it after %v\n",
		callTime.Round(time.Microsecond), o.n, time.Since(t0).Round(time.Microsecond))
	return nil
}

// subscriber is one idle connection; its reader goroutine calls onMessage
// for the first pushed message.
type subscriber struct {
	close     func()
	onMessage func()
	once      sync.Once
}

func (s *subscriber) got() {
	s.once.Do(s.onMessage)
}

func subscribe(o options, i int, key string, proto string, onMessage func()) (*subscriber, error) {
	s := &subscriber{onMessage: onMessage}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if o.src > 1 {
		dialer.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%o.src))}
	}
	sub := api.Subscribe{Key: key, Heartbeat: 60, Version: "1"}
	if proto == "sse" {
		return subscribeSSE(o, dialer, sub, s)
	}
	if proto == "ws" {
		u := "ws://" + o.ws + "/sub?" + sub.Query().Encode()
		wd := websocket.Dialer{NetDial: dialer.Dial, HandshakeTimeout: 10 * time.Second}
		c, _, err := wd.Dial(u, nil)
		if err != nil {
			return nil, err
		}
		_, p, err := c.ReadMessage()
		if kind, _ := api.ParseWSText(p); err != nil || kind != api.FrameOK {
			c.Close()
			return nil, fmt.Errorf("subscribe answer %q, %v", p, err)
		}
		s.close = func() { c.Close() }
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				s.got()
			}
		}()
		go heartbeat(func() error { return c.WriteMessage(websocket.TextMessage, []byte(api.Heartbeat)) }, c.NetConn())
		return s, nil
	}
	nc, err := dialer.Dial("tcp", o.tcp)
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(sub.AppendTCP(nil)); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 256)
	if kind, body, err := api.ReadTCPFrame(br, nil); err != nil || kind != api.FrameOK {
		nc.Close()
		return nil, fmt.Errorf("subscribe answer %d %q, %v", kind, body, err)
	}
	s.close = func() { nc.Close() }
	go func() {
		var scratch []byte
		for {
			kind, body, err := api.ReadTCPFrame(br, scratch)
			if err != nil {
				return
			}
			if kind == api.FrameMessage {
				scratch = body[:0]
				s.got()
			}
		}
	}()
	go heartbeat(func() error { _, err := nc.Write([]byte(api.Heartbeat)); return err }, nc)
	return s, nil
}

// subscribeSSE opens GET /sse on the WebSocket address and reads events;
// an SSE client sends nothing after its request.
func subscribeSSE(o options, dialer *net.Dialer, sub api.Subscribe, s *subscriber) (*subscriber, error) {
	nc, err := dialer.Dial("tcp", o.ws)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(nc, "GET %s?%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", api.SSEPath, sub.Query().Encode(), o.ws); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 256)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		nc.Close()
		return nil, fmt.Errorf("sse answer %v, %v", resp, err)
	}
	if first, err := br.ReadString('\n'); err != nil || first+"\n" != api.SSESubscribed {
		nc.Close()
		return nil, fmt.Errorf("sse first line %q, %v", first, err)
	}
	s.close = func() { nc.Close() }
	go func() {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "data: ") {
				s.got()
			}
		}
	}()
	return s, nil
}

// heartbeat sends one every 50 s (the subscribers ask for 60) until the
// connection is closed.
func heartbeat(send func() error, nc net.Conn) {
	t := time.NewTicker(50 * time.Second)
	defer t.Stop()
	for range t.C {
		_ = nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if send() != nil {
			return
		}
	}
}

// statData reads comet's /stat?type=typ: one JSON object, in 1.0.5's
// shape with gopush's fields beside.
func statData(addr, typ string) (map[string]any, error) {
	resp, err := http.Get("http://" + addr + "/stat?type=" + typ)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stat %s: status %d", typ, resp.StatusCode)
	}
	var out map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

func cometPid(stat string) (int, error) {
	d, err := statData(stat, "server")
	if err != nil {
		return 0, fmt.Errorf("comet stat at %s: %w", stat, err)
	}
	pid, ok := d["pid"].(float64)
	if !ok {
		return 0, errors.New("comet stat: no pid")
	}
	return int(pid), nil
}

// rssKB reads VmRSS of pid from /proc.
func rssKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("comet's memory (is it on this machine?): %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// silentProbe opens o.silent connections that send nothing, half on each
// protocol's port, and waits until comet has closed every one.
func silentProbe(o options, pid int) error {
	rss0, err := rssKB(pid)
	if err != nil {
		return err
	}
	conns := make([]net.Conn, 0, o.silent)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range o.silent {
		addr := o.tcp
		if i%2 == 1 {
			addr = o.ws
		}
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return fmt.Errorf("silent connection %d: %w", i, err)
		}
		conns = append(conns, c)
	}
	t0 := time.Now()
	rssPeak, _ := rssKB(pid)
	var wg sync.WaitGroup
	var stillOpen atomic.Int64
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			if _, err := io.Copy(io.Discard, c); err != nil {
				stillOpen.Add(1) // a timeout: comet did not close it
			}
		}()
	}
	wg.Wait()
	closed := time.Since(t0)
	var open any = "?"
	if d, err := statData(o.stat, "connection"); err == nil {
		open = d["total"]
	}
	rss1, _ := rssKB(pid)
	fmt.Printf("silent          %d connections: all closed by comet after %v (%d left open); comet connections now %v; rss %d KiB before, %d with them, %d after\n",
		o.silent, closed.Round(time.Millisecond), stillOpen.Load(), open, rss0, rssPeak, rss1)
	if stillOpen.Load() > 0 {
		return errors.New("comet left silent connections open")
	}
	return nil
}
