// Package conf loads the TOML configuration of the three daemons.
//
// Key names follow gopush-cluster's (http.bind, zookeeper comet.path, ...) as
// TOML dotted keys. Every key has a default, so an empty file runs a
// single-machine cluster. Load reports the first problem as an *Error that
// names the file, the key and what is wrong.
package conf

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"gopush/internal/certs"
)

// Duration is a time.Duration written as "30s", "5m", "720h".
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration like \"30s\": %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration back as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Log configures log/slog.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
	// Lines of one message (same level and text) written per window at
	// most; the others are counted and the count is logged as
	// "suppressed" with the next line of that message. 0: no limit.
	Repeat int      `toml:"repeat"`
	Window Duration `toml:"window"`
}

// Limit bounds a daemon's client connections (comet's TCP and WebSocket
// ports together, web's public port): a cap that keeps a reserve of file
// descriptors for everything else, and per-client-address limits.
type Limit struct {
	Conns   int     `toml:"conns"`   // client connections at most; 0: the open-file limit minus reserve
	Reserve int     `toml:"reserve"` // descriptors kept for the rest; 0: a tenth of the open-file limit (100 .. half of it)
	PerAddr int     `toml:"peraddr"` // connections from one IP address at most; 0: no limit
	Rate    float64 `toml:"rate"`    // new connections per second from one IP address; 0: no limit
	Burst   int     `toml:"burst"`   // new connections one IP address may open at once above rate
}

// Bind is a list of listen addresses. In TOML it is an array of strings or
// one comma-separated string, as in gopush-cluster.
type Bind struct {
	Bind AddrList `toml:"bind"`
}

// ClientListener is one client protocol of comet (tcp or websocket): its
// plain and TLS listen addresses, and for each the addresses published in
// ZooKeeper and handed to clients by web's /1/server/get. An empty
// advertise list publishes the binds as written (with the actual port for
// port 0), as before advertise existed.
type ClientListener struct {
	Bind      AddrList `toml:"bind"`
	Advertise AddrList `toml:"advertise"`
	TLS       struct {
		Bind      AddrList `toml:"bind"`
		Advertise AddrList `toml:"advertise"`
	} `toml:"tls"`
}

// TLSFiles names a daemon's certificate and private key (PEM files), used
// by every TLS listener of the daemon and read again on SIGHUP.
type TLSFiles struct {
	Cert string `toml:"cert"` // certificate chain, leaf first
	Key  string `toml:"key"`
}

// Set reports whether a pair is configured.
func (t TLSFiles) Set() bool { return t.Cert != "" || t.Key != "" }

// ServesTLS reports whether comet has a TLS listener of a protocol it
// serves, and so needs tls.cert and tls.key.
func (c *Comet) ServesTLS() bool {
	for _, p := range c.Channel.Proto {
		if (p == "tcp" && len(c.TCP.TLS.Bind) > 0) || (p == "websocket" && len(c.WebSocket.TLS.Bind) > 0) {
			return true
		}
	}
	return false
}

// ServesTLS reports whether web has an HTTPS listener, and so needs
// tls.cert and tls.key.
func (w *Web) ServesTLS() bool { return len(w.HTTP.TLS.Bind)+len(w.Admin.TLS.Bind) > 0 }

// Load reads and checks the pair (internal/certs). Its error is one line
// naming the key, the file and the problem.
func (t TLSFiles) Load() (*certs.Pair, error) {
	p, err := certs.Load(t.Cert, t.Key)
	var ce *certs.Error
	if errors.As(err, &ce) {
		key := "tls.cert"
		if ce.File == t.Key && t.Key != t.Cert {
			key = "tls.key"
		}
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return p, err
}

// ZooKeeper holds the [zookeeper] table. Each daemon reads the paths it uses.
type ZooKeeper struct {
	Addr    AddrList `toml:"addr"`
	Timeout Duration `toml:"timeout"` // session timeout
	Comet   struct {
		Path   string `toml:"path"`
		Node   string `toml:"node"`
		Weight int    `toml:"weight"`
	} `toml:"comet"`
	Message struct {
		Path string `toml:"path"`
	} `toml:"message"`
	Migrate struct {
		Path string `toml:"path"`
	} `toml:"migrate"`
}

// RPC holds the [rpc] table: the daemon's own RPC listeners (comet,
// message) and how comet and web talk to their peers.
type RPC struct {
	Bind      AddrList `toml:"bind"`      // listen addresses (comet, message)
	Advertise AddrList `toml:"advertise"` // published in ZooKeeper instead of bind (comet, message)
	Ping      Duration `toml:"ping"`      // how often each peer is pinged
	Retry     Duration `toml:"retry"`     // how often a failed peer is redialled
	Timeout   Duration `toml:"timeout"`   // deadline of one call

	MaxMsg int      `toml:"maxmsg"` // largest gob message read, bytes
	Idle   Duration `toml:"idle"`   // a served connection silent this long is closed
	Allow  AddrList `toml:"allow"`  // networks peers may connect from; [] any
	Secret string   `toml:"secret"` // shared secret of the node handshake; "" off
	Legacy AddrList `toml:"legacy"` // networks of 1.0.5 peers, exempt from the handshake
}

// Comet is comet's configuration.
type Comet struct {
	Log       Log            `toml:"log"`
	TCP       ClientListener `toml:"tcp"`
	WebSocket ClientListener `toml:"websocket"`
	TLS       TLSFiles       `toml:"tls"` // for tcp.tls.bind and websocket.tls.bind
	Stat      Bind           `toml:"stat"`
	Pprof     Bind           `toml:"pprof"`   // empty: off
	Metrics   Bind           `toml:"metrics"` // /metrics, /healthz, /readyz; empty: off

	Channel struct {
		Proto         []string `toml:"proto"`         // "tcp", "websocket" or both
		Bucket        int      `toml:"bucket"`        // power of two
		MaxSubscriber int      `toml:"maxsubscriber"` // connections per key
		Msgbuf        struct {
			Num int `toml:"num"` // per-connection send queue, in messages
		} `toml:"msgbuf"`
		Sndbuf struct {
			Size int `toml:"size"` // socket send buffer, bytes (0: system default)
		} `toml:"sndbuf"`
		Rcvbuf struct {
			Size int `toml:"size"` // socket receive buffer, bytes (0: system default)
		} `toml:"rcvbuf"`
		TCP struct {
			Keepalive bool `toml:"keepalive"`
		} `toml:"tcp"`
		Handshake struct {
			Timeout Duration `toml:"timeout"` // first packet deadline
		} `toml:"handshake"`
		Auth  bool `toml:"auth"`
		Token struct {
			Mode    string   `toml:"mode"`    // "rpc" (1.0.5: added through CometRPC.New) or "jwt" (signed)
			Expire  Duration `toml:"expire"`  // unused tokens expire after this (rpc mode)
			Max     int      `toml:"max"`     // tokens kept per key (rpc mode)
			Alg     string   `toml:"alg"`     // jwt mode: HS256, EdDSA or RS256
			Secret  string   `toml:"secret"`  // jwt mode, HS256: the shared secret
			KeyFile string   `toml:"keyfile"` // jwt mode, EdDSA and RS256: PEM public key
		} `toml:"token"`
		Origins []string `toml:"origins"` // WebSocket and SSE Origin allow-list; empty: any
	} `toml:"channel"`

	// Lost: a comet out of touch with ZooKeeper for longer than its session
	// timeout plus Grace closes its clients and refuses new ones until it
	// is registered again (docs/reliability.md).
	Lost struct {
		Grace Duration `toml:"grace"`
	} `toml:"lost"`

	Limit     Limit     `toml:"limit"`
	ZooKeeper ZooKeeper `toml:"zookeeper"`
	RPC       RPC       `toml:"rpc"`
}

// Web is web's configuration.
type Web struct {
	Log  Log `toml:"log"`
	HTTP struct {
		Bind          AddrList `toml:"bind"`
		ServerTimeout Duration `toml:"servertimeout"` // read and write timeout
		IdleTimeout   Duration `toml:"idletimeout"`   // keep-alive connections idle this long are closed
		TokenAdd      bool     `toml:"tokenadd"`      // also serve /1/token/add publicly
		TLS           struct {
			Bind AddrList `toml:"bind"` // HTTPS listen addresses of the public API
		} `toml:"tls"`
	} `toml:"http"`
	Admin struct {
		Bind AddrList `toml:"bind"`
		TLS  struct {
			Bind AddrList `toml:"bind"` // HTTPS listen addresses of the admin API
		} `toml:"tls"`
		Token   string `toml:"token"`   // bearer token the admin API requires; "" none
		MaxBody int64  `toml:"maxbody"` // bytes
		MaxKeys int    `toml:"maxkeys"` // keys in one push/mprivate call
		Batch   struct {
			MaxBody    int64 `toml:"maxbody"`    // bytes of one push/batch body
			MaxEntries int   `toml:"maxentries"` // pushes in one push/batch call (an entry counts once per key)
		} `toml:"batch"`
	} `toml:"admin"`
	Pprof   Bind     `toml:"pprof"`
	TLS     TLSFiles `toml:"tls"`     // for http.tls.bind and admin.tls.bind
	Metrics Bind     `toml:"metrics"` // /metrics, /healthz, /readyz; empty: off

	Token struct {
		Expire Duration `toml:"expire"` // lifetime of a token added through /1/token/add
	} `toml:"token"`

	Limit Limit `toml:"limit"` // the public port

	Prune struct {
		Enable   bool     `toml:"enable"`
		Interval Duration `toml:"interval"` // how often every comet is pinged
		Failures int      `toml:"failures"` // failures in a row before a node is deleted
		// Path is where the webs register and record their votes, so that
		// a node is pruned only when most live webs see it failing.
		Path string `toml:"path"`
	} `toml:"prune"`

	ZooKeeper ZooKeeper `toml:"zookeeper"`
	RPC       RPC       `toml:"rpc"`
}

// Message is message's configuration.
type Message struct {
	Log  Log `toml:"log"`
	Node struct {
		Weight int `toml:"weight"`
	} `toml:"node"`
	Pprof   Bind `toml:"pprof"`
	Metrics Bind `toml:"metrics"` // /metrics, /healthz, /readyz; empty: off
	RPC     RPC  `toml:"rpc"`     // rpc.bind and rpc.timeout (a call's storage work); ping and retry are not used

	Storage struct {
		Type    string `toml:"type"`    // redis or mysql
		Store   int    `toml:"store"`   // messages kept (and returned) per key
		MaxSize int    `toml:"maxsize"` // largest message accepted, bytes
		// IdTTL is how long the id of a push with expire 0 is kept, so that
		// its retries are recognised (docs/reliability.md, "Push ids").
		IdTTL Duration `toml:"idttl"`
		// Batch bounds the saves one shard stores in one round trip:
		// concurrent saves are coalesced (group commit), and a batch
		// save of more keys is sent in pieces of this many.
		Batch int `toml:"batch"`
	} `toml:"storage"`

	Redis struct {
		Idle        int      `toml:"idle"`        // idle connections per shard
		Active      int      `toml:"active"`      // connections per shard, 0: unlimited
		Timeout     Duration `toml:"timeout"`     // idle connection timeout
		DialTimeout Duration `toml:"dialtimeout"` // connect, read and write deadline
		// KeyTTL gives each key's sorted set a TTL that covers its newest
		// message. Turn it off while gopush-cluster 1.0.5 message nodes
		// write to the same Redis: they add to a set without extending its
		// TTL, so the set (and their longer-lived message) would go when
		// the TTL gopush set runs out.
		KeyTTL bool              `toml:"keyttl"`
		Source map[string]string `toml:"source"` // "name:weight" = "tcp@host:port#password"
		// Wait, when above 0, has every save wait until that many replicas
		// acknowledged it (Redis WAIT), at most WaitTimeout; a save they do
		// not all acknowledge fails (docs/reliability.md).
		Wait        int      `toml:"wait"`
		WaitTimeout Duration `toml:"waittimeout"`
		// Database (SELECT index) of rooms and public messages, apart from
		// the subscriber keys in database 0 so that no key can name them.
		RoomDB int `toml:"roomdb"`
	} `toml:"redis"`

	MySQL struct {
		Idle   int               `toml:"idle"`
		Active int               `toml:"active"`
		Clean  Duration          `toml:"clean"`  // how often expired rows are deleted
		Source map[string]string `toml:"source"` // "name:weight" = DSN
	} `toml:"mysql"`

	// Rooms (docs/rooms.md): named sets of keys, each on the shard that
	// the ring over the source names picks for the room id.
	Room struct {
		Prefix string `toml:"prefix"` // Redis key of a room: prefix + room id
		Max    int    `toml:"max"`    // keys in one room at most
	} `toml:"room"`

	// Public messages (push/all with expire > 0).
	Public struct {
		Key   string `toml:"key"`   // Redis key of the sorted set, placed by the ring like a key
		Store int    `toml:"store"` // newest public messages kept
	} `toml:"public"`

	ZooKeeper ZooKeeper `toml:"zookeeper"`
}

// AddrList is a list of addresses, written in TOML as an array of strings or
// as one comma-separated string ("localhost:6969,localhost:7969").
type AddrList []string

// UnmarshalTOML accepts a string or an array of strings.
func (a *AddrList) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*a = splitList(v)
		return nil
	case []any:
		out := make(AddrList, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("expected a list of strings, found %T in it", e)
			}
			out = append(out, splitList(s)...)
		}
		*a = out
		return nil
	}
	return fmt.Errorf("expected a string or a list of strings, found %T", v)
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
