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

	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/connlimit"
	"gopush/internal/daemon"
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

	publicLimit *connlimit.Limiter // the public port's caps
	adminDenied atomic.Int64       // admin requests refused for a missing or wrong token

	httpAddrs, adminAddrs []string

	cancel context.CancelFunc
	wg     sync.WaitGroup // watchers, migrator, pruner, HTTP serve loops

	closeOnce sync.Once
	closeErr  error
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
	}
	w.cluster.opts = daemon.RPCOptions(cfg.RPC, 0)
	return w
}

// Start listens on every bind address, connects to ZooKeeper, starts
// watching comets and message nodes, and serves HTTP. It returns once it
// serves, or with an error (having released what it took).
func (w *Web) Start() error {
	if err := w.start(); err != nil {
		w.Close(context.Background())
		return err
	}
	return nil
}

func (w *Web) start() error {
	cfg := w.cfg
	public, admin := w.publicHandler(), w.adminHandler()
	// The public port is capped below the open-file limit so that the
	// admin port, ZooKeeper and the RPC clients always find descriptors;
	// clients over the per-address limits get HTTP 429 (Defer).
	budget := daemon.FileBudget(cfg.Limit)
	w.publicLimit = connlimit.New("public", daemon.ClientRules(cfg.Limit, budget, true), w.log)
	adminLimit := connlimit.New("admin", connlimit.Rules{Max: budget.Internal}, w.log)
	type serve struct {
		addr string
		h    http.Handler
		out  *[]string
		lim  *connlimit.Limiter
	}
	var todo []serve
	for _, a := range cfg.HTTP.Bind {
		todo = append(todo, serve{a, public, &w.httpAddrs, w.publicLimit})
	}
	for _, a := range cfg.Admin.Bind {
		todo = append(todo, serve{a, admin, &w.adminAddrs, adminLimit})
	}
	if cfg.Admin.Token == "" {
		daemon.WarnIfExposed(w.log, "admin.bind", cfg.Admin.Bind, "admin.token: anyone who reaches it can push")
		if cfg.HTTP.TokenAdd {
			daemon.WarnIfExposed(w.log, "http.bind", cfg.HTTP.Bind, "admin.token while http.tokenadd is on: anyone can add tokens")
		}
	}
	// Listen first, so that a taken port fails the start before anything
	// else happens.
	for _, s := range todo {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", s.addr, err)
		}
		w.lns = append(w.lns, s.lim.Wrap(ln))
		if s.out != nil {
			*s.out = append(*s.out, ln.Addr().String())
		}
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
	for _, p := range []string{cfg.ZooKeeper.Comet.Path, cfg.ZooKeeper.Message.Path, path.Dir(cfg.ZooKeeper.Migrate.Path)} {
		if p == "/" {
			continue
		}
		if err := membership.EnsurePath(z.Conn(), p); err != nil {
			return fmt.Errorf("zookeeper: create %s: %w", p, err)
		}
	}
	w.pool = gobrpc.NewMessagePoolWith(cfg.RPC.Ping.D(), cfg.RPC.Retry.D(), cfg.RPC.Timeout.D(), w.cluster.opts, w.log)
	w.msgs = w.pool

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
	w.goRun(func() { membership.WatchMessages(ctx, z, cfg.ZooKeeper.Message.Path, w.log, w.pool.Update) })
	mig := newMigrator(w.log, z, cfg.ZooKeeper.Migrate.Path, w.cluster, cfg.RPC.Retry.D())
	w.goRun(func() { mig.run(ctx) })
	if cfg.Prune.Enable {
		pr := newPruner(w.log, z, cfg.ZooKeeper.Comet.Path, w.cluster,
			cfg.Prune.Interval.D(), cfg.Prune.Failures, cfg.RPC.Timeout.D())
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
	w.log.Info("web started", "http", w.httpAddrs, "admin", w.adminAddrs,
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

// HTTPAddrs returns the public listen addresses (useful with port 0).
func (w *Web) HTTPAddrs() []string { return w.httpAddrs }

// AdminAddrs returns the admin listen addresses.
func (w *Web) AdminAddrs() []string { return w.adminAddrs }

// Close stops accepting requests, lets in-flight ones finish until ctx is
// done, then stops the background work and closes the RPC clients and the
// ZooKeeper session. It is safe to call more than once.
func (w *Web) Close(ctx context.Context) error {
	w.closeOnce.Do(func() { w.closeErr = w.close(ctx) })
	return w.closeErr
}

func (w *Web) close(ctx context.Context) error {
	var errs []error
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
