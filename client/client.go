// Package client is a Go subscriber of a gopush cluster.
//
// Given the public address of web and a key, a Client asks web which comet
// serves the key (/1/server/get), connects to that comet over TCP or
// WebSocket, subscribes, sends heartbeats and delivers every pushed message
// on the Messages channel. On any disconnect (the comet died, a migration
// closed the connection, the network broke) it waits a backoff, asks web
// again, subscribes again, then fetches the messages it missed with
// /1/msg/get?m=<last mid delivered>. Messages are delivered once each, in
// ascending mid order: a message whose mid is not above the last one
// delivered is dropped.
//
// Private messages (gid 0, pushed to the key) and public ones (gid 1,
// broadcast to every connection by /1/admin/push/all) carry mids of two
// different sequences, so each has its own last mid: LastMid and
// LastPublicMid. Order and deduplication hold within each; a public message
// may come between private ones in the order it arrived.
//
// Messages pushed with expire 0 are not stored, so one that arrives while the
// client is disconnected is lost, as the protocol intends. One that reaches
// the new connection while the offline fetch is in flight takes its place
// among the fetched ones; only if it is read from the socket after the
// fetch has answered with a newer stored message is it dropped (delivering
// it would break the mid order).
package client

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Protocols a Client can subscribe with.
const (
	TCP       = "tcp"
	WebSocket = "websocket"
)

// DefaultVersion is sent as the client version when Config.Version is
// empty. Any non-empty version makes comet send the current message form, in
// which "msg" is the pushed JSON itself.
const DefaultVersion = "1.0.5"

// MinHeartbeat is the smallest heartbeat comet accepts (it answers -p below).
const MinHeartbeat = 30 * time.Second

// Config describes one subscriber. Web and Key are required.
type Config struct {
	// Web is the base URL of web's public API, e.g. "http://127.0.0.1:8090"
	// (a URL without a scheme gets "http://").
	Web string
	// Key is the subscriber's identity.
	Key string
	// Token is sent when comet has auth = true (see web /1/token/add).
	Token string
	// Proto is TCP (default) or WebSocket.
	Proto string
	// TLS, when set, makes the client subscribe over TLS: it asks web for
	// the TLS address of Proto (p=4 for TCP, p=3 for WebSocket, see
	// docs/protocol.md §2.4) and verifies comet's certificate with this
	// configuration: RootCAs are the authorities trusted (nil: the
	// system's; see RootCAs to read a PEM file). ServerName, when empty,
	// is the host of each comet address. Unless HTTPClient is set, web's
	// https:// URL is verified with it too.
	TLS *tls.Config
	// Heartbeat is the interval of the client's heartbeats; whole seconds,
	// at least MinHeartbeat. Default MinHeartbeat.
	Heartbeat time.Duration
	// Version is the client version sent on subscribe; default DefaultVersion.
	Version string
	// LastMid is the mid of the newest message the caller already has.
	// After the first subscribe the client fetches the stored messages above
	// it (0: every message stored for the key).
	LastMid int64
	// LastPublicMid is the same for public messages (gid 1): the kept
	// broadcasts above it are fetched too (pm= on /1/msg/get).
	LastPublicMid int64
	// MinBackoff and MaxBackoff bound the wait between two connection
	// attempts; it doubles after each failure. Defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Buffer is the capacity of the Messages channel; default 64.
	Buffer int
	// HTTPClient calls web; default a client of its own with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives one line per connection event; default: discarded.
	Logger *slog.Logger
	// OnConnect, if set, is called after each successful subscribe (before
	// the offline fetch) with the comet address.
	OnConnect func(comet string)
	// OnError, if set, is called with each error that ended a connection
	// attempt or a connection: *ServerError for comet's replies (-a: token
	// refused, -n: wrong comet, ...), *APIError for web's codes, or a
	// network error. The client retries after each one.
	OnError func(err error)

	// heartbeatEvery and readTimeout override the intervals derived from
	// Heartbeat; tests in this package use them to run fast.
	heartbeatEvery time.Duration
	readTimeout    time.Duration
}

// Message is one pushed message.
type Message struct {
	Mid int64
	Gid int    // PrivateGid or PublicGid
	Msg []byte // the pushed JSON, raw
}

// Group ids of Message.Gid.
const (
	PrivateGid = 0 // pushed to the key
	PublicGid  = 1 // broadcast to every subscriber
)

// Client is a running subscriber. Build it with New, stop it with Close.
type Client struct {
	cfg    Config
	web    *webAPI
	ownTr  *http.Transport // closed on exit when the client made it
	log    *slog.Logger
	out    chan Message
	cancel context.CancelFunc
	done   chan struct{}
	last   atomic.Int64 // private (gid 0)
	lastPM atomic.Int64 // public (gid 1)
	comet  atomic.Pointer[string]
	once   sync.Once

	subscribes, online, offline atomic.Uint64
}

// Stats counts what a client did so far.
type Stats struct {
	Subscribes uint64 // subscriptions comet accepted
	Online     uint64 // messages delivered as comet pushed them
	Offline    uint64 // messages delivered from the offline fetch
}

// Stats returns the counters of the client.
func (c *Client) Stats() Stats {
	return Stats{Subscribes: c.subscribes.Load(), Online: c.online.Load(), Offline: c.offline.Load()}
}

// New checks cfg and starts the subscriber in the background. It returns
// at once; the first connection follows (see Config.OnConnect).
func New(cfg Config) (*Client, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	c := &Client{
		cfg:  cfg,
		log:  cfg.Logger,
		out:  make(chan Message, cfg.Buffer),
		done: make(chan struct{}),
	}
	hc := cfg.HTTPClient
	if hc == nil {
		c.ownTr = http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLS != nil {
			c.ownTr.TLSClientConfig = cfg.TLS.Clone()
		}
		hc = &http.Client{Transport: c.ownTr, Timeout: 10 * time.Second}
	}
	c.web = &webAPI{base: cfg.Web, key: cfg.Key, http: hc}
	c.last.Store(cfg.LastMid)
	c.lastPM.Store(cfg.LastPublicMid)
	empty := ""
	c.comet.Store(&empty)
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(ctx)
	return c, nil
}

func (cfg *Config) fill() error {
	if strings.TrimSpace(cfg.Web) == "" {
		return errors.New("client: Config.Web (base URL of web's public API) is empty")
	}
	if !strings.Contains(cfg.Web, "://") {
		cfg.Web = "http://" + cfg.Web
	}
	u, err := url.Parse(cfg.Web)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("client: Config.Web %q is not an http(s) base URL", cfg.Web)
	}
	cfg.Web = strings.TrimRight(cfg.Web, "/")
	if cfg.Key == "" {
		return errors.New("client: Config.Key is empty")
	}
	switch cfg.Proto {
	case "":
		cfg.Proto = TCP
	case TCP, WebSocket:
	default:
		return fmt.Errorf("client: Config.Proto %q: want %q or %q", cfg.Proto, TCP, WebSocket)
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = MinHeartbeat
	}
	if cfg.Heartbeat < MinHeartbeat || cfg.Heartbeat%time.Second != 0 {
		return fmt.Errorf("client: Config.Heartbeat %v: want whole seconds, at least %v", cfg.Heartbeat, MinHeartbeat)
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.LastMid < 0 || cfg.LastPublicMid < 0 {
		return fmt.Errorf("client: Config.LastMid %d or LastPublicMid %d is negative", cfg.LastMid, cfg.LastPublicMid)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return fmt.Errorf("client: Config.MaxBackoff %v is below MinBackoff %v", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.heartbeatEvery <= 0 {
		cfg.heartbeatEvery = cfg.Heartbeat
	}
	if cfg.readTimeout <= 0 {
		// comet answers every heartbeat, so a silence this long means the
		// connection is dead.
		cfg.readTimeout = cfg.heartbeatEvery + cfg.heartbeatEvery/2
	}
	return nil
}

// Messages delivers the pushed messages, in ascending mid order, each once.
// It is closed when the client stops.
func (c *Client) Messages() <-chan Message { return c.out }

// LastMid returns the mid of the newest private message delivered (or
// Config.LastMid before the first). Persist it, with LastPublicMid, to
// resume later without duplicates.
func (c *Client) LastMid() int64 { return c.last.Load() }

// LastPublicMid returns the mid of the newest public message delivered (or
// Config.LastPublicMid before the first).
func (c *Client) LastPublicMid() int64 { return c.lastPM.Load() }

// Comet returns the address of the comet the client is subscribed to, or ""
// while it is not connected.
func (c *Client) Comet() string { return *c.comet.Load() }

// Close stops the client and waits until all its goroutines have exited.
// The Messages channel is closed. Close may be called more than once.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.cancel()
		<-c.done
		if c.ownTr != nil {
			c.ownTr.CloseIdleConnections()
		}
	})
	return nil
}

// run is the reconnect loop: one session after another, with a backoff
// between them, until Close.
func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	defer close(c.out)
	wait := c.cfg.MinBackoff
	for ctx.Err() == nil {
		subscribed, err := c.session(ctx)
		empty := ""
		c.comet.Store(&empty)
		if ctx.Err() != nil {
			return
		}
		if subscribed {
			wait = c.cfg.MinBackoff
		}
		c.log.Info("gopush client: disconnected", "key", c.cfg.Key, "err", err, "retry_in", wait)
		if err != nil && c.cfg.OnError != nil {
			c.cfg.OnError(err)
		}
		t := time.NewTimer(jitter(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, c.cfg.MaxBackoff)
	}
}

// jitter spreads d over [0.8d, 1.2d) so that clients cut off together do
// not come back together.
func jitter(d time.Duration) time.Duration {
	return d*8/10 + time.Duration(rand.Int64N(int64(d)*4/10+1))
}

// session looks the comet up, subscribes, fetches the missed messages and
// then delivers online messages until the connection ends or ctx is done.
// subscribed reports whether comet accepted the subscription.
func (c *Client) session(ctx context.Context) (subscribed bool, err error) {
	addr, err := c.web.server(ctx, c.cfg.Proto, c.cfg.TLS != nil)
	if err != nil {
		return false, err
	}
	dialCtx, cancelDial := context.WithTimeout(ctx, 10*time.Second)
	tr, err := dial(dialCtx, c.cfg, addr)
	cancelDial()
	if err != nil {
		return false, err
	}
	c.comet.Store(&addr)
	c.subscribes.Add(1)
	c.log.Info("gopush client: subscribed", "key", c.cfg.Key, "comet", addr, "proto", c.cfg.Proto)
	if c.cfg.OnConnect != nil {
		c.cfg.OnConnect(addr)
	}

	sctx, cancel := context.WithCancel(ctx)
	frames := make(chan Message, 64)
	ended := make(chan error, 2)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		tr.close()
		wg.Wait()
	}()
	wg.Go(func() { ended <- c.readLoop(sctx, tr, frames) })
	wg.Go(func() { ended <- c.heartbeatLoop(sctx, tr) })

	// Everything pushed from now on reaches this connection; everything
	// stored before is in the fetch. Deliver the fetch merged, by mid, with
	// the online messages that came meanwhile (an expire-0 message among
	// them is in no fetch), then the online messages above them.
	missed, err := c.web.messages(sctx, c.last.Load(), c.lastPM.Load())
	if err != nil {
		return true, err
	}
	type sourced struct {
		m     Message
		count *atomic.Uint64
	}
	batch := make([]sourced, 0, len(missed))
	for _, m := range missed {
		batch = append(batch, sourced{m, &c.offline})
	}
drain:
	for {
		select {
		case m := <-frames:
			batch = append(batch, sourced{m, &c.online})
		default:
			break drain
		}
	}
	// Stable: of two copies of one message, the fetched one comes first
	// and the other is dropped as a duplicate.
	slices.SortStableFunc(batch, func(a, b sourced) int { return cmp.Compare(a.m.Mid, b.m.Mid) })
	for _, s := range batch {
		if err := c.deliver(sctx, s.m, s.count); err != nil {
			return true, err
		}
	}
	for {
		select {
		case <-sctx.Done():
			return true, ctx.Err()
		case err := <-ended:
			return true, err
		case m := <-frames:
			if err := c.deliver(sctx, m, &c.online); err != nil {
				return true, err
			}
		}
	}
}

// readLoop reads comet's frames, hands messages to frames and returns the
// error that ended the connection.
func (c *Client) readLoop(ctx context.Context, tr transport, frames chan<- Message) error {
	for {
		m, err := tr.next(c.cfg.readTimeout)
		if err != nil {
			return err
		}
		if m == nil { // a heartbeat answer
			continue
		}
		select {
		case frames <- *m:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Client) heartbeatLoop(ctx context.Context, tr transport) error {
	t := time.NewTicker(c.cfg.heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := tr.heartbeat(); err != nil {
				return fmt.Errorf("heartbeat: %w", err)
			}
		}
	}
}

// deliver hands m to the caller unless it is not newer than the last one
// of its sequence (private or public), and counts it in count.
func (c *Client) deliver(ctx context.Context, m Message, count *atomic.Uint64) error {
	last := &c.last
	if m.Gid == PublicGid {
		last = &c.lastPM
	}
	prev := last.Load()
	if m.Mid <= prev {
		return nil
	}
	// Advance before the hand-over, so that a caller who has received m
	// already sees it in LastMid; put it back if m is never handed over,
	// so that LastMid never names a message the caller did not get.
	last.Store(m.Mid)
	select {
	case c.out <- m:
		count.Add(1)
		return nil
	case <-ctx.Done():
		last.CompareAndSwap(m.Mid, prev)
		return ctx.Err()
	}
}
