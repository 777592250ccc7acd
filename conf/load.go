package conf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
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
	c.Log = defaultLog()
	c.TCP.Bind = AddrList{"localhost:6969"}
	c.WebSocket.Bind = AddrList{"localhost:6968"}
	c.Stat.Bind = AddrList{"localhost:6972"}
	c.Pprof.Bind = AddrList{"localhost:6971"}
	c.Metrics.Bind = AddrList{"localhost:6973"}
	c.Channel.Proto = []string{"tcp", "websocket"}
	c.Channel.Bucket = 16
	c.Channel.MaxSubscriber = 64
	c.Channel.Msgbuf.Num = 120
	c.Channel.Handshake.Timeout = Duration(5 * time.Second)
	c.Channel.Token.Mode = "rpc"
	c.Channel.Token.Alg = "HS256"
	c.Channel.Token.Expire = Duration(30 * 24 * time.Hour)
	c.Channel.Token.Max = 16
	c.Lost.Grace = Duration(5 * time.Second)
	c.Limit = defaultLimit()
	c.ZooKeeper = defaultZooKeeper()
	c.RPC = defaultRPC()
	c.RPC.Bind = AddrList{"localhost:6970"}
	return c
}

// DefaultWeb returns web's configuration with every default set.
func DefaultWeb() *Web {
	w := &Web{}
	w.Log = defaultLog()
	w.HTTP.Bind = AddrList{"localhost:8090"}
	w.HTTP.ServerTimeout = Duration(10 * time.Second)
	w.HTTP.IdleTimeout = Duration(120 * time.Second)
	w.Admin.Bind = AddrList{"localhost:8091"}
	w.Admin.MaxBody = 1 << 20
	w.Admin.MaxKeys = 100000
	w.Admin.Batch.MaxBody = 8 << 20
	w.Admin.Batch.MaxEntries = 100000
	w.Pprof.Bind = AddrList{"localhost:8190"}
	w.Metrics.Bind = AddrList{"localhost:8191"}
	w.Token.Expire = Duration(30 * 24 * time.Hour)
	w.Limit = defaultLimit()
	w.Prune.Enable = true
	w.Prune.Interval = Duration(5 * time.Second)
	w.Prune.Failures = 3
	w.Prune.Path = "/gopush-prune"
	w.ZooKeeper = defaultZooKeeper()
	w.RPC = defaultRPC()
	return w
}

// DefaultMessage returns message's configuration with every default set.
func DefaultMessage() *Message {
	m := &Message{}
	m.Log = defaultLog()
	m.Node.Weight = 1
	m.Storage.Type = "redis"
	m.Storage.Store = 20
	m.Storage.MaxSize = 64 << 10
	m.Storage.IdTTL = Duration(time.Minute)
	m.Storage.Batch = 500
	m.Redis.Idle = 16
	m.Redis.Active = 128
	m.Redis.Timeout = Duration(4 * time.Minute)
	m.Redis.DialTimeout = Duration(3 * time.Second)
	m.Redis.KeyTTL = true
	m.Redis.Source = map[string]string{"node1:1": "tcp@localhost:6379"}
	m.Redis.Wait = 0
	m.Redis.WaitTimeout = Duration(time.Second)
	m.Redis.RoomDB = 1
	m.MySQL.Idle = 4
	m.MySQL.Active = 32
	m.MySQL.Clean = Duration(time.Hour)
	m.MySQL.Source = map[string]string{}
	m.Room.Prefix = "gopush:room:"
	m.Room.Max = 100000
	m.Public.Key = "gopush:public"
	m.Public.Store = 20
	m.ZooKeeper = defaultZooKeeper()
	m.RPC = defaultRPC()
	m.RPC.Bind = AddrList{"localhost:8070"}
	m.RPC.Timeout = Duration(5 * time.Second) // bounds the storage work of one call
	m.Metrics.Bind = AddrList{"localhost:8071"}
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
		MaxMsg:  32 << 20,
		Idle:    Duration(5 * time.Minute),
		Allow:   AddrList{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"},
	}
}

func defaultLog() Log {
	return Log{Level: "info", Format: "text", Repeat: 10, Window: Duration(10 * time.Second)}
}

func defaultLimit() Limit {
	return Limit{Burst: 10}
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
//
// A [redis.source] or [mysql.source] table in the file replaces the default
// shards instead of being added to them.
func LoadMessage(path string) (*Message, error) {
	m := DefaultMessage()
	redisSource, mysqlSource := m.Redis.Source, m.MySQL.Source
	m.Redis.Source, m.MySQL.Source = nil, nil
	md, err := decodeMeta(path, m)
	if err != nil {
		return nil, err
	}
	if !md.IsDefined("redis", "source") {
		m.Redis.Source = redisSource
	}
	if !md.IsDefined("mysql", "source") {
		m.MySQL.Source = mysqlSource
	}
	return m, m.validate(path)
}

// decode reads path over the defaults already in v. A syntax error, a value
// of the wrong type and a key that no field takes are all errors.
func decode(path string, v any) error {
	_, err := decodeMeta(path, v)
	return err
}

// decodeMeta is decode that also returns which keys the file defines.
//
// The file is parsed twice: first into a map, so that a syntax error is
// reported by line, then into v, so that a value of the wrong type is
// reported by the key it was written under.
func decodeMeta(path string, v any) (toml.MetaData, error) {
	if path == "" {
		return toml.MetaData{}, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return toml.MetaData{}, &Error{File: path, Problem: err.Error()}
	}
	var syntax map[string]any
	if _, err := toml.Decode(string(raw), &syntax); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) && perr.Position.Line > 0 {
			line := perr.Position.Line
			if start := perr.Position.Start; start >= 0 && start <= len(raw) {
				// The parser counts a newline it has already read; the
				// byte offset of the error tells the line a reader sees.
				line = 1 + bytes.Count(raw[:start], []byte("\n"))
			}
			return toml.MetaData{}, &Error{File: path, Key: fmt.Sprintf("line %d", line), Problem: perr.Message}
		}
		return toml.MetaData{}, &Error{File: path, Problem: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	md, err := toml.Decode(string(raw), v)
	if err != nil {
		return md, valueError(path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return md, &Error{File: path, Key: und[0].String(), Problem: "unknown key"}
	}
	return md, nil
}

// typeError matches the library's message for a value of the wrong type:
// toml: line 2 (last key "channel.bucket"): incompatible types: ...
var typeError = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key ("(?:[^"\\]|\\.)*")\): (.*)$`)

// valueError turns an error from decoding a well-formed file into v into an
// *Error that names the key.
func valueError(path string, err error) error {
	var perr toml.ParseError
	if errors.As(err, &perr) && perr.LastKey != "" {
		return &Error{File: path, Key: perr.LastKey, Problem: perr.Message}
	}
	if m := typeError.FindStringSubmatch(err.Error()); m != nil {
		if key, uerr := strconv.Unquote(m[1]); uerr == nil {
			problem := m[2]
			if strings.HasPrefix(problem, "type mismatch for ") {
				// "type mismatch for <Go type>: expected table but found ..."
				problem = problem[strings.LastIndex(problem, ": ")+2:]
			}
			return &Error{File: path, Key: key, Problem: problem}
		}
	}
	return &Error{File: path, Problem: strings.TrimPrefix(err.Error(), "toml: ")}
}
