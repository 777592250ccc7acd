package conf

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// Tests write daemon configurations by encoding these structs with the
// TOML encoder (internal/testenv). Every value must come back the same
// through Load: the defaults, and the kind of changes tests make (empty
// lists, other durations, replaced shard tables).
func TestEncodedConfigLoadsBackTheSame(t *testing.T) {
	roundTrip := func(t *testing.T, name string, v any, load func(string) (any, error)) {
		t.Helper()
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(v); err != nil {
			t.Fatalf("%s: encode: %v", name, err)
		}
		path := filepath.Join(t.TempDir(), name+".toml")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := load(path)
		if err != nil {
			t.Fatalf("%s: loading the encoded file: %v\n%s", name, err, buf.Bytes())
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("%s: loaded back\n%+v\nwant\n%+v\nfrom\n%s", name, got, v, buf.Bytes())
		}
	}
	loadComet := func(p string) (any, error) { return LoadComet(p) }
	loadWeb := func(p string) (any, error) { return LoadWeb(p) }
	loadMessage := func(p string) (any, error) { return LoadMessage(p) }

	roundTrip(t, "comet-defaults", DefaultComet(), loadComet)
	roundTrip(t, "web-defaults", DefaultWeb(), loadWeb)
	roundTrip(t, "message-defaults", DefaultMessage(), loadMessage)

	c := DefaultComet()
	c.Pprof.Bind = AddrList{}
	c.Stat.Bind = AddrList{}
	c.TCP.Bind = AddrList{"127.0.0.1:1", "127.0.0.1:2"}
	c.Log.Level = "debug"
	c.Channel.Auth = true
	c.Channel.Origins = []string{"http://a.example"}
	c.Channel.Sndbuf.Size = 4096
	c.ZooKeeper.Timeout = Duration(1500 * time.Millisecond)
	c.RPC.Ping = Duration(200 * time.Millisecond)
	roundTrip(t, "comet-changed", c, loadComet)

	w := DefaultWeb()
	w.Pprof.Bind = AddrList{}
	w.Prune.Enable = false
	w.Prune.Interval = Duration(300 * time.Millisecond)
	w.HTTP.TokenAdd = true
	roundTrip(t, "web-changed", w, loadWeb)

	m := DefaultMessage()
	m.Pprof.Bind = AddrList{}
	m.Redis.Source = map[string]string{"a:1": "tcp@127.0.0.1:1", "b:2": "tcp@127.0.0.1:2#pw"}
	m.Room.Prefix = "t:room:"
	m.Public.Key = "t:public"
	roundTrip(t, "message-changed", m, loadMessage)
}
