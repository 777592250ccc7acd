package conf

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Error is a configuration problem: the file, the key (dotted, as written in
// TOML) and what is wrong with it.
type Error struct {
	File    string
	Key     string
	Problem string
}

func (e *Error) Error() string {
	file := e.File
	if file == "" {
		file = "(defaults)"
	}
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", file, e.Problem)
	}
	return fmt.Sprintf("%s: %s: %s", file, e.Key, e.Problem)
}

// DefaultComet returns comet's configuration with every default set.
func DefaultComet() *Comet {
	c := &Comet{}
	c.Log = Log{Level: "info", Format: "text"}
	c.TCP.Bind = AddrList{"localhost:6969"}
	c.WebSocket.Bind = AddrList{"localhost:6968"}
	c.Stat.Bind = AddrList{"localhost:6972"}
	c.Pprof.Bind = AddrList{"localhost:6971"}
	c.Channel.Proto = []string{"tcp", "websocket"}
	c.Channel.Bucket = 16
	c.Channel.MaxSubscriber = 64
	c.Channel.Msgbuf.Num = 120
	c.Channel.Handshake.Timeout = Duration(5 * time.Second)
	c.Channel.Token.Expire = Duration(30 * 24 * time.Hour)
	c.Channel.Token.Max = 16
	c.ZooKeeper = defaultZooKeeper()
	c.RPC = defaultRPC()
	c.RPC.Bind = AddrList{"localhost:6970"}
	return c
}

// DefaultWeb returns web's configuration with every default set.
func DefaultWeb() *Web {
	w := &Web{}
	w.Log = Log{Level: "info", Format: "text"}
	w.HTTP.Bind = AddrList{"localhost:8090"}
	w.HTTP.ServerTimeout = Duration(10 * time.Second)
	w.Admin.Bind = AddrList{"localhost:8091"}
	w.Admin.MaxBody = 1 << 20
	w.Admin.MaxKeys = 100000
	w.Pprof.Bind = AddrList{"localhost:8190"}
	w.Token.Expire = Duration(30 * 24 * time.Hour)
	w.Prune.Enable = true
	w.Prune.Interval = Duration(5 * time.Second)
	w.Prune.Failures = 3
	w.ZooKeeper = defaultZooKeeper()
	w.RPC = defaultRPC()
	return w
}

// DefaultMessage returns message's configuration with every default set.
func DefaultMessage() *Message {
	m := &Message{}
	m.Log = Log{Level: "info", Format: "text"}
	m.RPC.Bind = AddrList{"localhost:8070"}
	m.Node.Weight = 1
	m.Storage.Type = "redis"
	m.Storage.Store = 20
	m.Storage.MaxSize = 64 << 10
	m.Redis.Idle = 16
	m.Redis.Active = 128
	m.Redis.Timeout = Duration(4 * time.Minute)
	m.Redis.DialTimeout = Duration(3 * time.Second)
	m.Redis.Source = map[string]string{"node1:1": "tcp@localhost:6379"}
	m.MySQL.Idle = 4
	m.MySQL.Active = 32
	m.MySQL.Clean = Duration(time.Hour)
	m.MySQL.Source = map[string]string{}
	m.ZooKeeper = defaultZooKeeper()
	return m
}

func defaultZooKeeper() ZooKeeper {
	var z ZooKeeper
	z.Addr = AddrList{"localhost:2181"}
	z.Timeout = Duration(30 * time.Second)
	z.Comet.Path = "/gopush-cluster-comet"
	z.Comet.Node = "node1"
	z.Comet.Weight = 1
	z.Message.Path = "/gopush-cluster-message"
	z.Migrate.Path = "/gopush-migrate-lock"
	return z
}

func defaultRPC() RPC {
	return RPC{
		Ping:    Duration(time.Second),
		Retry:   Duration(3 * time.Second),
		Timeout: Duration(3 * time.Second),
	}
}

// LoadComet reads comet's configuration from path ("" means defaults only).
func LoadComet(path string) (*Comet, error) {
	c := DefaultComet()
	if err := decode(path, c); err != nil {
		return nil, err
	}
	return c, c.validate(path)
}

// LoadWeb reads web's configuration from path ("" means defaults only).
func LoadWeb(path string) (*Web, error) {
	w := DefaultWeb()
	if err := decode(path, w); err != nil {
		return nil, err
	}
	return w, w.validate(path)
}

// LoadMessage reads message's configuration from path ("" means defaults only).
func LoadMessage(path string) (*Message, error) {
	m := DefaultMessage()
	if err := decode(path, m); err != nil {
		return nil, err
	}
	return m, m.validate(path)
}

// decode reads path over the defaults already in v. A syntax error, a value
// of the wrong type and a key that no field takes are all errors.
func decode(path string, v any) error {
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return &Error{File: path, Problem: err.Error()}
	}
	md, err := toml.NewDecoder(strings.NewReader(string(raw))).Decode(v)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			key := ""
			if perr.Position.Line > 0 {
				key = fmt.Sprintf("line %d", perr.Position.Line)
			}
			return &Error{File: path, Key: key, Problem: perr.Message}
		}
		return &Error{File: path, Problem: err.Error()}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return &Error{File: path, Key: und[0].String(), Problem: "unknown key"}
	}
	return nil
}
