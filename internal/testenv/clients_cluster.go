package testenv

// A small cluster of real daemons (message, comet, web) on private ports
// and private ZooKeeper paths, for the tests of the clients and the edge
// (client/, js/, deploy/).

import (
	"encoding/json"
	"fmt"
	"gopush/api"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Cluster holds the ZooKeeper paths and services shared by the daemons of
// one test.
type Cluster struct {
	t           testing.TB
	Name        string // unique to this cluster: prefixes its Redis keys
	ZK          string // host:port
	Redis       string // host:port
	CometPath   string
	MessagePath string
	MigratePath string
	PrunePath   string // web's prune.path
	// SessionTimeout is the ZooKeeper session timeout of every daemon: how
	// long a killed daemon stays registered.
	SessionTimeout time.Duration
}

// NewCluster returns a cluster with fresh ZooKeeper paths, deleted when the
// test ends (after its daemons are stopped).
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	name := Unique(t)
	root := "/gopush-test-" + name
	conn := ZKConn(t)
	t.Cleanup(func() {
		if err := deleteAll(conn, root); err != nil {
			t.Logf("cleaning ZooKeeper %s: %v", root, err)
		}
	})
	return &Cluster{
		t:              t,
		Name:           name,
		ZK:             ZK(t),
		Redis:          Redis(t),
		CometPath:      root + "/comet",
		MessagePath:    root + "/message",
		MigratePath:    root + "/migrate",
		PrunePath:      root + "/prune",
		SessionTimeout: 4 * time.Second,
	}
}

func (c *Cluster) zookeeper(node string, weight int) string {
	if node == "" {
		node = "node1"
	}
	if weight == 0 {
		weight = 1
	}
	return fmt.Sprintf(`
[zookeeper]
addr = [%q]
timeout = %q
comet.path = %q
comet.node = %q
comet.weight = %d
message.path = %q
migrate.path = %q
`, c.ZK, c.SessionTimeout.String(), c.CometPath, node, weight, c.MessagePath, c.MigratePath)
}

const fastRPC = `
[rpc]
ping = "200ms"
retry = "300ms"
timeout = "3s"
`

// MessageNode is a running message daemon.
type MessageNode struct {
	*Daemon
	RPC string
}

// StartMessage starts a message daemon of the given weight storing in the
// shared Redis, keeping store messages per key (0: 200). It returns once
// its RPC port listens.
func (c *Cluster) StartMessage(weight, store int) *MessageNode {
	c.t.Helper()
	if store == 0 {
		store = 200
	}
	rpc := FreeAddr(c.t)
	cfg := fmt.Sprintf(`node.weight = %d
pprof.bind = []
[log]
level = "debug"
[rpc]
bind = [%q]
[storage]
type = "redis"
store = %d
[public]
key = "%s:public"
[room]
prefix = "%s:room:"
[redis.source]
"node1:1" = "tcp@%s"
`, weight, rpc, store, c.Name, c.Name, c.Redis) + c.zookeeper("", 0)
	d := StartDaemon(c.t, Binary(c.t, "message"), cfg)
	WaitListening(c.t, rpc, 20*time.Second)
	return &MessageNode{Daemon: d, RPC: rpc}
}

// CometNode is a running comet daemon.
type CometNode struct {
	*Daemon
	Node               string
	TCP, WS, RPC, Stat string
	Config             string // the TOML it was started with
}

// StartComet starts a comet registered as node with weight, on fresh
// ports. extra is TOML added to the [channel] table (e.g. "auth = true").
// It returns once its listeners accept connections.
func (c *Cluster) StartComet(node string, weight int, extra string) *CometNode {
	c.t.Helper()
	cn := &CometNode{Node: node, TCP: FreeAddr(c.t), WS: FreeAddr(c.t), RPC: FreeAddr(c.t), Stat: FreeAddr(c.t)}
	cn.Config = fmt.Sprintf(`tcp.bind = [%q]
websocket.bind = [%q]
stat.bind = [%q]
pprof.bind = []
[log]
level = "debug"
[channel]
%s
`, cn.TCP, cn.WS, cn.Stat, extra) + c.zookeeper(node, weight) + fmt.Sprintf("%sbind = [%q]\n", fastRPC, cn.RPC)
	cn.Daemon = c.startComet(cn)
	return cn
}

// RestartComet starts comet again with the same configuration (after it
// was stopped or killed).
func (c *Cluster) RestartComet(cn *CometNode) {
	c.t.Helper()
	cn.Daemon = c.startComet(cn)
}

func (c *Cluster) startComet(cn *CometNode) *Daemon {
	c.t.Helper()
	d := StartDaemon(c.t, Binary(c.t, "comet"), cn.Config)
	WaitListening(c.t, cn.TCP, 20*time.Second)
	WaitListening(c.t, cn.WS, 20*time.Second)
	WaitListening(c.t, cn.RPC, 20*time.Second)
	return d
}

// WebNode is a running web daemon.
type WebNode struct {
	*Daemon
	HTTP, Admin string
}

// StartWeb starts a web with fast pruning of dead comets. It returns once
// both its ports listen.
func (c *Cluster) StartWeb() *WebNode {
	c.t.Helper()
	w := &WebNode{HTTP: FreeAddr(c.t), Admin: FreeAddr(c.t)}
	cfg := fmt.Sprintf(`http.bind = [%q]
admin.bind = [%q]
pprof.bind = []
prune.enable = true
prune.interval = "300ms"
prune.failures = 3
prune.path = %q
[log]
level = "debug"
`, w.HTTP, w.Admin, c.PrunePath) + c.zookeeper("", 0) + fastRPC
	w.Daemon = StartDaemon(c.t, Binary(c.t, "web"), cfg)
	WaitListening(c.t, w.HTTP, 20*time.Second)
	WaitListening(c.t, w.Admin, 20*time.Second)
	return w
}

// WebAnswer is web's JSON answer.
type WebAnswer struct {
	Ret  int             `json:"ret"`
	Data json.RawMessage `json:"data"`
}

// WebGet calls a public path of web at base ("http://host:port") and
// decodes the answer. HTTP errors and non-JSON answers are returned.
func WebGet(base, path string, q url.Values) (*WebAnswer, error) {
	resp, err := http.Get(base + path + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return decodeAnswer(resp)
}

// Push pushes msg (JSON) to key through web's admin API at admin
// ("host:port") with expire seconds, and returns web's ret code.
func Push(admin, key, msg string, expire int) (int, error) {
	u := fmt.Sprintf("http://%s/1/admin/push/private?key=%s&expire=%d", admin, url.QueryEscape(key), expire)
	resp, err := http.Post(u, "application/json", strings.NewReader(msg))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	a, err := decodeAnswer(resp)
	if err != nil {
		return 0, err
	}
	return a.Ret, nil
}

func decodeAnswer(resp *http.Response) (*WebAnswer, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	data, err := api.DecodeReply(b)
	ret := api.RetOf(err)
	if ret < 0 {
		return nil, fmt.Errorf("HTTP %s: %v: %q", resp.Status, err, b)
	}
	return &WebAnswer{Ret: ret, Data: data}, nil
}

// ServerOf asks web at base which comet serves key (p: "1" websocket,
// "2" tcp); "" with the ret code when none does.
func ServerOf(base, key, p string) (string, int, error) {
	a, err := WebGet(base, "/1/server/get", url.Values{"k": {key}, "p": {p}})
	if err != nil {
		return "", 0, err
	}
	if a.Ret != 0 {
		return "", a.Ret, nil
	}
	var d api.ServerData
	if err := json.Unmarshal(a.Data, &d); err != nil {
		return "", a.Ret, err
	}
	return d.Server, 0, nil
}
