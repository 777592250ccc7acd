package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"gopush/api"
)

// SubConfig says how subscribers connect.
type SubConfig struct {
	Proto       string        // "tcp", "ws", "wss" (WebSocket over TLS) or "sse"
	TLS         *tls.Config   // for "wss": the CA that signed comet's certificate
	Heartbeat   int           // seconds, sent in the subscribe request (≥ 30)
	Token       string        // sent as is; "" when comet has auth off
	Version     string        // "" asks comet for the old message form
	SourceAddrs int           // spread connections over 127.0.0.1 .. 127.0.0.<SourceAddrs>
	Parallel    int           // dials in flight at once
	Timeout     time.Duration // connect + subscribe deadline of one connection
	IndexBase   int           // number of this pool's first subscriber among all processes'
}

// Target is one subscriber to open: its key and the comet address (TCP
// host:port, or the WebSocket host:port) that serves the key.
type Target struct {
	Key  string
	Addr string
}

// Pool holds open subscriber connections, reads what comet sends them and
// keeps them alive with heartbeats. Close stops every goroutine it started.
type Pool struct {
	cfg     SubConfig
	tracker *Tracker

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  []subConn // index = subscriber number in this pool
	failed map[string]int
	dead   []int // subscribers (local index) that failed to connect or dropped

	connected  atomic.Int64
	dropped    atomic.Int64
	heartbeats atomic.Uint64 // "+h" answers received after subscribing
	dropErr    atomic.Value  // string: the first drop's cause
}

type subConn interface {
	heartbeat(deadline time.Time) error
	close()
}

// NewPool returns an empty pool that records deliveries in tracker.
func NewPool(cfg SubConfig, tracker *Tracker) *Pool {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 64
	}
	if cfg.SourceAddrs <= 0 {
		cfg.SourceAddrs = 1
	}
	if cfg.SourceAddrs > 254 {
		cfg.SourceAddrs = 254
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 30
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool{cfg: cfg, tracker: tracker, ctx: ctx, cancel: cancel, failed: make(map[string]int)}
}

// Connect opens one connection per target, Parallel at a time, and returns
// when every attempt has finished (or ctx ends). Failures are counted by
// reason, not returned: a load run reports them.
func (p *Pool) Connect(ctx context.Context, targets []Target) {
	p.mu.Lock()
	base := len(p.conns)
	p.conns = append(p.conns, make([]subConn, len(targets))...)
	p.mu.Unlock()

	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := 0; w < p.cfg.Parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(targets) || ctx.Err() != nil || p.ctx.Err() != nil {
					return
				}
				idx := base + i
				c, err := p.dial(ctx, idx, targets[i])
				if err != nil {
					p.fail(idx, err)
					continue
				}
				p.mu.Lock()
				if idx < len(p.conns) {
					p.conns[idx] = c
				} else { // closed meanwhile
					c.close()
				}
				p.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func (p *Pool) fail(idx int, err error) {
	reason := err.Error()
	var re *refusedError
	switch {
	case errors.As(err, &re):
		reason = "refused -" + re.code
	case strings.Contains(reason, "too many open files"):
		reason = "too many open files"
	case strings.Contains(reason, "cannot assign requested address"):
		reason = "no free local port"
	case strings.Contains(reason, "connection refused"):
		reason = "connection refused"
	case strings.Contains(reason, "timeout"):
		reason = "timeout"
	}
	p.mu.Lock()
	p.failed[reason]++
	p.dead = append(p.dead, idx)
	p.mu.Unlock()
}

type refusedError struct{ code string }

func (e *refusedError) Error() string { return "comet refused the subscription: -" + e.code }

// localAddr is the source address of connection idx: 127.0.0.1 .. .N.
func (p *Pool) localAddr(idx int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+(p.cfg.IndexBase+idx)%p.cfg.SourceAddrs))}
}

func (p *Pool) dial(ctx context.Context, idx int, t Target) (subConn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	d := &net.Dialer{LocalAddr: p.localAddr(idx)}
	deadline, _ := ctx.Deadline()
	switch p.cfg.Proto {
	case "ws", "wss":
		return p.dialWS(ctx, d, deadline, idx, t)
	case "sse":
		return p.dialSSE(ctx, d, deadline, idx, t)
	}
	nc, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(deadline)
	if _, err := nc.Write(p.subscription(t).AppendTCP(nil)); err != nil {
		nc.Close()
		return nil, err
	}
	r := bufio.NewReaderSize(nc, 256)
	kind, body, err := api.ReadTCPFrame(r, nil)
	if err == nil && kind == api.FrameError {
		err = &refusedError{code: string(body)}
	} else if err == nil && kind != api.FrameOK {
		err = errors.New("first frame is not +h")
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	c := &tcpSub{nc: nc}
	p.connected.Add(1)
	p.wg.Add(1)
	go p.readTCP(idx, c, r)
	return c, nil
}

// subscription is the subscribe request for t.
func (p *Pool) subscription(t Target) api.Subscribe {
	return api.Subscribe{Key: t.Key, Heartbeat: p.cfg.Heartbeat, Token: p.cfg.Token, Version: p.cfg.Version}
}

func (p *Pool) dialWS(ctx context.Context, d *net.Dialer, deadline time.Time, idx int, t Target) (subConn, error) {
	dialer := websocket.Dialer{
		NetDialContext:   d.DialContext,
		HandshakeTimeout: p.cfg.Timeout,
		ReadBufferSize:   512,
		WriteBufferSize:  256,
		TLSClientConfig:  p.cfg.TLS,
	}
	base := "ws://" + t.Addr + "/sub"
	switch {
	case strings.Contains(t.Addr, "://"):
		base = t.Addr // a wss:// URL from web (docs/protocol.md §2.4)
	case p.cfg.Proto == "wss":
		base = "wss://" + t.Addr + "/sub"
	}
	u := base + "?" + p.subscription(t).Query().Encode()
	ws, resp, err := dialer.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("websocket handshake: HTTP %d", resp.StatusCode)
		}
		return nil, err
	}
	ws.SetReadDeadline(deadline)
	_, msg, err := ws.ReadMessage()
	if err == nil {
		switch kind, body := api.ParseWSText(msg); kind {
		case api.FrameOK:
		case api.FrameError:
			err = &refusedError{code: string(body)}
		default:
			err = fmt.Errorf("first frame is %q, not +h", truncate(msg, 40))
		}
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	ws.SetReadDeadline(time.Time{})
	c := &wsSub{ws: ws}
	p.connected.Add(1)
	p.wg.Add(1)
	go p.readWS(idx, c)
	return c, nil
}

// dialSSE opens a Server-Sent Events stream (docs/protocol.md §2.5) on the
// WebSocket address: GET /sse, a 200 answer and ":+h".
func (p *Pool) dialSSE(ctx context.Context, d *net.Dialer, deadline time.Time, idx int, t Target) (subConn, error) {
	nc, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(deadline)
	req := "GET " + api.SSEPath + "?" + p.subscription(t).Query().Encode() + " HTTP/1.1\r\nHost: " + t.Addr + "\r\n\r\n"
	r := bufio.NewReaderSize(nc, 512)
	var resp *http.Response
	if _, err = io.WriteString(nc, req); err == nil {
		resp, err = http.ReadResponse(r, nil)
	}
	if err == nil && resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
		err = fmt.Errorf("sse: HTTP %d %q", resp.StatusCode, body)
		if b := bytes.TrimSpace(body); len(b) == 2 && b[0] == '-' {
			err = &refusedError{code: string(b[1:])}
		}
	}
	if err == nil {
		var first string
		if first, err = r.ReadString('\n'); err == nil && first+"\n" != api.SSESubscribed {
			err = fmt.Errorf("sse: first line %q, not :+h", first)
		}
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	c := &sseSub{nc: nc}
	p.connected.Add(1)
	p.wg.Add(1)
	go p.readSSE(idx, r)
	return c, nil
}

// readSSE reads events: each "data: " line is one message; comments are
// heartbeats.
func (p *Pool) readSSE(idx int, r *bufio.Reader) {
	defer p.wg.Done()
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			p.drop(idx, err)
			return
		}
		switch {
		case bytes.HasPrefix(line, []byte("data: ")):
			now := time.Now()
			if pl, err := ParseDelivery(bytes.TrimSpace(line[6:])); err == nil {
				p.tracker.Deliver(idx, pl, now)
			} else {
				p.tracker.Bad()
			}
		case bytes.HasPrefix(line, []byte(":")):
			p.heartbeats.Add(1)
		}
	}
}

func (p *Pool) readTCP(idx int, c *tcpSub, r *bufio.Reader) {
	defer p.wg.Done()
	var scratch []byte
	for {
		kind, body, err := api.ReadTCPFrame(r, scratch)
		if err != nil {
			p.drop(idx, err)
			return
		}
		switch kind {
		case api.FrameOK:
			p.heartbeats.Add(1)
		case api.FrameError:
			p.drop(idx, &refusedError{code: string(body)})
			return
		case api.FrameMessage:
			now := time.Now()
			if cap(body) > cap(scratch) {
				scratch = body[:0]
			}
			if pl, err := ParseDelivery(body); err == nil {
				p.tracker.Deliver(idx, pl, now)
			} else {
				p.tracker.Bad()
			}
		}
	}
}

func (p *Pool) readWS(idx int, c *wsSub) {
	defer p.wg.Done()
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			p.drop(idx, err)
			return
		}
		now := time.Now()
		switch kind, body := api.ParseWSText(msg); kind {
		case api.FrameError:
			p.drop(idx, &refusedError{code: string(body)})
			return
		case api.FrameOK:
			p.heartbeats.Add(1)
			continue
		}
		if pl, err := ParseDelivery(msg); err == nil {
			p.tracker.Deliver(idx, pl, now)
		} else {
			p.tracker.Bad()
		}
	}
}

// drop records a connection that ended while the pool was open.
func (p *Pool) drop(idx int, err error) {
	if p.ctx.Err() != nil {
		return
	}
	p.connected.Add(-1)
	p.dropped.Add(1)
	p.mu.Lock()
	p.dead = append(p.dead, idx)
	p.mu.Unlock()
	if errors.Is(err, io.EOF) {
		err = errors.New("closed by comet (EOF)")
	}
	p.dropErr.CompareAndSwap(nil, err.Error())
}

// Run sends each connection's heartbeat every Heartbeat seconds, spread
// evenly over that period, until Close. Call it in its own goroutine, or
// use Start.
func (p *Pool) run() {
	defer p.wg.Done()
	hb := p.cfg.Heartbeat
	// A margin: send a little before the period ends, as clients do.
	slots := hb - 2
	if slots < 1 {
		slots = 1
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for slot := 0; ; slot = (slot + 1) % slots {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
		p.mu.Lock()
		batch := make([]subConn, 0, len(p.conns)/slots+1)
		for i := slot; i < len(p.conns); i += slots {
			if p.conns[i] != nil {
				batch = append(batch, p.conns[i])
			}
		}
		p.mu.Unlock()
		deadline := time.Now().Add(5 * time.Second)
		for _, c := range batch {
			c.heartbeat(deadline) // a failed write shows up as a drop in the reader
		}
	}
}

// Start begins heartbeating: every connection, opened before or after,
// sends "h" once every Heartbeat−2 seconds (at most that long after it
// subscribed), spread so that each second carries an equal share.
func (p *Pool) Start() {
	p.wg.Add(1)
	go p.run()
}

// PoolStats counts the pool's connections.
type PoolStats struct {
	Connected  int64          `json:"connected"`
	Dropped    int64          `json:"dropped"`
	Failed     map[string]int `json:"failed,omitempty"`
	Heartbeats uint64         `json:"heartbeats"`
	FirstDrop  string         `json:"first_drop,omitempty"`
	Dead       []int          `json:"dead,omitempty"` // subscribers (global number) not connected
}

// FailedTotal is the number of connections that could not be opened.
func (s PoolStats) FailedTotal() int {
	n := 0
	for _, c := range s.Failed {
		n += c
	}
	return n
}

// FailedString lists the failure reasons, most frequent first.
func (s PoolStats) FailedString() string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range s.Failed {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var parts []string
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%s: %d", e.k, e.v))
	}
	return strings.Join(parts, ", ")
}

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	failed := make(map[string]int, len(p.failed))
	for k, v := range p.failed {
		failed[k] = v
	}
	dead := make([]int, len(p.dead))
	for i, d := range p.dead {
		dead[i] = p.cfg.IndexBase + d
	}
	p.mu.Unlock()
	s := PoolStats{
		Connected:  p.connected.Load(),
		Dropped:    p.dropped.Load(),
		Failed:     failed,
		Heartbeats: p.heartbeats.Load(),
		Dead:       dead,
	}
	if v, ok := p.dropErr.Load().(string); ok {
		s.FirstDrop = v
	}
	return s
}

// Close closes every connection and waits for the pool's goroutines.
func (p *Pool) Close() {
	p.cancel()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
	p.wg.Wait()
}

type tcpSub struct{ nc net.Conn }

var heartbeatByte = []byte(api.Heartbeat)

func (c *tcpSub) heartbeat(deadline time.Time) error {
	c.nc.SetWriteDeadline(deadline)
	_, err := c.nc.Write(heartbeatByte)
	return err
}

func (c *tcpSub) close() { c.nc.Close() }

// sseSub is an SSE stream: the client sends nothing; comet sends the
// heartbeat comments.
type sseSub struct{ nc net.Conn }

func (c *sseSub) heartbeat(time.Time) error { return nil }
func (c *sseSub) close()                    { c.nc.Close() }

type wsSub struct{ ws *websocket.Conn }

func (c *wsSub) heartbeat(deadline time.Time) error {
	c.ws.SetWriteDeadline(deadline)
	return c.ws.WriteMessage(websocket.TextMessage, heartbeatByte)
}

func (c *wsSub) close() { c.ws.NetConn().Close() }
