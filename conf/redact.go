package conf

import "strings"

// Redacted is what replaces a secret in a configuration that is shown
// (comet's /stat?type=config, logs).
const Redacted = "(redacted)"

func redact(s string) string {
	if s == "" {
		return ""
	}
	return Redacted
}

// Redacted returns a copy of c with its secrets (rpc.secret,
// channel.token.secret) replaced by Redacted.
func (c *Comet) Redacted() *Comet {
	out := *c
	out.RPC.Secret = redact(c.RPC.Secret)
	out.Channel.Token.Secret = redact(c.Channel.Token.Secret)
	return &out
}

// Redacted returns a copy of w with its secrets (admin.token, rpc.secret)
// replaced by Redacted.
func (w *Web) Redacted() *Web {
	out := *w
	out.Admin.Token = redact(w.Admin.Token)
	out.RPC.Secret = redact(w.RPC.Secret)
	return &out
}

// Redacted returns a copy of m with its secrets (rpc.secret, the passwords
// of redis.source and mysql.source) replaced by Redacted.
func (m *Message) Redacted() *Message {
	out := *m
	out.RPC.Secret = redact(m.RPC.Secret)
	out.Redis.Source = make(map[string]string, len(m.Redis.Source))
	for k, v := range m.Redis.Source {
		out.Redis.Source[k] = RedactRedisSource(v)
	}
	out.MySQL.Source = make(map[string]string, len(m.MySQL.Source))
	for k, v := range m.MySQL.Source {
		out.MySQL.Source[k] = RedactDSN(v)
	}
	return &out
}

// RedactRedisSource hides the password of "tcp@host:port#password".
func RedactRedisSource(s string) string {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		return s[:i+1] + Redacted
	}
	return s
}

// RedactDSN hides the password of a MySQL DSN "user:password@tcp(host)/db".
func RedactDSN(dsn string) string {
	at := strings.LastIndexByte(dsn, '@')
	if at < 0 {
		return dsn
	}
	cred := dsn[:at]
	if i := strings.IndexByte(cred, ':'); i >= 0 {
		return cred[:i+1] + Redacted + dsn[at:]
	}
	return dsn
}
