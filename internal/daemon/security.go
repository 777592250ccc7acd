package daemon

import (
	"log/slog"
	"net"
	"net/netip"

	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/connlimit"
)

// RPCOptions turns [rpc] into the transport's options; maxConns caps the
// connections of a served RPC listener (0: none). The configuration was
// validated, so its networks parse.
func RPCOptions(r conf.RPC, maxConns int) gobrpc.Options {
	allow, _ := conf.ParseNets(r.Allow)
	legacy, _ := conf.ParseNets(r.Legacy)
	o := gobrpc.Options{
		MaxMsg:           r.MaxMsg,
		Idle:             r.Idle.D(),
		Allow:            allow,
		MaxConns:         maxConns,
		Legacy:           legacy,
		HandshakeTimeout: r.Timeout.D(),
	}
	if r.Secret != "" {
		o.Secret = []byte(r.Secret)
	}
	return o
}

// Budget is how a daemon shares its open-file limit: Clients for the
// client listeners together, Internal for each internal listener (admin,
// RPC, stat), the rest kept for ZooKeeper, storage and peer connections.
type Budget struct {
	Limit    uint64 // the process's open-file limit (0: unknown)
	Clients  int    // cap of the client listeners together; 0: none
	Internal int    // cap of each internal listener; 0: none
}

// FileBudget derives the caps from the process's open-file limit and
// [limit] (conns and reserve, 0 for their defaults).
func FileBudget(l conf.Limit) Budget {
	limit := connlimit.FileLimit()
	clients, reserve := connlimit.Budget(limit, l.Reserve)
	if l.Conns > 0 {
		clients = l.Conns
	}
	return Budget{Limit: limit, Clients: clients, Internal: reserve / 4}
}

// ClientRules are the connlimit rules of a daemon's client listeners.
func ClientRules(l conf.Limit, b Budget, deferToHTTP bool) connlimit.Rules {
	return connlimit.Rules{Max: b.Clients, PerAddr: l.PerAddr, Rate: l.Rate, Burst: l.Burst, Defer: deferToHTTP}
}

// WarnIfExposed logs a warning when one of binds listens beyond loopback
// and what (a credential, an allow-list) is not set.
func WarnIfExposed(log *slog.Logger, key string, binds []string, what string) {
	for _, b := range binds {
		if !isLoopback(b) {
			log.Warn(key+" listens beyond loopback without "+what, "addr", b)
			return
		}
	}
}

func isLoopback(bind string) bool {
	host, _, err := net.SplitHostPort(bind)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
