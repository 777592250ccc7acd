package message

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/conf"
)

// sentinelMaster finds the current master of a shard watched by Redis
// Sentinels ("sentinel@host:port,.../name" in redis.source). Every new
// connection of the shard's pool asks the Sentinels where the master is
// and checks, with ROLE, that the server it reached is a master. So a
// failover is followed without restart: once the old master is gone its
// connections break, and the next dial reaches the promoted replica.
//
// An old master that comes back as a replica answers writes with READONLY;
// such an answer ends the generation of connections (gen): the pool drops
// every connection dialed before it instead of letting each fail once.
type sentinelMaster struct {
	sentinels []string
	name      string
	timeout   time.Duration

	mu   sync.Mutex
	next int // the Sentinel to ask first: the one that answered last

	gen atomic.Uint64
}

func newSentinelMaster(a conf.RedisAddr, timeout time.Duration) *sentinelMaster {
	return &sentinelMaster{sentinels: a.Sentinels, name: a.Master, timeout: timeout}
}

// addr asks the Sentinels in turn for the master's host:port.
func (sm *sentinelMaster) addr(ctx context.Context) (string, error) {
	sm.mu.Lock()
	first := sm.next
	sm.mu.Unlock()
	var errs []error
	for i := range sm.sentinels {
		n := (first + i) % len(sm.sentinels)
		a, err := sm.ask(ctx, sm.sentinels[n])
		if err == nil {
			sm.mu.Lock()
			sm.next = n
			sm.mu.Unlock()
			return a, nil
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %w", sm.sentinels[n], err))
		if ctx.Err() != nil {
			break
		}
	}
	return "", fmt.Errorf("no Sentinel named the master %q: %w", sm.name, errors.Join(errs...))
}

func (sm *sentinelMaster) ask(ctx context.Context, sentinel string) (string, error) {
	c, err := redis.DialContext(ctx, "tcp", sentinel,
		redis.DialConnectTimeout(sm.timeout),
		redis.DialReadTimeout(sm.timeout),
		redis.DialWriteTimeout(sm.timeout))
	if err != nil {
		return "", err
	}
	defer c.Close()
	hp, err := redis.Strings(c.Do("SENTINEL", "get-master-addr-by-name", sm.name))
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("unexpected answer %q", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// dial connects to the current master. It fails when the server the
// Sentinels named is not a master (yet): a failover is under way.
func (sm *sentinelMaster) dial(ctx context.Context, opts ...redis.DialOption) (redis.Conn, error) {
	gen := sm.gen.Load()
	addr, err := sm.addr(ctx)
	if err != nil {
		return nil, err
	}
	c, err := redis.DialContext(ctx, "tcp", addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("master %s at %s: %w", sm.name, addr, err)
	}
	role, err := redis.Values(c.Do("ROLE"))
	if err == nil && len(role) > 0 {
		if r, _ := redis.String(role[0], nil); r != "master" {
			err = fmt.Errorf("it is a %s", r)
		}
	} else if err == nil {
		err = errors.New("empty ROLE answer")
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("master %s at %s: %w", sm.name, addr, err)
	}
	return &masterConn{Conn: c, sm: sm, gen: gen}, nil
}

// current reports whether c belongs to the present generation.
func (sm *sentinelMaster) current(c redis.Conn) bool {
	mc, ok := c.(*masterConn)
	return !ok || mc.gen == sm.gen.Load()
}

// masterConn is a connection to a master found through the Sentinels. It
// watches its answers for READONLY (the server was demoted).
type masterConn struct {
	redis.Conn
	sm  *sentinelMaster
	gen uint64

	demoted atomic.Bool
}

var errDemoted = errors.New("the server is no longer the master (READONLY)")

func (c *masterConn) check(reply any, err error) (any, error) {
	if err != nil && strings.HasPrefix(err.Error(), "READONLY") {
		if c.demoted.CompareAndSwap(false, true) {
			c.sm.gen.CompareAndSwap(c.gen, c.gen+1)
		}
	}
	return reply, err
}

// Err makes the pool drop a connection to a demoted master.
func (c *masterConn) Err() error {
	if err := c.Conn.Err(); err != nil {
		return err
	}
	if c.demoted.Load() {
		return errDemoted
	}
	return nil
}

func (c *masterConn) Do(cmd string, args ...any) (any, error) {
	return c.check(c.Conn.Do(cmd, args...))
}

func (c *masterConn) Receive() (any, error) { return c.check(c.Conn.Receive()) }

func (c *masterConn) DoWithTimeout(t time.Duration, cmd string, args ...any) (any, error) {
	return c.check(redis.DoWithTimeout(c.Conn, t, cmd, args...))
}

func (c *masterConn) ReceiveWithTimeout(t time.Duration) (any, error) {
	return c.check(redis.ReceiveWithTimeout(c.Conn, t))
}

func (c *masterConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	return c.check(redis.DoContext(c.Conn, ctx, cmd, args...))
}

func (c *masterConn) ReceiveContext(ctx context.Context) (any, error) {
	return c.check(redis.ReceiveContext(c.Conn, ctx))
}
