package testenv

// The one launcher of real daemons for tests (e2e/, client/, js/, deploy/,
// cmd/): a cluster of message, comet and web processes on free loopback
// ports, with ZooKeeper paths and Redis keys of its own.
//
//	c := testenv.NewCluster(t)          // fresh ZooKeeper root, Redis key prefix
//	c.StartMessage()                    // a message node over the shared Redis
//	n1 := c.StartComet("node1", 1)      // a comet registered as node1, weight 1
//	n2 := c.StartComet("node2", 2, func(cfg *conf.Comet) { cfg.Channel.Auth = true })
//	w := c.StartWeb()                   // public API on w.HTTP, admin on w.Admin
//	... subscribe on n1.TCP / n1.WS, ask n1.Stat, push through w.Admin ...
//	n1.Kill(); c.RestartComet(n1)       // again, with the same configuration
//
// Every configuration starts from the daemon's defaults (conf.DefaultComet,
// conf.DefaultWeb, conf.DefaultMessage), gets the cluster's settings (below),
// then the test's own changes (the edit functions, applied in order), and is
// written with the TOML encoder. The cluster's settings:
//
//   - every listener on a free loopback port (FreeAddr), metrics
//     (/metrics, /healthz, /readyz) included, pprof off;
//   - debug logs, kept and printed when the test fails; a log that reports a
//     data race (binaries built with GOPUSH_E2E_RACE=1) fails the test;
//   - ZooKeeper paths under a root of the cluster's own, deleted at the end,
//     and a short session timeout (SessionTimeout), so that a killed daemon
//     leaves soon;
//   - Redis keys of the message nodes (public set, room prefix) named after
//     the cluster; private keys belong to the test (use Unique);
//   - fast RPC pings and redials (FastRPC), and web pruning a dead comet
//     after PruneFailures pings PruneInterval apart;
//   - Start* returns once every listener of the daemon accepts connections.
//
// A test that needs a configuration the daemon must refuse writes the raw
// text with StartDaemon instead.

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/go-zookeeper/zk"

	"gopush/conf"
)

// Settings every daemon of a Cluster gets (before the test's edits).
const (
	// SessionTimeout is the ZooKeeper session timeout: ZooKeeper's minimum
	// (2 × tickTime) on the test server, so a killed daemon's ephemeral
	// node goes away within seconds.
	SessionTimeout = 4 * time.Second
	// FastPing, FastRetry and FastTimeout are the [rpc] ping, retry and
	// timeout of comet and web.
	FastPing    = 200 * time.Millisecond
	FastRetry   = 200 * time.Millisecond
	FastTimeout = 2 * time.Second
	// PruneInterval and PruneFailures are web's prune.interval and
	// prune.failures (pruning enabled).
	PruneInterval = 300 * time.Millisecond
	PruneFailures = 3
	// StartTimeout bounds how long a daemon may take to listen.
	StartTimeout = 30 * time.Second
)

// Cluster is one test's cluster: its ZooKeeper paths, its Redis key
// prefixes and the shared services its daemons use.
type Cluster struct {
	t           testing.TB
	Name        string   // unique to this cluster: names its Redis keys
	ZK          string   // ZooKeeper host:port
	ZKConn      *zk.Conn // a session of the test's own, to look at the tree
	Redis       string   // Redis host:port of the default message node
	Root        string   // ZooKeeper root of the cluster; the paths are under it
	CometPath   string
	MessagePath string
	MigratePath string
	PrunePath   string // web's prune.path
	PublicKey   string // public.key of the message nodes
	RoomPrefix  string // room.prefix of the message nodes
}

// NewCluster returns a cluster with fresh ZooKeeper paths, deleted when the
// test ends (after its daemons are stopped).
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	name := Unique(t)
	root := "/gopush-test-" + name // as ZKRoot, with the same name
	conn := ZKConn(t)
	t.Cleanup(func() {
		if err := deleteAll(conn, root); err != nil {
			t.Logf("cleaning ZooKeeper %s: %v", root, err)
		}
	})
	return &Cluster{
		t:           t,
		Name:        name,
		ZK:          ZK(t),
		ZKConn:      conn,
		Redis:       Redis(t),
		Root:        root,
		CometPath:   root + "/comet",
		MessagePath: root + "/message",
		MigratePath: root + "/migrate",
		PrunePath:   root + "/prune",
		PublicKey:   name + ":public",
		RoomPrefix:  name + ":room:",
	}
}

// zookeeper returns the [zookeeper] table of the cluster, for comet node
// with weight (web and message: "").
func (c *Cluster) zookeeper(node string, weight int) conf.ZooKeeper {
	z := conf.DefaultComet().ZooKeeper
	z.Addr = conf.AddrList{c.ZK}
	z.Timeout = conf.Duration(SessionTimeout)
	z.Comet.Path = c.CometPath
	if node != "" {
		z.Comet.Node = node
		z.Comet.Weight = weight
	}
	z.Message.Path = c.MessagePath
	z.Migrate.Path = c.MigratePath
	return z
}

func fastRPC(r *conf.RPC) {
	r.Ping = conf.Duration(FastPing)
	r.Retry = conf.Duration(FastRetry)
	r.Timeout = conf.Duration(FastTimeout)
}

// MessageNode is a running message daemon.
type MessageNode struct {
	*Daemon
	RPC     string
	Metrics string        // host:port of /metrics, /healthz, /readyz
	Config  *conf.Message // what it was started with
}

// MessageConfig returns the configuration StartMessage starts a message
// node with, before the edits: weight 1, redis storage over the cluster's
// Redis as the one shard "node1:1", a fresh RPC port.
func (c *Cluster) MessageConfig() *conf.Message {
	c.t.Helper()
	m := conf.DefaultMessage()
	m.Log.Level = "debug"
	m.Pprof.Bind = conf.AddrList{}
	m.Metrics.Bind = conf.AddrList{FreeAddr(c.t)}
	m.RPC.Bind = conf.AddrList{FreeAddr(c.t)}
	m.Storage.Type = "redis"
	m.Redis.Source = map[string]string{"node1:1": "tcp@" + c.Redis}
	m.Public.Key = c.PublicKey
	m.Room.Prefix = c.RoomPrefix
	m.ZooKeeper = c.zookeeper("", 0)
	return m
}

// StartMessage starts a message daemon with MessageConfig changed by
// edits, and returns once its RPC port listens.
func (c *Cluster) StartMessage(edits ...func(*conf.Message)) *MessageNode {
	c.t.Helper()
	cfg := c.MessageConfig()
	for _, e := range edits {
		e(cfg)
	}
	d := StartConfigured(c.t, "message", cfg)
	waitAll(c.t, cfg.RPC.Bind)
	return &MessageNode{Daemon: d, RPC: first(cfg.RPC.Bind), Metrics: first(cfg.Metrics.Bind), Config: cfg}
}

// CometNode is a running comet daemon.
type CometNode struct {
	*Daemon
	Node               string // comet.node
	TCP, WS, RPC, Stat string // its first address of each ("" when off)
	TCPTLS, WSS        string // tcp.tls.bind, websocket.tls.bind (see CometTLS)
	Metrics            string // /metrics, /healthz, /readyz ("" when off)
	Config             *conf.Comet
}

// CometConfig returns the configuration StartComet starts a comet with,
// before the edits: registered as node with weight, TCP, WebSocket, RPC
// and stat on fresh ports.
func (c *Cluster) CometConfig(node string, weight int) *conf.Comet {
	c.t.Helper()
	cm := conf.DefaultComet()
	cm.Log.Level = "debug"
	cm.Pprof.Bind = conf.AddrList{}
	cm.TCP.Bind = conf.AddrList{FreeAddr(c.t)}
	cm.WebSocket.Bind = conf.AddrList{FreeAddr(c.t)}
	cm.Stat.Bind = conf.AddrList{FreeAddr(c.t)}
	cm.Metrics.Bind = conf.AddrList{FreeAddr(c.t)}
	cm.RPC.Bind = conf.AddrList{FreeAddr(c.t)}
	fastRPC(&cm.RPC)
	cm.ZooKeeper = c.zookeeper(node, weight)
	return cm
}

// StartComet starts a comet registered as node with weight, with
// CometConfig changed by edits, and returns once its listeners accept
// connections.
func (c *Cluster) StartComet(node string, weight int, edits ...func(*conf.Comet)) *CometNode {
	c.t.Helper()
	cfg := c.CometConfig(node, weight)
	for _, e := range edits {
		e(cfg)
	}
	cn := &CometNode{
		Node: cfg.ZooKeeper.Comet.Node,
		TCP:  first(cfg.TCP.Bind), WS: first(cfg.WebSocket.Bind),
		RPC: first(cfg.RPC.Bind), Stat: first(cfg.Stat.Bind),
		TCPTLS: first(cfg.TCP.TLS.Bind), WSS: first(cfg.WebSocket.TLS.Bind),
		Metrics: first(cfg.Metrics.Bind),
		Config:  cfg,
	}
	if !slices.Contains(cfg.Channel.Proto, "tcp") {
		cn.TCP = ""
	}
	if !slices.Contains(cfg.Channel.Proto, "websocket") {
		cn.WS = ""
	}
	c.startComet(cn)
	return cn
}

// RestartComet starts comet again with the same configuration (after it
// was stopped or killed).
func (c *Cluster) RestartComet(cn *CometNode) {
	c.t.Helper()
	c.startComet(cn)
}

func (c *Cluster) startComet(cn *CometNode) {
	c.t.Helper()
	cn.Daemon = StartConfigured(c.t, "comet", cn.Config)
	waitAll(c.t, []string{cn.RPC, cn.TCP, cn.WS, cn.Stat, cn.TCPTLS, cn.WSS, cn.Metrics})
}

// WebNode is a running web daemon.
type WebNode struct {
	*Daemon
	HTTP, Admin string // public and admin API
	HTTPS       string // http.tls.bind (see WebTLS)
	Metrics     string // /metrics, /healthz, /readyz ("" when off)
	Config      *conf.Web
}

// WebConfig returns the configuration StartWeb starts a web with, before
// the edits: public and admin API on fresh ports, pruning enabled.
func (c *Cluster) WebConfig() *conf.Web {
	c.t.Helper()
	w := conf.DefaultWeb()
	w.Log.Level = "debug"
	w.Pprof.Bind = conf.AddrList{}
	w.HTTP.Bind = conf.AddrList{FreeAddr(c.t)}
	w.Admin.Bind = conf.AddrList{FreeAddr(c.t)}
	w.Metrics.Bind = conf.AddrList{FreeAddr(c.t)}
	w.Prune.Enable = true
	w.Prune.Interval = conf.Duration(PruneInterval)
	w.Prune.Failures = PruneFailures
	w.Prune.Path = c.PrunePath
	fastRPC(&w.RPC)
	w.ZooKeeper = c.zookeeper("", 0)
	return w
}

// StartWeb starts a web with WebConfig changed by edits, and returns once
// both its ports listen.
func (c *Cluster) StartWeb(edits ...func(*conf.Web)) *WebNode {
	c.t.Helper()
	cfg := c.WebConfig()
	for _, e := range edits {
		e(cfg)
	}
	w := &WebNode{HTTP: first(cfg.HTTP.Bind), Admin: first(cfg.Admin.Bind), HTTPS: first(cfg.HTTP.TLS.Bind), Metrics: first(cfg.Metrics.Bind), Config: cfg}
	w.Daemon = StartConfigured(c.t, "web", cfg)
	waitAll(c.t, []string{w.HTTP, w.Admin, w.HTTPS, w.Metrics})
	return w
}

// StartConfigured starts the daemon built from cmd/<name> with cfg (a
// *conf.Comet, *conf.Web or *conf.Message) written as TOML. It does not
// wait for anything.
func StartConfigured(t testing.TB, name string, cfg any) *Daemon {
	t.Helper()
	return StartDaemon(t, Binary(t, name), EncodeTOML(t, cfg))
}

// EncodeTOML returns cfg as a TOML document that conf's Load reads back
// as cfg.
func EncodeTOML(t testing.TB, cfg any) string {
	t.Helper()
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		t.Fatalf("encoding %T as TOML: %v", cfg, err)
	}
	return buf.String()
}

func first(addrs []string) string {
	if len(addrs) == 0 {
		return ""
	}
	return addrs[0]
}

// waitAll waits until every non-empty address listens.
func waitAll(t testing.TB, addrs []string) {
	t.Helper()
	for _, a := range addrs {
		if a = strings.TrimSpace(a); a != "" {
			WaitListening(t, a, StartTimeout)
		}
	}
}
