package conf

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// validator collects the first problem found.
type validator struct {
	file string
	err  *Error
}

func (v *validator) fail(key, format string, args ...any) {
	if v.err == nil {
		v.err = &Error{File: v.file, Key: key, Problem: fmt.Sprintf(format, args...)}
	}
}

func (v *validator) result() error {
	if v.err == nil {
		return nil
	}
	return v.err
}

func (v *validator) binds(key string, list AddrList, required bool) {
	if required && len(list) == 0 {
		v.fail(key, "needs at least one address")
	}
	for _, a := range list {
		if i := strings.LastIndexByte(a, ':'); i < 0 {
			v.fail(key, "address %q has no port", a)
		} else if _, err := strconv.ParseUint(a[i+1:], 10, 16); err != nil {
			v.fail(key, "address %q has a bad port", a)
		}
	}
}

// advertised checks published addresses: host:port with a real port, or,
// where urls is set (websocket.tls.advertise), a wss:// URL.
func (v *validator) advertised(key string, list AddrList, urls bool) {
	for _, a := range list {
		if strings.Contains(a, "://") {
			u, err := url.Parse(a)
			switch {
			case !urls:
				v.fail(key, "%q: only host:port here (old clients build the URL themselves)", a)
			case err != nil || u.Scheme != "wss" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || !strings.HasSuffix(u.Path, "/sub"):
				v.fail(key, "%q: must be host:port or a URL wss://host[:port]/.../sub without query", a)
			}
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			v.fail(key, "%q: must be host:port", a)
		} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			v.fail(key, "%q: needs a port from 1 to 65535", a)
		}
	}
}

// tlsFiles requires a certificate and key when some TLS listener is set
// (the files themselves are read when the daemon starts).
func (v *validator) tlsFiles(t TLSFiles, need bool, binds string) {
	if need && t.Cert == "" {
		v.fail("tls.cert", "needs a certificate file when %s is set", binds)
	}
	if need && t.Key == "" {
		v.fail("tls.key", "needs a private key file when %s is set", binds)
	}
	if (t.Cert == "") != (t.Key == "") {
		v.fail("tls.cert", "tls.cert and tls.key go together")
	}
}

func (v *validator) zkPath(key, p string) {
	if !strings.HasPrefix(p, "/") {
		v.fail(key, "path %q must start with /", p)
	} else if p == "/" {
		v.fail(key, "path must name a node below /, like /gopush-cluster-comet")
	} else if strings.HasSuffix(p, "/") {
		v.fail(key, "path %q must not end with /", p)
	}
}

func (v *validator) positive(key string, n int) {
	if n < 1 {
		v.fail(key, "must be at least 1, got %d", n)
	}
}

func (v *validator) duration(key string, d Duration) {
	if d <= 0 {
		v.fail(key, "must be a positive duration")
	}
}

func (v *validator) logConf(l Log) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.fail("log.level", "must be debug, info, warn or error, got %q", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		v.fail("log.format", "must be text or json, got %q", l.Format)
	}
	if l.Repeat < 0 {
		v.fail("log.repeat", "must not be negative")
	}
	if l.Repeat > 0 {
		v.duration("log.window", l.Window)
	}
}

func (v *validator) limit(l Limit) {
	for key, n := range map[string]int{"limit.conns": l.Conns, "limit.reserve": l.Reserve, "limit.peraddr": l.PerAddr} {
		if n < 0 {
			v.fail(key, "must not be negative (0 picks the default)")
		}
	}
	if l.Rate < 0 {
		v.fail("limit.rate", "must not be negative (0: no limit)")
	}
	if l.Rate > 0 && l.Burst < 1 {
		v.fail("limit.burst", "must be at least 1 when limit.rate is set")
	}
}

// rpc checks the hardening keys of [rpc]; serves is false for web, which
// only dials.
func (v *validator) rpc(r RPC, serves bool) {
	if r.MaxMsg < 64<<10 {
		v.fail("rpc.maxmsg", "must be at least 65536 bytes, got %d", r.MaxMsg)
	}
	v.duration("rpc.idle", r.Idle)
	if serves {
		v.nets("rpc.allow", r.Allow)
	}
	v.nets("rpc.legacy", r.Legacy)
	if r.Secret != "" && len(r.Secret) < 16 {
		v.fail("rpc.secret", "must be at least 16 bytes long (or empty: no handshake)")
	}
}

func (v *validator) nets(key string, list AddrList) {
	if _, err := ParseNets(list); err != nil {
		v.fail(key, "%v", err)
	}
}

func (v *validator) zookeeper(z ZooKeeper) {
	v.binds("zookeeper.addr", z.Addr, true)
	v.duration("zookeeper.timeout", z.Timeout)
}

func (c *Comet) validate(file string) error {
	v := &validator{file: file}
	v.logConf(c.Log)
	tcp, ws := false, false
	for _, p := range c.Channel.Proto {
		switch p {
		case "tcp":
			tcp = true
		case "websocket":
			ws = true
		default:
			v.fail("channel.proto", "unknown protocol %q (tcp or websocket)", p)
		}
	}
	if !tcp && !ws {
		v.fail("channel.proto", "needs tcp, websocket or both")
	}
	v.binds("tcp.bind", c.TCP.Bind, tcp && len(c.TCP.TLS.Bind) == 0)
	v.binds("tcp.tls.bind", c.TCP.TLS.Bind, false)
	v.binds("websocket.bind", c.WebSocket.Bind, ws && len(c.WebSocket.TLS.Bind) == 0)
	v.binds("websocket.tls.bind", c.WebSocket.TLS.Bind, false)
	v.advertised("tcp.advertise", c.TCP.Advertise, false)
	v.advertised("tcp.tls.advertise", c.TCP.TLS.Advertise, false)
	v.advertised("websocket.advertise", c.WebSocket.Advertise, false)
	v.advertised("websocket.tls.advertise", c.WebSocket.TLS.Advertise, true)
	v.advertised("rpc.advertise", c.RPC.Advertise, false)
	v.tlsFiles(c.TLS, (tcp && len(c.TCP.TLS.Bind) > 0) || (ws && len(c.WebSocket.TLS.Bind) > 0), "tcp.tls.bind or websocket.tls.bind")
	v.binds("rpc.bind", c.RPC.Bind, true)
	v.binds("stat.bind", c.Stat.Bind, false)
	v.binds("pprof.bind", c.Pprof.Bind, false)
	v.binds("metrics.bind", c.Metrics.Bind, false)
	if b := c.Channel.Bucket; b < 1 || b&(b-1) != 0 {
		v.fail("channel.bucket", "must be a power of two, got %d", b)
	}
	v.positive("channel.maxsubscriber", c.Channel.MaxSubscriber)
	if c.Lost.Grace < 0 {
		v.fail("lost.grace", "must not be negative")
	}
	v.positive("channel.msgbuf.num", c.Channel.Msgbuf.Num)
	if c.Channel.Sndbuf.Size < 0 {
		v.fail("channel.sndbuf.size", "must not be negative")
	}
	if c.Channel.Rcvbuf.Size < 0 {
		v.fail("channel.rcvbuf.size", "must not be negative")
	}
	v.duration("channel.handshake.timeout", c.Channel.Handshake.Timeout)
	v.duration("channel.token.expire", c.Channel.Token.Expire)
	v.positive("channel.token.max", c.Channel.Token.Max)
	tk := c.Channel.Token
	switch tk.Mode {
	case "rpc":
	case "jwt":
		switch tk.Alg {
		case "HS256":
			if len(tk.Secret) < 32 {
				v.fail("channel.token.secret", "HS256 needs a secret of at least 32 bytes")
			}
		case "EdDSA", "RS256":
			if tk.KeyFile == "" {
				v.fail("channel.token.keyfile", "%s needs the PEM file of the public key", tk.Alg)
			}
		default:
			v.fail("channel.token.alg", "must be HS256, EdDSA or RS256, got %q", tk.Alg)
		}
		if !c.Channel.Auth {
			v.fail("channel.auth", "must be true with channel.token.mode = \"jwt\"")
		}
	default:
		v.fail("channel.token.mode", "must be rpc or jwt, got %q", tk.Mode)
	}
	v.limit(c.Limit)
	v.zookeeper(c.ZooKeeper)
	v.zkPath("zookeeper.comet.path", c.ZooKeeper.Comet.Path)
	v.zkPath("zookeeper.message.path", c.ZooKeeper.Message.Path)
	if n := c.ZooKeeper.Comet.Node; n == "" || strings.ContainsAny(n, "/ ") {
		v.fail("zookeeper.comet.node", "must be a non-empty name without / or spaces, got %q", n)
	}
	v.positive("zookeeper.comet.weight", c.ZooKeeper.Comet.Weight)
	v.duration("rpc.ping", c.RPC.Ping)
	v.duration("rpc.retry", c.RPC.Retry)
	v.duration("rpc.timeout", c.RPC.Timeout)
	v.rpc(c.RPC, true)
	return v.result()
}

func (w *Web) validate(file string) error {
	v := &validator{file: file}
	v.logConf(w.Log)
	v.binds("http.bind", w.HTTP.Bind, len(w.HTTP.TLS.Bind) == 0)
	v.binds("http.tls.bind", w.HTTP.TLS.Bind, false)
	v.duration("http.servertimeout", w.HTTP.ServerTimeout)
	v.duration("http.idletimeout", w.HTTP.IdleTimeout)
	if t := w.Admin.Token; t != "" && (len(t) < 16 || strings.TrimSpace(t) != t || strings.ContainsAny(t, " \t\r\n")) {
		v.fail("admin.token", "must be at least 16 characters without spaces (or empty: none)")
	}
	v.limit(w.Limit)
	v.binds("admin.bind", w.Admin.Bind, len(w.Admin.TLS.Bind) == 0)
	v.binds("admin.tls.bind", w.Admin.TLS.Bind, false)
	v.tlsFiles(w.TLS, len(w.HTTP.TLS.Bind)+len(w.Admin.TLS.Bind) > 0, "http.tls.bind or admin.tls.bind")
	v.binds("pprof.bind", w.Pprof.Bind, false)
	v.binds("metrics.bind", w.Metrics.Bind, false)
	if w.Admin.MaxBody < 1 {
		v.fail("admin.maxbody", "must be at least 1 byte")
	}
	v.positive("admin.maxkeys", w.Admin.MaxKeys)
	if w.Admin.Batch.MaxBody < 1 {
		v.fail("admin.batch.maxbody", "must be at least 1 byte")
	}
	v.positive("admin.batch.maxentries", w.Admin.Batch.MaxEntries)
	v.duration("token.expire", w.Token.Expire)
	v.duration("prune.interval", w.Prune.Interval)
	v.positive("prune.failures", w.Prune.Failures)
	v.zkPath("prune.path", w.Prune.Path)
	v.zookeeper(w.ZooKeeper)
	v.zkPath("zookeeper.comet.path", w.ZooKeeper.Comet.Path)
	v.zkPath("zookeeper.message.path", w.ZooKeeper.Message.Path)
	v.zkPath("zookeeper.migrate.path", w.ZooKeeper.Migrate.Path)
	if len(w.RPC.Bind) > 0 {
		v.fail("rpc.bind", "web serves no RPC; remove it")
	}
	if len(w.RPC.Advertise) > 0 {
		v.fail("rpc.advertise", "web serves no RPC; remove it")
	}
	v.duration("rpc.ping", w.RPC.Ping)
	v.duration("rpc.retry", w.RPC.Retry)
	v.duration("rpc.timeout", w.RPC.Timeout)
	v.rpc(w.RPC, false)
	return v.result()
}

func (m *Message) validate(file string) error {
	v := &validator{file: file}
	v.logConf(m.Log)
	v.binds("rpc.bind", m.RPC.Bind, true)
	v.advertised("rpc.advertise", m.RPC.Advertise, false)
	v.duration("rpc.timeout", m.RPC.Timeout)
	v.rpc(m.RPC, true)
	v.binds("pprof.bind", m.Pprof.Bind, false)
	v.binds("metrics.bind", m.Metrics.Bind, false)
	v.positive("node.weight", m.Node.Weight)
	v.positive("storage.store", m.Storage.Store)
	v.positive("storage.maxsize", m.Storage.MaxSize)
	v.duration("storage.idttl", m.Storage.IdTTL)
	v.positive("storage.batch", m.Storage.Batch)
	switch m.Storage.Type {
	case "redis":
		if len(m.Redis.Source) == 0 {
			v.fail("redis.source", "needs at least one shard")
		}
		for k, addr := range m.Redis.Source {
			if _, _, err := ParseShardName(k); err != nil {
				v.fail("redis.source."+k, "%v", err)
			}
			if _, err := ParseRedisAddr(addr); err != nil {
				v.fail("redis.source."+k, "%v", err)
			}
		}
		v.positive("redis.idle", m.Redis.Idle)
		if m.Redis.Active < 0 {
			v.fail("redis.active", "must not be negative")
		}
		v.duration("redis.timeout", m.Redis.Timeout)
		v.duration("redis.dialtimeout", m.Redis.DialTimeout)
		if m.Redis.Wait < 0 {
			v.fail("redis.wait", "must not be negative")
		}
		v.duration("redis.waittimeout", m.Redis.WaitTimeout)
		if m.Redis.RoomDB < 1 {
			v.fail("redis.roomdb", "must be 1 or more (database 0 holds the subscriber keys), got %d", m.Redis.RoomDB)
		}
	case "mysql":
		if len(m.MySQL.Source) == 0 {
			v.fail("mysql.source", "needs at least one shard")
		}
		for k, dsn := range m.MySQL.Source {
			if _, _, err := ParseShardName(k); err != nil {
				v.fail("mysql.source."+k, "%v", err)
			}
			if dsn == "" {
				v.fail("mysql.source."+k, "empty DSN")
			}
		}
		if m.MySQL.Idle < 0 {
			v.fail("mysql.idle", "must not be negative")
		}
		if m.MySQL.Active < 0 {
			v.fail("mysql.active", "must not be negative")
		}
		v.duration("mysql.clean", m.MySQL.Clean)
	default:
		v.fail("storage.type", "must be redis or mysql, got %q", m.Storage.Type)
	}
	if m.Room.Prefix == "" {
		v.fail("room.prefix", "must not be empty (room sets would collide with subscriber keys)")
	}
	v.positive("room.max", m.Room.Max)
	if m.Public.Key == "" {
		v.fail("public.key", "must not be empty")
	} else if strings.HasPrefix(m.Public.Key, m.Room.Prefix) {
		v.fail("public.key", "%q must not start with room.prefix %q", m.Public.Key, m.Room.Prefix)
	}
	v.positive("public.store", m.Public.Store)
	v.zookeeper(m.ZooKeeper)
	v.zkPath("zookeeper.message.path", m.ZooKeeper.Message.Path)
	return v.result()
}

// ParseShardName splits a storage source key "name:weight".
func ParseShardName(s string) (name string, weight int, err error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("shard %q must be written name:weight", s)
	}
	w, err := strconv.Atoi(s[i+1:])
	if err != nil || w < 1 {
		return "", 0, fmt.Errorf("shard %q has a weight that is not a whole number >= 1", s)
	}
	return s[:i], w, nil
}

// RedisAddr is a parsed redis.source address.
type RedisAddr struct {
	Network  string // tcp, unix or sentinel
	Address  string // host:port or socket path; for sentinel the list as written
	Password string

	// For "sentinel": the Sentinels to ask (host:port each) and the name
	// under which they watch the shard's master.
	Sentinels []string
	Master    string
}

// ParseRedisAddr parses "tcp@host:port", "unix@/path" and
// "sentinel@host:port,host:port,.../mastername", each with an optional
// "#password" (the password of the Redis servers, not of the Sentinels).
func ParseRedisAddr(s string) (RedisAddr, error) {
	var a RedisAddr
	rest := s
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		a.Password = rest[i+1:]
		rest = rest[:i]
	}
	network, addr, ok := strings.Cut(rest, "@")
	if !ok || addr == "" {
		return a, fmt.Errorf("address %q must be tcp@host:port, unix@/path or sentinel@host:port,.../master", s)
	}
	switch network {
	case "sentinel":
		list, master, ok := strings.Cut(addr, "/")
		if !ok || master == "" {
			return a, fmt.Errorf("address %q names no master (sentinel@host:port,.../master)", s)
		}
		for _, hp := range strings.Split(list, ",") {
			if _, port, err := net.SplitHostPort(hp); err != nil || port == "" {
				return a, fmt.Errorf("address %q: Sentinel %q is not host:port", s, hp)
			}
			a.Sentinels = append(a.Sentinels, hp)
		}
		a.Master = master
	case "tcp":
		if !strings.Contains(addr, ":") {
			return a, fmt.Errorf("address %q has no port", s)
		}
	case "unix":
		if !strings.HasPrefix(addr, "/") {
			return a, fmt.Errorf("address %q must name an absolute socket path", s)
		}
	default:
		return a, fmt.Errorf("address %q: network must be tcp or unix", s)
	}
	a.Network, a.Address = network, addr
	return a, nil
}

// ParseNets parses a list of networks ("10.0.0.0/8") and single addresses
// ("192.0.2.7", taken as one address).
func ParseNets(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a network like 10.0.0.0/8", s)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or network", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
