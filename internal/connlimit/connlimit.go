// Package connlimit bounds the connections a listener accepts: a cap on the
// connections open through it, an allow-list of peer networks, and
// per-client-address limits (connections open at once, new connections per
// second). A connection that breaks a rule is refused: closed at once, or,
// for HTTP listeners that want to answer it (HTTP 429), handed on marked so
// that the handler refuses it before doing any work (see Refusal).
//
// One Limiter may wrap several listeners; they then share its cap and its
// per-address counts (comet's TCP and WebSocket ports, for example). The
// wrapper is the first one on a raw TCP listener: TLS, when configured,
// wraps on top of it, so refused connections never cost a TLS handshake.
package connlimit

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Rules are what a Limiter enforces. The zero value accepts everything.
type Rules struct {
	// Max is the number of connections that may be open at once through
	// the Limiter's listeners; 0: no cap.
	Max int
	// Allow lists the networks peers may connect from; empty: any.
	Allow []netip.Prefix
	// PerAddr is the number of connections one IP address may have open;
	// 0: no limit.
	PerAddr int
	// Rate is the number of new connections per second one IP address may
	// open, with bursts of up to Burst (at least 1); 0: no limit.
	Rate  float64
	Burst int
	// Defer hands connections that break PerAddr or Rate to the caller
	// instead of closing them, marked so that Refusal reports why: an HTTP
	// handler answers them 429. The cap and the allow-list still close.
	Defer bool
}

// Reasons of a refusal.
var (
	ErrCap     = errors.New("connection cap reached")
	ErrAllow   = errors.New("address not allowed")
	ErrPerAddr = errors.New("too many connections from this address")
	ErrRate    = errors.New("too many new connections from this address")
)

// Counts are a Limiter's counters since it was built.
type Counts struct {
	Open         int64 // connections open now
	Accepted     int64 // connections handed on (refused-but-deferred ones excluded)
	RefusedCap   int64
	RefusedAllow int64
	RefusedAddr  int64 // PerAddr
	RefusedRate  int64
}

// addrState is what a Limiter keeps about one peer IP.
type addrState struct {
	open   int
	tokens float64
	last   time.Time
}

// Limiter enforces Rules on the listeners it wraps.
type Limiter struct {
	name  string
	rules Rules
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	open     int
	addrs    map[netip.Addr]*addrState
	swept    int // size of addrs after the last sweep
	accepted atomic.Int64
	refused  [4]atomic.Int64 // cap, allow, peraddr, rate
}

// New returns a Limiter named name (for logs) enforcing r. log receives
// one line per refusal; give it a rate-limited handler.
func New(name string, r Rules, log *slog.Logger) *Limiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if r.Rate > 0 && r.Burst < 1 {
		r.Burst = 1
	}
	return &Limiter{name: name, rules: r, log: log, now: time.Now, addrs: make(map[netip.Addr]*addrState)}
}

// Counts returns the Limiter's counters.
func (l *Limiter) Counts() Counts {
	l.mu.Lock()
	open := l.open
	l.mu.Unlock()
	return Counts{
		Open:         int64(open),
		Accepted:     l.accepted.Load(),
		RefusedCap:   l.refused[0].Load(),
		RefusedAllow: l.refused[1].Load(),
		RefusedAddr:  l.refused[2].Load(),
		RefusedRate:  l.refused[3].Load(),
	}
}

// Refused returns the number of connections refused for any reason.
func (c Counts) Refused() int64 {
	return c.RefusedCap + c.RefusedAllow + c.RefusedAddr + c.RefusedRate
}

// Wrap returns ln with the Limiter's rules applied to every connection it
// accepts.
func (l *Limiter) Wrap(ln net.Listener) net.Listener {
	return &listener{Listener: ln, l: l}
}

type listener struct {
	net.Listener
	l *Limiter
}

// Accept returns the next connection the rules let through (or, with
// Defer, one marked refused). Connections refused outright are closed
// here and never returned.
func (ln *listener) Accept() (net.Conn, error) {
	for {
		nc, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := PeerIP(nc.RemoteAddr())
		c, why := ln.l.admit(nc, ip)
		if c != nil {
			if c.refusal != nil {
				ln.l.log.Warn("connection refused", "listener", ln.l.name, "addr", ln.Addr().String(), "peer", ip.String(), "reason", c.refusal.Error())
			}
			return c, nil
		}
		nc.Close()
		ln.l.log.Warn("connection refused", "listener", ln.l.name, "addr", ln.Addr().String(), "peer", ip.String(), "reason", why.Error())
	}
}

// admit applies the rules to a new connection from ip. It returns the
// connection to hand on, or nil and the reason to close it.
func (l *Limiter) admit(nc net.Conn, ip netip.Addr) (*Conn, error) {
	r := &l.rules
	if len(r.Allow) > 0 && !InAny(r.Allow, ip) {
		l.refused[1].Add(1)
		return nil, ErrAllow
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Max > 0 && l.open >= r.Max {
		l.refused[0].Add(1)
		return nil, ErrCap
	}
	var why error
	var st *addrState
	if r.PerAddr > 0 || r.Rate > 0 {
		st = l.addrs[ip]
		now := l.now()
		if st == nil {
			st = &addrState{tokens: float64(r.Burst), last: now}
			l.addrs[ip] = st
		}
		if r.Rate > 0 {
			st.tokens = min(float64(r.Burst), st.tokens+now.Sub(st.last).Seconds()*r.Rate)
			st.last = now
		}
		switch {
		case r.PerAddr > 0 && st.open >= r.PerAddr:
			l.refused[2].Add(1)
			why = ErrPerAddr
		case r.Rate > 0 && st.tokens < 1:
			l.refused[3].Add(1)
			why = ErrRate
		default:
			st.tokens--
		}
		l.sweepLocked(now)
	}
	if why != nil && !r.Defer {
		return nil, why
	}
	l.open++
	c := &Conn{Conn: nc, l: l, refusal: why}
	if why == nil {
		l.accepted.Add(1)
		if st != nil {
			st.open++
			c.ip = ip
			c.counted = true
		}
	}
	return c, nil
}

// sweepLocked forgets addresses with no open connection and a full token
// bucket once the table has doubled since the last sweep, so that the
// table stays as large as the addresses that matter.
func (l *Limiter) sweepLocked(now time.Time) {
	if len(l.addrs) < 1024 || len(l.addrs) < 2*l.swept {
		return
	}
	for ip, st := range l.addrs {
		full := l.rules.Rate <= 0 || st.tokens+now.Sub(st.last).Seconds()*l.rules.Rate >= float64(l.rules.Burst)
		if st.open == 0 && full {
			delete(l.addrs, ip)
		}
	}
	l.swept = len(l.addrs)
}

// release counts a connection out.
func (l *Limiter) release(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if !c.counted {
		return
	}
	if st := l.addrs[c.ip]; st != nil {
		st.open--
		full := l.rules.Rate <= 0 || st.tokens >= float64(l.rules.Burst)
		if st.open <= 0 && full {
			delete(l.addrs, c.ip)
		}
	}
}

// InAny reports whether ip is in one of nets.
func InAny(nets []netip.Prefix, ip netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// PeerIP is the IP address of a (an IPv4-mapped address unmapped), or the
// zero Addr when a has none.
func PeerIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Conn is a connection accepted through a Limiter. Closing it counts it
// out of the Limiter (once).
type Conn struct {
	net.Conn
	l       *Limiter
	ip      netip.Addr
	counted bool
	refusal error
	once    sync.Once
}

// Close closes the connection and counts it out.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}

// NetConn returns the underlying connection (for socket options).
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Refusal reports why a deferred connection must be refused, or nil.
func (c *Conn) Refusal() error { return c.refusal }

// RefusalOf finds the Limiter's Conn under nc (through wrappers that have
// a NetConn method, such as *tls.Conn) and returns its refusal, or nil.
func RefusalOf(nc net.Conn) error {
	for nc != nil {
		if c, ok := nc.(*Conn); ok {
			return c.refusal
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		nc = u.NetConn()
	}
	return nil
}

// TCPConn returns the *net.TCPConn under nc, unwrapping as RefusalOf
// does, or nil.
func TCPConn(nc net.Conn) *net.TCPConn {
	for nc != nil {
		if tc, ok := nc.(*net.TCPConn); ok {
			return tc
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		nc = u.NetConn()
	}
	return nil
}

// Raw returns the connection a *Conn wraps, or nc itself: writes through
// it keep the fast paths of *net.TCPConn (writev for net.Buffers) while
// Close still goes through the *Conn.
func Raw(nc net.Conn) net.Conn {
	if c, ok := nc.(*Conn); ok {
		return c.Conn
	}
	return nc
}

type refusalKey struct{}

// ConnContext is an http.Server ConnContext that records a deferred
// refusal of the connection in its requests' context (see Refusal).
func ConnContext(ctx context.Context, nc net.Conn) context.Context {
	if err := RefusalOf(nc); err != nil {
		return context.WithValue(ctx, refusalKey{}, err)
	}
	return ctx
}

// Refusal returns why the connection of a request must be refused (an
// HTTP handler answers 429 and closes), or nil. The server must have
// ConnContext set.
func Refusal(ctx context.Context) error {
	err, _ := ctx.Value(refusalKey{}).(error)
	return err
}
