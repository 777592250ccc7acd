package conf

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// write puts body in a file of its own and returns the path.
func write(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loaders runs each daemon's Load and returns just the error.
var loaders = map[string]func(string) error{
	"comet":   func(p string) error { _, err := LoadComet(p); return err },
	"web":     func(p string) error { _, err := LoadWeb(p); return err },
	"message": func(p string) error { _, err := LoadMessage(p); return err },
}

func TestEmptyFileGivesTheDefaults(t *testing.T) {
	for _, body := range []string{"", "# nothing but a comment\n\n"} {
		path := write(t, "empty.toml", body)
		c, err := LoadComet(path)
		if err != nil {
			t.Fatalf("comet, %q: %v", body, err)
		}
		if !reflect.DeepEqual(c, DefaultComet()) {
			t.Errorf("comet from %q differs from the defaults", body)
		}
		w, err := LoadWeb(path)
		if err != nil {
			t.Fatalf("web, %q: %v", body, err)
		}
		if !reflect.DeepEqual(w, DefaultWeb()) {
			t.Errorf("web from %q differs from the defaults", body)
		}
		m, err := LoadMessage(path)
		if err != nil {
			t.Fatalf("message, %q: %v", body, err)
		}
		if !reflect.DeepEqual(m, DefaultMessage()) {
			t.Errorf("message from %q differs from the defaults", body)
		}
	}
}

func TestNoFileGivesTheDefaults(t *testing.T) {
	for name, load := range loaders {
		if err := load(""); err != nil {
			t.Errorf("%s without a file: %v", name, err)
		}
	}
}

func TestDefaultsRunOnOneMachine(t *testing.T) {
	c, w, m := DefaultComet(), DefaultWeb(), DefaultMessage()
	if c.ZooKeeper.Comet.Path != w.ZooKeeper.Comet.Path {
		t.Errorf("comet registers under %q but web watches %q", c.ZooKeeper.Comet.Path, w.ZooKeeper.Comet.Path)
	}
	for name, p := range map[string]string{"comet": c.ZooKeeper.Message.Path, "web": w.ZooKeeper.Message.Path} {
		if p != m.ZooKeeper.Message.Path {
			t.Errorf("message registers under %q but %s watches %q", m.ZooKeeper.Message.Path, name, p)
		}
	}
	// No two listeners of the three daemons share an address.
	seen := map[string]string{}
	for name, list := range map[string]AddrList{
		"comet tcp.bind": c.TCP.Bind, "comet websocket.bind": c.WebSocket.Bind,
		"comet rpc.bind": c.RPC.Bind, "comet stat.bind": c.Stat.Bind, "comet pprof.bind": c.Pprof.Bind,
		"web http.bind": w.HTTP.Bind, "web admin.bind": w.Admin.Bind, "web pprof.bind": w.Pprof.Bind,
		"message rpc.bind": m.RPC.Bind, "message pprof.bind": m.Pprof.Bind,
	} {
		for _, a := range list {
			if other, ok := seen[a]; ok {
				t.Errorf("%s and %s both listen on %s", name, other, a)
			}
			seen[a] = name
		}
	}
}

func TestValuesAreRead(t *testing.T) {
	path := write(t, "comet.toml", `
tcp.bind = "127.0.0.1:7001, 127.0.0.1:7002"
websocket.bind = ["127.0.0.1:7003"]
[channel]
bucket = 64
handshake.timeout = "1m30s"
auth = true
origins = ["https://example.com"]
[zookeeper]
addr = "10.0.0.1:2181,10.0.0.2:2181"
comet.node = "node7"
comet.weight = 3
[rpc]
bind = ["127.0.0.1:7004"]
ping = "250ms"
`)
	c, err := LoadComet(path)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultComet()
	want.TCP.Bind = AddrList{"127.0.0.1:7001", "127.0.0.1:7002"}
	want.WebSocket.Bind = AddrList{"127.0.0.1:7003"}
	want.Channel.Bucket = 64
	want.Channel.Handshake.Timeout = Duration(90 * time.Second)
	want.Channel.Auth = true
	want.Channel.Origins = []string{"https://example.com"}
	want.ZooKeeper.Addr = AddrList{"10.0.0.1:2181", "10.0.0.2:2181"}
	want.ZooKeeper.Comet.Node = "node7"
	want.ZooKeeper.Comet.Weight = 3
	want.RPC.Bind = AddrList{"127.0.0.1:7004"}
	want.RPC.Ping = Duration(250 * time.Millisecond)
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

// redis.keyttl is on by default and a file turns it off (for a cluster
// that still has 1.0.5 message nodes).
func TestRedisKeyTTL(t *testing.T) {
	if !DefaultMessage().Redis.KeyTTL {
		t.Fatal("redis.keyttl is off by default, want on")
	}
	m, err := LoadMessage(write(t, "message.toml", "[redis]\nkeyttl = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Redis.KeyTTL {
		t.Error("keyttl = false read as true")
	}
}

// A [redis.source] table in the file is the list of shards: the default
// shard must not stay beside it, or a quarter of the keys would land on a
// Redis the operator never named.
func TestSourceTableReplacesTheDefaultShards(t *testing.T) {
	path := write(t, "message.toml", `
[redis.source]
"a:1" = "tcp@10.0.0.1:6379"
"b:2" = "unix@/run/redis.sock#secret"
`)
	m, err := LoadMessage(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a:1": "tcp@10.0.0.1:6379", "b:2": "unix@/run/redis.sock#secret"}
	if !reflect.DeepEqual(m.Redis.Source, want) {
		t.Errorf("redis.source = %v, want %v", m.Redis.Source, want)
	}

	path = write(t, "message.toml", `
[storage]
type = "mysql"
[mysql.source]
"m1:1" = "u:p@tcp(10.0.0.1:3306)/push"
`)
	m, err = LoadMessage(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.MySQL.Source) != 1 || m.MySQL.Source["m1:1"] == "" {
		t.Errorf("mysql.source = %v", m.MySQL.Source)
	}
	if !reflect.DeepEqual(m.Redis.Source, DefaultMessage().Redis.Source) {
		t.Errorf("redis.source changed to %v by a file that does not set it", m.Redis.Source)
	}
}

func TestMissingFileIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	for name, load := range loaders {
		err := load(path)
		var cerr *Error
		if !errors.As(err, &cerr) || cerr.File != path || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("%s: got %v, want an *Error naming %s and saying it does not exist", name, err, path)
		}
	}
}

// Each bad file is refused with one line that names the file, the key (or
// the line, for a syntax error) and what is wrong.
func TestBadFiles(t *testing.T) {
	cases := []struct {
		name    string
		daemon  string
		body    string
		key     string
		problem string // part of the problem's text
	}{
		{"syntax error", "comet", "tcp.bind = [\"localhost:1\"\n", "line 1", "expected"},
		{"syntax error on a later line", "web", "http.bind = \"localhost:1\"\n\n[zookeeper\n", "line 3", ""},
		{"string not closed", "message", "[storage]\ntype = \"redis\n", "line 2", ""},
		{"unknown key", "comet", "[channel]\nbukcet = 16\n", "channel.bukcet", "unknown key"},
		{"unknown table", "web", "[http]\nbind = \"localhost:1\"\n[cache]\nsize = 1\n", "cache", "unknown key"},
		{"unknown top-level key", "message", "weight = 2\n", "weight", "unknown key"},
		{"string for a number", "comet", "[channel]\nbucket = \"16\"\n", "channel.bucket", "type"},
		{"number for a string", "message", "[storage]\ntype = 1\n", "storage.type", "type"},
		{"float for a number", "web", "prune.failures = 2.5\n", "prune.failures", "type"},
		{"number for a bind list", "comet", "tcp.bind = 6969\n", "tcp.bind", "string"},
		{"number in a bind list", "web", "http.bind = [\"localhost:1\", 2]\n", "http.bind", "string"},
		{"bad duration", "comet", "[channel]\nhandshake.timeout = \"5 seconds\"\n", "channel.handshake.timeout", "duration"},
		{"number for a duration", "web", "[zookeeper]\ntimeout = 30\n", "zookeeper.timeout", "duration"},
		{"array of tables for a table", "comet", "[[channel]]\nbucket = 16\n", "channel", "table"},
		{"empty tcp bind list", "comet", "tcp.bind = []\n", "tcp.bind", "at least one address"},
		{"empty websocket bind list", "comet", "websocket.bind = \"\"\n", "websocket.bind", "at least one address"},
		{"empty comet rpc bind list", "comet", "[rpc]\nbind = []\n", "rpc.bind", "at least one address"},
		{"empty http bind list", "web", "http.bind = []\n", "http.bind", "at least one address"},
		{"empty admin bind list", "web", "admin.bind = \" , \"\n", "admin.bind", "at least one address"},
		{"empty message rpc bind list", "message", "[rpc]\nbind = []\n", "rpc.bind", "at least one address"},
		{"empty zookeeper list", "message", "[zookeeper]\naddr = []\n", "zookeeper.addr", "at least one address"},
		{"bind without a port", "web", "http.bind = \"localhost\"\n", "http.bind", "no port"},
		{"bind with a bad port", "comet", "tcp.bind = \"localhost:99999\"\n", "tcp.bind", "bad port"},
		{"comet path without /", "comet", "[zookeeper]\ncomet.path = \"gopush-cluster-comet\"\n", "zookeeper.comet.path", "must start with /"},
		{"message path without /", "message", "[zookeeper]\nmessage.path = \"msg\"\n", "zookeeper.message.path", "must start with /"},
		{"migrate path without /", "web", "[zookeeper]\nmigrate.path = \"lock\"\n", "zookeeper.migrate.path", "must start with /"},
		{"web comet path without /", "web", "[zookeeper]\ncomet.path = \"\"\n", "zookeeper.comet.path", "must start with /"},
		{"comet path /", "comet", "[zookeeper]\ncomet.path = \"/\"\n", "zookeeper.comet.path", "below /"},
		{"message path ending in /", "message", "[zookeeper]\nmessage.path = \"/m/\"\n", "zookeeper.message.path", "must not end with /"},
		{"mysql idle negative", "message", "[storage]\ntype = \"mysql\"\n[mysql]\nidle = -1\n[mysql.source]\n\"a:1\" = \"u:p@tcp(h:3306)/d\"\n", "mysql.idle", "negative"},
		{"comet weight 0", "comet", "[zookeeper]\ncomet.weight = 0\n", "zookeeper.comet.weight", "at least 1"},
		{"comet weight negative", "comet", "[zookeeper]\ncomet.weight = -2\n", "zookeeper.comet.weight", "at least 1"},
		{"message weight 0", "message", "node.weight = 0\n", "node.weight", "at least 1"},
		{"comet node name with /", "comet", "[zookeeper]\ncomet.node = \"a/b\"\n", "zookeeper.comet.node", "without /"},
		{"redis shard without weight", "message", "[redis.source]\n\"node1\" = \"tcp@localhost:6379\"\n", "redis.source.node1", "name:weight"},
		{"redis shard weight 0", "message", "[redis.source]\n\"node1:0\" = \"tcp@localhost:6379\"\n", "redis.source.node1:0", "weight"},
		{"redis address without network", "message", "[redis.source]\n\"node1:1\" = \"localhost:6379\"\n", "redis.source.node1:1", "tcp@host:port"},
		{"redis address with unknown network", "message", "[redis.source]\n\"node1:1\" = \"udp@localhost:6379\"\n", "redis.source.node1:1", "tcp or unix"},
		{"redis address without port", "message", "[redis.source]\n\"node1:1\" = \"tcp@localhost\"\n", "redis.source.node1:1", "no port"},
		{"redis unix socket not absolute", "message", "[redis.source]\n\"node1:1\" = \"unix@redis.sock\"\n", "redis.source.node1:1", "absolute"},
		{"redis address not a string", "message", "[redis.source]\n\"node1:1\" = 6379\n", `redis.source."node1:1"`, "type"},
		{"no redis shard", "message", "[redis]\nsource = {}\n", "redis.source", "at least one shard"},
		{"redis.keyttl not a bool", "message", "[redis]\nkeyttl = \"no\"\n", "redis.keyttl", "bool"},
		{"mysql without shards", "message", "[storage]\ntype = \"mysql\"\n", "mysql.source", "at least one shard"},
		{"unknown storage", "message", "[storage]\ntype = \"postgres\"\n", "storage.type", "redis or mysql"},
		{"bucket not a power of two", "comet", "[channel]\nbucket = 12\n", "channel.bucket", "power of two"},
		{"unknown protocol", "comet", "[channel]\nproto = [\"udp\"]\n", "channel.proto", "unknown protocol"},
		{"no protocol", "comet", "[channel]\nproto = []\n", "channel.proto", "tcp, websocket or both"},
		{"zero duration", "web", "prune.interval = \"0s\"\n", "prune.interval", "positive"},
		{"log level", "message", "[log]\nlevel = \"verbose\"\n", "log.level", "debug, info"},
		{"rpc.bind on web", "web", "[rpc]\nbind = \"localhost:1\"\n", "rpc.bind", "no RPC"},
		{"message rpc.timeout zero", "message", "[rpc]\ntimeout = \"0s\"\n", "rpc.timeout", "positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, tc.daemon+".toml", tc.body)
			err := loaders[tc.daemon](path)
			if err == nil {
				t.Fatalf("%s accepted %q", tc.daemon, tc.body)
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error %v (%T) is not a *conf.Error", err, err)
			}
			if cerr.File != path {
				t.Errorf("File = %q, want %q", cerr.File, path)
			}
			if cerr.Key != tc.key {
				t.Errorf("Key = %q, want %q (error: %v)", cerr.Key, tc.key, err)
			}
			if !strings.Contains(cerr.Problem, tc.problem) || cerr.Problem == "" {
				t.Errorf("Problem = %q, want it to mention %q", cerr.Problem, tc.problem)
			}
			line := err.Error()
			if strings.Contains(line, "\n") {
				t.Errorf("error is not one line: %q", line)
			}
			if !strings.HasPrefix(line, path+": "+tc.key+": ") {
				t.Errorf("error %q does not start with %q", line, path+": "+tc.key+": ")
			}
		})
	}
}
