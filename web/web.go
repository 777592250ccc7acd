// Package web is the web daemon of docs/protocol.md §3: the public HTTP API that tells
// clients which comet serves their key and hands back offline messages, and
// the admin HTTP API that backends push through. It watches the comets and
// message nodes in ZooKeeper, keeps the ketama ring of the comets, notifies
// them of migrations and prunes dead comet nodes (docs/protocol.md §5–§6).
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"gopush/api"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/certs"
	"gopush/internal/connlimit"
	"gopush/internal/daemon"
	"gopush/internal/observe"
	"gopush/membership"
	"gopush/mid"
)

// startWait bounds how long Start waits for the first comet view before it
// serves anyway (requests then get 1001 until the view arrives).
const startWait = 5 * time.Second

// Web is one web daemon. Build it with New, then Start, then Close.
type Web struct {
	cfg     *conf.Web
	log     *slog.Logger
	cluster *cluster
	msgs    caller // the message-node pool

	pubMids mid.Generator // mids web makes: push/all (http_room.go), pushes stored for an absent comet (push.go)

	zk      *membership.ZK
	pool    *gobrpc.MessagePool
	servers []*http.Server // public and admin
	lns     []net.Listener
	pprof   *daemon.Pprof
	obs     *observe.Server // metrics.bind; nil when off
	met     *metrics        // nil when metrics.bind is off
	events  *events         // recent cluster events (dashboard)
	dash    *dashboard
	zkp     atomic.Pointer[membership.ZK] // zk, for readers that start first

	publicLimit *connlimit.Limiter // the public port's caps
	adminDenied atomic.Int64       // admin requests refused for a missing or wrong token

	pair                      *certs.Pair // nil without TLS binds
	httpAddrs, adminAddrs     []string
	httpsAddrs, adminTLSAddrs []string

	cancel context.CancelFunc
	wg     sync.WaitGroup // watchers, migrator, pruner, HTTP serve loops

	closeOnce sync.Once
	closeErr  error

	oldCometIds sync.Once // "a comet has no PushPrivateId" logged once (push_id.go)
}

// New builds a web daemon from its configuration. It does no I/O.
func New(cfg *conf.Web, log *slog.Logger) *Web {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Web{
		cfg:     cfg,
		log:     log,
		cluster: newCluster(log, cfg.RPC.Timeout.D()),
		events:  newEvents(),
	}
	w.cluster.opts = daemon.RPCOptions(cfg.RPC, 0)
	w.dash = newDashboard(log, w.cluster, cfg.ZooKeeper.Comet.Path, w.events)
	w.dash.zk = w.zkConn
	return w
}

// zkConn returns the ZooKeeper connection, nil before it is dialled.
func (w *Web) zkConn() *zk.Conn {
	if z := w.zkp.Load(); z != nil {
		return z.Conn()
	}
	return nil
}

// Start listens on every bind address, connects to ZooKeeper, starts
// watching comets and message nodes, and serves HTTP. It returns once it
// serves, or with an error (having released what it took).
func (w *Web) Start() error {
	// The certificate first: a bad pair is the configuration's fault
	// (daemon.Usage), reported before anything else happens.
	if w.cfg.ServesTLS() {
		var err error
		if w.pair, err = w.cfg.TLS.Load(); err != nil {
			return daemon.Usage(err)
		}
	}
	if err := w.start(); err != nil {
		w.Close(context.Background())
		return err
	}
	return nil
}

func (w *Web) start() error {
	cfg := w.cfg
	if len(cfg.Metrics.Bind) > 0 {
		reg := observe.NewRegistry()
		w.met = newMetrics(reg, w)
		w.cluster.met = w.met
		var err error
		if w.obs, err = observe.Serve(cfg.Metrics.Bind, reg, w.ready, w.log); err != nil {
			return err
		}
	}
	public, admin := w.publicHandler(), w.adminHandler()
	// The public port is capped below the open-file limit so that the
	// admin port, ZooKeeper and the RPC clients always find descriptors;
	// clients over the per-address limits get HTTP 429 (Defer).
	budget := daemon.FileBudget(cfg.Limit)
	w.publicLimit = connlimit.New("public", daemon.ClientRules(cfg.Limit, budget, true), w.log)
	w.met.connLimits(w.PublicCounts)
	adminLimit := connlimit.New("admin", connlimit.Rules{Max: budget.Internal}, w.log)
	type serve struct {
		addr string
		h    http.Handler
		out  *[]string
		lim  *connlimit.Limiter
		tls  bool
	}
	var todo []serve
	for _, a := range cfg.HTTP.Bind {
		todo = append(todo, serve{a, public, &w.httpAddrs, w.publicLimit, false})
	}
	for _, a := range cfg.HTTP.TLS.Bind {
		todo = append(todo, serve{a, public, &w.httpsAddrs, w.publicLimit, true})
	}
	for _, a := range cfg.Admin.Bind {
		todo = append(todo, serve{a, admin, &w.adminAddrs, adminLimit, false})
	}
	for _, a := range cfg.Admin.TLS.Bind {
		todo = append(todo, serve{a, admin, &w.adminTLSAddrs, adminLimit, true})
	}
	if cfg.Admin.Token == "" {
		daemon.WarnIfExposed(w.log, "admin.bind", cfg.Admin.Bind, "admin.token: anyone who reaches it can push")
		daemon.WarnIfExposed(w.log, "admin.tls.bind", cfg.Admin.TLS.Bind, "admin.token: anyone who reaches it can push")
		if cfg.HTTP.TokenAdd {
			daemon.WarnIfExposed(w.log, "http.bind", cfg.HTTP.Bind, "admin.token while http.tokenadd is on: anyone can add tokens")
			daemon.WarnIfExposed(w.log, "http.tls.bind", cfg.HTTP.TLS.Bind, "admin.token while http.tokenadd is on: anyone can add tokens")
		}
	}
	// Listen first, so that a taken port fails the start before anything
	// else happens.
	for _, s := range todo {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", s.addr, err)
		}
		if s.out != nil {
			*s.out = append(*s.out, ln.Addr().String())
		}
		ln = s.lim.Wrap(ln)
		if s.tls {
			// Over the connection caps; HTTP/1.1 only, as on the plain
			// ports; the handshake is bounded by the server's timeouts.
			ln = w.pair.Listener(ln, "http/1.1")
		}
		w.lns = append(w.lns, ln)
		timeout := cfg.HTTP.ServerTimeout.D()
		w.servers = append(w.servers, &http.Server{
			Handler:           s.h,
			ReadHeaderTimeout: timeout,
			ReadTimeout:       timeout,
			WriteTimeout:      timeout,
			IdleTimeout:       cfg.HTTP.IdleTimeout.D(),
			ErrorLog:          slog.NewLogLogger(w.log.Handler(), slog.LevelWarn),
			ConnContext:       connlimit.ConnContext,
		})
	}
	var err error
	if w.pprof, err = daemon.ServePprof(cfg.Pprof.Bind, w.log); err != nil {
		return err
	}

	z, err := membership.DialZK(cfg.ZooKeeper.Addr, cfg.ZooKeeper.Timeout.D(), w.log)
	if err != nil {
		return fmt.Errorf("zookeeper %v: %w", cfg.ZooKeeper.Addr, err)
	}
	w.zk = z
	w.zkp.Store(z)
	for _, p := range []string{cfg.ZooKeeper.Comet.Path, cfg.ZooKeeper.Message.Path, path.Dir(cfg.ZooKeeper.Migrate.Path)} {
		if p == "/" {
			continue
		}
		if err := membership.EnsurePath(z.Conn(), p); err != nil {
			return fmt.Errorf("zookeeper: create %s: %w", p, err)
		}
	}
	w.pool = gobrpc.NewMessagePoolWith(cfg.RPC.Ping.D(), cfg.RPC.Retry.D(), cfg.RPC.Timeout.D(), w.cluster.opts, w.log)
	w.msgs = w.met.messageCaller(w.pool, api.MessageGetPrivate, api.MessageDelPrivate, api.MessageGetPublic,
		api.MessageSavePublic, api.MessageRoomJoin, api.MessageRoomLeave, api.MessageRoomKeys, api.MessageRoomDel,
		api.MessageSaveBatch)

	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	first := make(chan struct{})
	var once sync.Once
	w.goRun(func() {
		membership.WatchComets(ctx, z, cfg.ZooKeeper.Comet.Path, w.log, func(v membership.CometView) {
			w.cluster.update(v)
			once.Do(func() { close(first) })
		})
	})
	w.goRun(func() {
		membership.WatchMessages(ctx, z, cfg.ZooKeeper.Message.Path, w.log, func(nodes []api.MessageNode) {
			w.pool.Update(nodes)
			w.dash.setMessageNodes(nodes)
		})
	})
	w.goRun(func() { w.dash.run(ctx) })
	mig := newMigrator(w.log, z, cfg.ZooKeeper.Migrate.Path, w.cluster, cfg.RPC.Retry.D())
	mig.met, mig.events = w.met, w.events
	w.goRun(func() { mig.run(ctx) })
	if cfg.Prune.Enable {
		pr := newPruner(w.log, z, cfg.ZooKeeper.Comet.Path, w.cluster,
			cfg.Prune.Interval.D(), cfg.Prune.Failures, cfg.RPC.Timeout.D())
		pr.met, pr.events = w.met, w.events
		if pr.votes, err = newPruneVotes(ctx, z, cfg.Prune.Path, w.log); err != nil {
			return err
		}
		w.goRun(func() { pr.run(ctx) })
	}
	select {
	case <-first:
	case <-time.After(startWait):
		w.log.Warn("no comet view from zookeeper yet; serving anyway", "path", cfg.ZooKeeper.Comet.Path)
	}

	for i, srv := range w.servers {
		ln := w.lns[i]
		w.goRun(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				w.log.Error("http serve stopped", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
	w.log.Info("web started", "http", w.httpAddrs, "https", w.httpsAddrs, "admin", w.adminAddrs, "admin_tls", w.adminTLSAddrs,
		"comet.path", cfg.ZooKeeper.Comet.Path, "message.path", cfg.ZooKeeper.Message.Path)
	return nil
}

func (w *Web) goRun(f func()) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		f()
	}()
}

// MetricsAddrs returns the metrics listen addresses.
func (w *Web) MetricsAddrs() []string { return w.obs.Addrs() }

// HTTPAddrs returns the public listen addresses (useful with port 0).
func (w *Web) HTTPAddrs() []string { return w.httpAddrs }

// AdminAddrs returns the admin listen addresses.
func (w *Web) AdminAddrs() []string { return w.adminAddrs }

// HTTPSAddrs returns the public HTTPS listen addresses (http.tls.bind).
func (w *Web) HTTPSAddrs() []string { return w.httpsAddrs }

// AdminTLSAddrs returns the admin HTTPS listen addresses (admin.tls.bind).
func (w *Web) AdminTLSAddrs() []string { return w.adminTLSAddrs }

// Reload reads the certificate and key files again (on SIGHUP); a bad pair
// is refused and the old one keeps serving.
func (w *Web) Reload() error {
	if w.pair == nil {
		return nil
	}
	if err := w.pair.Reload(); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	w.log.Info("tls certificate reloaded", "cert", w.pair.String())
	return nil
}

// Close stops accepting requests, lets in-flight ones finish until ctx is
// done, then stops the background work and closes the RPC clients and the
// ZooKeeper session. It is safe to call more than once.
func (w *Web) Close(ctx context.Context) error {
	w.closeOnce.Do(func() { w.closeErr = w.close(ctx) })
	return w.closeErr
}

func (w *Web) close(ctx context.Context) error {
	var errs []error
	w.obs.Stopping() // /readyz says so; /metrics answers until the end
	var swg sync.WaitGroup
	var mu sync.Mutex
	for _, srv := range w.servers {
		swg.Add(1)
		go func() {
			defer swg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
				mu.Lock()
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
				mu.Unlock()
			}
		}()
	}
	swg.Wait()
	if err := w.pprof.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	// Listeners that never reached Serve (a failed start).
	for _, ln := range w.lns {
		ln.Close()
	}
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
	w.cluster.close()
	if w.pool != nil {
		w.pool.Close()
	}
	if w.zk != nil {
		w.zk.Close()
	}
	if err := w.obs.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	w.log.Info("web stopped")
	return errors.Join(errs...)
}

// PublicCounts returns the public listener's counters (connections open,
// accepted, refused by reason).
func (w *Web) PublicCounts() connlimit.Counts {
	if w.publicLimit == nil {
		return connlimit.Counts{}
	}
	return w.publicLimit.Counts()
}

// AdminDenied returns how many admin requests were refused for a missing
// or wrong bearer token.
func (w *Web) AdminDenied() int64 { return w.adminDenied.Load() }
