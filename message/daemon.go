package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/go-zookeeper/zk"

	"gopush/api"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/daemon"
	"gopush/internal/observe"
	"gopush/membership"
)

// Daemon is a running message daemon: its storage, the MessageRPC server
// on every rpc.bind address, and its ephemeral node under message.path.
type Daemon struct {
	log   *slog.Logger
	store Storage
	srv   *gobrpc.Server
	pprof *daemon.Pprof
	zk    *membership.ZK
	reg   *membership.Registration
	stop  context.CancelFunc // ends the registration's context
	obs   *observe.Server    // metrics.bind; nil when off

	// zk and reg as the metrics listener, started first, reads them.
	zkp  atomic.Pointer[membership.ZK]
	regp atomic.Pointer[membership.Registration]

	closeOnce sync.Once
	closeErr  error
}

// Start opens the storage, serves MessageRPC and registers the node in
// ZooKeeper (docs/protocol.md §5), in that order, so that peers only learn of a node
// that answers. The registration lives until Close and comes back by
// itself after a session expiry. ctx bounds the start-up only.
func Start(ctx context.Context, cfg *conf.Message, log *slog.Logger) (*Daemon, error) {
	d := &Daemon{log: log}
	fail := func(err error) (*Daemon, error) {
		d.shutdown(context.Background())
		return nil, err
	}
	store, err := OpenStorage(cfg, log)
	if err != nil {
		return nil, err
	}
	d.store = store
	rpcStore := store
	var met *metrics
	if len(cfg.Metrics.Bind) > 0 {
		reg := observe.NewRegistry()
		met = newMetrics(reg)
		d.zkObs().Register(reg)
		measure(store, met)
		rpcStore = measuredStorage{Storage: store, m: met}
		if d.obs, err = observe.Serve(cfg.Metrics.Bind, reg, d.ready, log); err != nil {
			store.Close()
			return nil, err
		}
	}
	// A shard that is down only fails the calls for its keys, and comes
	// back by itself; a schema problem is the operator's to fix: say so,
	// but start.
	for _, err := range store.Check(ctx) {
		log.Warn("storage shard not ready at start", "err", err)
	}
	rpc := newRPC(rpcStore, cfg, log)
	rpc.met, rpc.kind = met, cfg.Storage.Type
	budget := daemon.FileBudget(conf.Limit{})
	d.srv, err = gobrpc.ServeWith(api.MessageService, withRooms(rpc, cfg, store), cfg.RPC.Bind,
		daemon.RPCOptions(cfg.RPC, budget.Clients), log)
	if err != nil {
		return fail(err)
	}
	if cfg.RPC.Secret == "" {
		daemon.WarnIfExposed(log, "rpc.bind", cfg.RPC.Bind, "rpc.secret: any host in rpc.allow can read and write messages")
	}
	if d.pprof, err = daemon.ServePprof(cfg.Pprof.Bind, log); err != nil {
		return fail(err)
	}
	d.zk, err = membership.DialZK(cfg.ZooKeeper.Addr, cfg.ZooKeeper.Timeout.D(), log)
	if err != nil {
		return fail(fmt.Errorf("zookeeper %v: %w", cfg.ZooKeeper.Addr, err))
	}
	d.zkp.Store(d.zk)
	data, err := json.Marshal(api.MessageNodeData{RPC: advertise(cfg.RPC.Advertise, cfg.RPC.Bind, d.srv.Addrs()), Weight: cfg.Node.Weight})
	if err != nil {
		return fail(err)
	}
	// The registration keeps its node for the daemon's whole life, but
	// giving up on the first creation is bounded by ctx.
	life, cancel := context.WithCancel(context.Background())
	d.stop = cancel
	unbind := context.AfterFunc(ctx, cancel)
	d.reg, err = membership.Register(life, d.zk, cfg.ZooKeeper.Message.Path, data, log)
	if !unbind() || err != nil {
		if err == nil {
			err = ctx.Err()
		}
		return fail(fmt.Errorf("zookeeper: register under %s: %w", cfg.ZooKeeper.Message.Path, err))
	}
	d.regp.Store(d.reg)
	log.Info("message node started", "rpc", d.srv.Addrs(), "zk_path", d.reg.Path(), "storage", cfg.Storage.Type)
	return d, nil
}

// advertise returns the RPC addresses to publish: rpc.advertise when set,
// else each bind as the operator wrote it, except that a port 0 is replaced
// by the port actually listened on.
func advertise(set, binds, actual []string) []string {
	if len(set) > 0 {
		return set
	}
	out := make([]string, len(binds))
	for i, b := range binds {
		out[i] = b
		if _, port, err := net.SplitHostPort(b); err == nil && port == "0" && i < len(actual) {
			out[i] = actual[i]
		}
	}
	return out
}

// zkObs is what the ZooKeeper metrics and readiness check read.
func (d *Daemon) zkObs() observe.ZooKeeper {
	return observe.ZooKeeper{
		Conn: func() *zk.Conn {
			if z := d.zkSession(); z != nil {
				return z.Conn()
			}
			return nil
		},
		Registered: func() (string, bool) {
			if r := d.registration(); r != nil {
				return r.Path(), r.Registered()
			}
			return "", false
		},
		Registrations: func() int64 {
			if r := d.registration(); r != nil {
				return r.Registrations()
			}
			return 0
		},
	}
}

func (d *Daemon) zkSession() *membership.ZK              { return d.zkp.Load() }
func (d *Daemon) registration() *membership.Registration { return d.regp.Load() }

func (d *Daemon) zkCheck() observe.Check { return d.zkObs().Check() }

// Addrs returns the addresses MessageRPC listens on.
func (d *Daemon) Addrs() []string { return d.srv.Addrs() }

// ZK returns the daemon's ZooKeeper session (tests expire it).
func (d *Daemon) ZK() *membership.ZK { return d.zk }

// RegisteredPath returns the daemon's current ephemeral node.
func (d *Daemon) RegisteredPath() string { return d.reg.Path() }

// Close shuts the daemon down: it deletes its ZooKeeper node and ends the
// session first, so that comets and web stop choosing it at once, then
// stops accepting calls and waits for the calls in flight (until ctx
// ends), then closes the storage.
func (d *Daemon) Close(ctx context.Context) error {
	d.closeOnce.Do(func() { d.closeErr = d.shutdown(ctx) })
	return d.closeErr
}

func (d *Daemon) shutdown(ctx context.Context) error {
	var errs []error
	d.obs.Stopping() // scrapes go on answering until the end
	if d.reg != nil {
		if err := d.reg.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.stop != nil {
		d.stop()
	}
	if d.zk != nil {
		d.zk.Close()
	}
	if d.srv != nil {
		if err := d.srv.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("rpc server: %w", err))
		}
	}
	if err := d.pprof.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	if d.store != nil {
		if err := d.store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.obs.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RPCCounts returns the RPC server's refusal counters (allow-list, cap,
// oversized messages, idle and failed handshakes).
func (d *Daemon) RPCCounts() gobrpc.Counts {
	if d.srv == nil {
		return gobrpc.Counts{}
	}
	return d.srv.Counts()
}
