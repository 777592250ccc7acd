// Package comet is the connection daemon of gopush (docs/protocol.md §2, §4, §5, §6,
// §8): it holds the subscribers' TCP and WebSocket connections of the keys
// the ring gives it, and delivers the messages web pushes through CometRPC.
//
// A Comet is built by New, started by Start and stopped by Close. It owns
// every goroutine it starts: Close returns once they have all ended.
package comet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"gopush/api"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/certs"
	"gopush/internal/connlimit"
	"gopush/internal/daemon"
	"gopush/internal/observe"
	"gopush/internal/routemux"
	"gopush/membership"
	"gopush/mid"
)

// Comet is one comet daemon.
type Comet struct {
	cfg *conf.Comet
	log *slog.Logger

	stats    *stats
	hub      *hub
	ring     *ring
	mids     *mid.Generator
	order    *orderLocks
	upgrader *websocket.Upgrader
	conns    connSet
	connIDs  atomic.Uint64
	lostW    lostWatch
	// sseBeat, when set (by tests), replaces the client's heartbeat as the
	// period of SSE heartbeat comments.
	sseBeat time.Duration

	budget      daemon.Budget      // caps derived from the open-file limit
	clientLimit *connlimit.Limiter // TCP and WebSocket ports together
	verifier    *tokenVerifier     // channel.token.mode = jwt; nil otherwise

	ctx    context.Context // ends when Close starts
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine comet starts

	// Set by Start.
	store   caller // the message-node pool
	pool    closer
	zk      *membership.ZK
	reg     *membership.Registration
	rpc     *gobrpc.Server
	pair    *certs.Pair    // nil without TLS listeners
	tcpLns  []net.Listener // plain and TLS (tcp.bind, then tcp.tls.bind)
	wsLns   []net.Listener // websocket.bind
	wssLns  []net.Listener // websocket.tls.bind
	statLns []net.Listener

	tcpTLSAddrs []string // the addresses of the TLS ones among tcpLns
	pprof       *daemon.Pprof
	servers     []*http.Server  // websocket, stat
	obs         *observe.Server // metrics.bind; nil when off

	// Read by the metrics listener, which starts before them.
	zkp       atomic.Pointer[membership.ZK]
	regp      atomic.Pointer[membership.Registration]
	accepting atomic.Bool // client listeners open and served

	closeOnce sync.Once
	closeErr  error

	pushIds pushIds // pushes under an id delivered here (push_id.go)
}

// New builds a comet from a validated configuration. It does not touch the
// network; Start does.
func New(cfg *conf.Comet, log *slog.Logger) *Comet {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Comet{
		cfg:   cfg,
		log:   log,
		stats: &stats{start: time.Now()},
		ring:  newRing(cfg.ZooKeeper.Comet.Node),
		mids:  mid.New(nil),
		order: &orderLocks{},
	}
	c.hub = newHub(cfg.Channel.Bucket, c.stats)
	c.upgrader = c.newUpgrader()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

func (c *Comet) wantProto(p string) bool {
	for _, x := range c.cfg.Channel.Proto {
		if x == p {
			return true
		}
	}
	return false
}

// Start opens every listener, registers this instance in ZooKeeper, builds
// the ring from ZooKeeper so that keys are checked before the first Migrate,
// starts watching the message nodes, and then begins accepting clients. On
// error everything already started is stopped again.
func (c *Comet) Start() error {
	// The certificate first: a bad pair is the configuration's fault
	// (daemon.Usage), reported before anything else happens.
	if c.cfg.ServesTLS() {
		var err error
		if c.pair, err = c.cfg.TLS.Load(); err != nil {
			return daemon.Usage(err)
		}
	}
	if err := c.start(); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(ctx)
		return err
	}
	return nil
}

func (c *Comet) start() error {
	cfg := c.cfg
	var err error
	tcp, ws := c.wantProto("tcp"), c.wantProto("websocket")
	if cfg.Channel.Token.Mode == "jwt" {
		if c.verifier, err = newTokenVerifier(cfg.Channel.Token.Alg, cfg.Channel.Token.Secret, cfg.Channel.Token.KeyFile); err != nil {
			return err
		}
	}
	c.budget = daemon.FileBudget(cfg.Limit)
	// TCP refuses over-limit clients by closing, WebSocket with HTTP 429
	// before the upgrade: the limiter hands them on marked (Defer).
	c.clientLimit = connlimit.New("clients", daemon.ClientRules(cfg.Limit, c.budget, true), c.log)
	statLimit := connlimit.New("stat", connlimit.Rules{Max: c.budget.Internal}, c.log)
	if tcp {
		if c.tcpLns, err = listenAll("tcp.bind", cfg.TCP.Bind, c.clientLimit); err != nil {
			return err
		}
		// TLS over the connection caps, so a refused client costs no
		// handshake.
		tlsLns, err := listenAll("tcp.tls.bind", cfg.TCP.TLS.Bind, c.clientLimit)
		if err != nil {
			return err
		}
		c.tcpTLSAddrs = addrsOf(tlsLns)
		for _, ln := range tlsLns {
			c.tcpLns = append(c.tcpLns, c.pair.Listener(ln))
		}
	}
	if ws {
		if c.wsLns, err = listenAll("websocket.bind", cfg.WebSocket.Bind, c.clientLimit); err != nil {
			return err
		}
		if c.wssLns, err = listenAll("websocket.tls.bind", cfg.WebSocket.TLS.Bind, c.clientLimit); err != nil {
			return err
		}
		for i, ln := range c.wssLns {
			c.wssLns[i] = c.pair.Listener(ln, "http/1.1")
		}
	}
	if c.statLns, err = listenAll("stat.bind", cfg.Stat.Bind, statLimit); err != nil {
		return err
	}
	if c.pprof, err = daemon.ServePprof(cfg.Pprof.Bind, c.log); err != nil {
		return err
	}
	if len(cfg.Metrics.Bind) > 0 {
		reg := observe.NewRegistry()
		c.registerMetrics(reg)
		if c.obs, err = observe.Serve(cfg.Metrics.Bind, reg, c.ready, c.log); err != nil {
			return err
		}
	}
	if c.rpc, err = gobrpc.ServeWith(api.CometService, &RPC{c: c}, cfg.RPC.Bind, daemon.RPCOptions(cfg.RPC, c.budget.Internal), c.log); err != nil {
		return fmt.Errorf("rpc.bind: %w", err)
	}
	if cfg.RPC.Secret == "" {
		daemon.WarnIfExposed(c.log, "rpc.bind", cfg.RPC.Bind, "rpc.secret: any host in rpc.allow can push, migrate and add tokens")
	}

	zkc := cfg.ZooKeeper
	if c.zk, err = membership.DialZK(zkc.Addr, zkc.Timeout.D(), c.log); err != nil {
		return fmt.Errorf("zookeeper %v: %w", zkc.Addr, err)
	}
	c.zkp.Store(c.zk)
	data, err := json.Marshal(c.nodeData())
	if err != nil {
		return err
	}
	// Know the message nodes before web can route a push here.
	c.watchMessageNodes(zkc.Timeout.D())
	nodePath := zkc.Comet.Path + "/" + zkc.Comet.Node
	if c.reg, err = membership.RegisterNotify(c.ctx, c.zk, nodePath, data, c.log, c.unregistered); err != nil {
		return fmt.Errorf("registering in zookeeper at %s: %w", nodePath, err)
	}
	c.regp.Store(c.reg)
	c.loadRing()

	c.startLostWatch()

	for _, ln := range c.tcpLns {
		c.wg.Add(1)
		go c.acceptTCP(ln)
	}
	wsMux := c.wsMux()
	c.serve(c.wsLns, wsMux)
	c.serve(c.wssLns, wsMux) // the same handler over TLS
	c.serve(c.statLns, c.statMux())
	c.wg.Add(1)
	go c.sweepTokens()
	c.accepting.Store(true)
	c.log.Info("comet started", "node", zkc.Comet.Node, "tcp", c.TCPAddrs(), "tcp_tls", c.tcpTLSAddrs,
		"websocket", addrsOf(c.wsLns), "websocket_tls", addrsOf(c.wssLns),
		"rpc", c.rpc.Addrs(), "stat", addrsOf(c.statLns), "metrics", c.obs.Addrs(), "zk_path", c.reg.Path())
	if c.pair != nil {
		c.log.Info("tls certificate loaded", "cert", c.pair.String())
	}
	return nil
}

// nodeData is what this instance publishes in ZooKeeper: for each
// listener its advertise list, or its binds (docs/protocol.md §2.4). A protocol
// that is not served publishes nothing.
func (c *Comet) nodeData() api.CometNodeData {
	cfg := c.cfg
	d := api.CometNodeData{
		RPC:    advertise(cfg.RPC.Advertise, cfg.RPC.Bind, c.rpc.Addrs()),
		TCP:    []string{},
		WS:     []string{},
		Weight: cfg.ZooKeeper.Comet.Weight,
	}
	if c.wantProto("tcp") {
		d.TCP = advertise(cfg.TCP.Advertise, cfg.TCP.Bind, c.TCPAddrs())
		d.TCPTLS = advertise(cfg.TCP.TLS.Advertise, cfg.TCP.TLS.Bind, c.tcpTLSAddrs)
	}
	if c.wantProto("websocket") {
		d.WS = advertise(cfg.WebSocket.Advertise, cfg.WebSocket.Bind, addrsOf(c.wsLns))
		d.WSS = advertise(cfg.WebSocket.TLS.Advertise, cfg.WebSocket.TLS.Bind, addrsOf(c.wssLns))
	}
	if len(d.TCPTLS) == 0 {
		d.TCPTLS = nil
	}
	if len(d.WSS) == 0 {
		d.WSS = nil
	}
	return d
}

// Reload reads the certificate and key files again (on SIGHUP): new TLS
// handshakes present the new pair, open connections keep theirs. A bad
// pair is refused and the old one keeps serving.
func (c *Comet) Reload() error {
	if c.pair == nil {
		return nil
	}
	if err := c.pair.Reload(); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	c.log.Info("tls certificate reloaded", "cert", c.pair.String())
	return nil
}

// wsMux routes the WebSocket listeners: WebSocket subscribers on /sub
// (docs/protocol.md §2.2) and Server-Sent Events subscribers on /sse
// (§2.5). The plain and the TLS listeners (§2.4) serve this one handler.
func (c *Comet) wsMux() *routemux.Mux {
	mux := routemux.New()
	mux.HandleFunc("/sub", c.serveWS)
	mux.HandleFunc(api.SSEPath, c.serveSSE)
	return mux
}

// statMux routes the stat listeners (docs/protocol.md §8).
func (c *Comet) statMux() *routemux.Mux {
	mux := routemux.New()
	mux.HandleFunc("/stat", c.statHandler)
	return mux
}

// migrate installs a new ring and closes the connections of keys that now
// belong to another node.
func (c *Comet) migrate(nodes map[string]int) error {
	changed, err := c.ring.replace(nodes)
	if err != nil || !changed {
		return err
	}
	moved := c.hub.connsWhere(func(key string) bool { return !c.ring.owns(key) })
	for _, cn := range moved {
		cn.close()
	}
	c.stats.migrations.Add(1)
	c.stats.migrationClosed.Add(int64(len(moved)))
	c.log.Info("ring changed", "nodes", nodes, "closed_connections", len(moved))
	return nil
}

// sweepTokens frees expired tokens, and the channels they kept, until Close.
func (c *Comet) sweepTokens() {
	defer c.wg.Done()
	every := min(c.cfg.Channel.Token.Expire.D()/2, time.Minute)
	every = max(every, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			c.hub.sweep(now)
		}
	}
}

// finish is the last thing a connection's reader does: close the socket,
// leave the channel, and stop being counted.
func (c *Comet) finish(cn *conn) {
	cn.close()
	if cn.subscribed {
		c.hub.remove(cn)
		c.stats.subsRemoved.Add(1)
	}
	c.stats.closed(cn)
	c.conns.remove(cn)
	c.wg.Done()
}

// serve runs an HTTP server on each listener.
func (c *Comet) serve(lns []net.Listener, h http.Handler) {
	if len(lns) == 0 {
		return
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.cfg.Channel.Handshake.Timeout.D(),
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
		ConnContext:       connlimit.ConnContext,
	}
	c.servers = append(c.servers, srv)
	for _, ln := range lns {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				c.log.Error("http server stopped", "addr", ln.Addr(), "err", err)
			}
		}()
	}
}

// Close stops the comet: it leaves ZooKeeper first (deleting its node and
// ending its session, so that web routes elsewhere at once, docs/protocol.md §9.6), then
// stops accepting, closes every client connection, stops the RPC server
// (waiting for calls in flight until ctx ends) and the message-node pool,
// and waits for its goroutines. It may be called more than once.
func (c *Comet) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { c.closeErr = c.close(ctx) })
	return c.closeErr
}

func (c *Comet) close(ctx context.Context) error {
	var errs []error
	c.obs.Stopping() // /readyz says so; /metrics answers until the end
	c.accepting.Store(false)
	if c.reg != nil {
		if err := c.reg.Close(); err != nil {
			errs = append(errs, fmt.Errorf("leaving zookeeper: %w", err))
		} else {
			c.leaveRing()
		}
	}
	if c.zk != nil {
		c.zk.Close()
	}
	c.cancel()
	for _, ln := range c.tcpLns {
		ln.Close()
	}
	for _, srv := range c.servers {
		srv.Close()
	}
	for _, lns := range [][]net.Listener{c.wsLns, c.wssLns, c.statLns} {
		for _, ln := range lns {
			ln.Close() // servers not started yet when Start failed
		}
	}
	c.pprof.Close(ctx)
	c.conns.closeAll()
	if c.rpc != nil {
		if err := c.rpc.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping rpc: %w", err))
		}
	}
	if c.pool != nil {
		c.pool.Close()
	}
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("comet goroutines still running: %w", ctx.Err()))
	}
	if err := c.obs.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	c.log.Info("comet stopped")
	return errors.Join(errs...)
}

// TCPAddrs returns the plain TCP listen addresses (useful with port 0).
func (c *Comet) TCPAddrs() []string {
	return addrsOf(c.tcpLns[:len(c.tcpLns)-len(c.tcpTLSAddrs)])
}

// TCPTLSAddrs returns the TCP-over-TLS listen addresses.
func (c *Comet) TCPTLSAddrs() []string { return c.tcpTLSAddrs }

// WSAddrs returns the WebSocket listen addresses.
func (c *Comet) WSAddrs() []string { return addrsOf(c.wsLns) }

// WSSAddrs returns the WebSocket-over-TLS listen addresses.
func (c *Comet) WSSAddrs() []string { return addrsOf(c.wssLns) }

// StatAddrs returns the stat listen addresses.
func (c *Comet) StatAddrs() []string { return addrsOf(c.statLns) }

// MetricsAddrs returns the metrics listen addresses.
func (c *Comet) MetricsAddrs() []string { return c.obs.Addrs() }

// RPCAddrs returns the RPC listen addresses.
func (c *Comet) RPCAddrs() []string {
	if c.rpc == nil {
		return nil
	}
	return c.rpc.Addrs()
}

// listenAll listens on every address of binds, each listener wrapped by
// lim (first, so that TLS or anything else wraps on top of it).
func listenAll(key string, binds []string, lim *connlimit.Limiter) ([]net.Listener, error) {
	var lns []net.Listener
	for _, b := range binds {
		ln, err := net.Listen("tcp", b)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		lns = append(lns, lim.Wrap(ln))
	}
	return lns, nil
}

// ClientCounts returns the counters of the client listeners' limiter
// (connections open, accepted, refused by reason).
func (c *Comet) ClientCounts() connlimit.Counts {
	if c.clientLimit == nil {
		return connlimit.Counts{}
	}
	return c.clientLimit.Counts()
}

// RPCCounts returns the RPC server's refusal counters.
func (c *Comet) RPCCounts() gobrpc.Counts {
	if c.rpc == nil {
		return gobrpc.Counts{}
	}
	return c.rpc.Counts()
}

func addrsOf(lns []net.Listener) []string {
	out := make([]string, 0, len(lns))
	for _, ln := range lns {
		out = append(out, ln.Addr().String())
	}
	return out
}

// advertise returns the addresses published in ZooKeeper: the configured
// advertise list when it is set (even without a listener: nginx may serve
// that address, deploy/README.md), else each configured bind address as
// written (clients need a host name they can reach, not 0.0.0.0 resolved),
// with the actual port when the configured one is 0. Without either, a
// protocol that is not served (no listener) publishes none.
func advertise(set, binds, actual []string) []string {
	if len(set) > 0 {
		return set
	}
	out := make([]string, 0, len(binds))
	if len(actual) == 0 {
		return out
	}
	for i, b := range binds {
		host, port, err := net.SplitHostPort(b)
		if err == nil && port == "0" && i < len(actual) {
			if _, p, err := net.SplitHostPort(actual[i]); err == nil {
				b = net.JoinHostPort(host, p)
			}
		}
		out = append(out, b)
	}
	return out
}
