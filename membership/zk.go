package membership

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// ZK is a daemon's one ZooKeeper session. go-zookeeper reconnects by
// itself, and after an expiry it starts a new session on the same *zk.Conn;
// the registration and watch loops of this package cope with both.
type ZK struct {
	conn *zk.Conn
	log  *slog.Logger
	done chan struct{} // closed when the event loop has ended

	closing atomic.Bool // Close was called: disconnection is expected
	life    context.Context
	end     context.CancelFunc // ends life, at Close

	mu     sync.Mutex
	sessID int64  // session the password below belongs to
	passwd []byte // as sent by the server when the session was made
}

// DialZK connects to ZooKeeper and returns once a session is established,
// or fails after sessionTimeout. Connection and session changes are logged
// on log; go-zookeeper's own messages go to log at debug level.
func DialZK(addrs []string, sessionTimeout time.Duration, log *slog.Logger) (*ZK, error) {
	if len(addrs) == 0 {
		return nil, errors.New("membership: zookeeper: no address")
	}
	if sessionTimeout <= 0 {
		return nil, fmt.Errorf("membership: zookeeper: session timeout %v must be positive", sessionTimeout)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	z := &ZK{log: log.With("zk", strings.Join(addrs, ",")), done: make(chan struct{})}
	z.life, z.end = context.WithCancel(context.Background())
	conn, events, err := zk.Connect(addrs, sessionTimeout,
		zk.WithLogger(zkLogger{z.log}),
		zk.WithLogInfo(false),
		zk.WithDialer(z.dial))
	if err != nil {
		return nil, fmt.Errorf("membership: zookeeper %v: %w", addrs, err)
	}
	z.conn = conn
	connected := make(chan struct{})
	go z.watchEvents(events, connected)

	timer := time.NewTimer(sessionTimeout)
	defer timer.Stop()
	select {
	case <-connected:
		return z, nil
	case <-timer.C:
		z.Close()
		return nil, fmt.Errorf("membership: zookeeper %v: no session after %v", addrs, sessionTimeout)
	}
}

// watchEvents logs session events until the connection is closed. It closes
// connected at the first established session.
func (z *ZK) watchEvents(events <-chan zk.Event, connected chan struct{}) {
	defer close(z.done)
	first := true
	up := false // a session is established: the next disconnection is news
	for ev := range events {
		if ev.Type != zk.EventSession {
			continue
		}
		switch ev.State {
		case zk.StateHasSession:
			up = true
			z.log.Info("zookeeper session established", "server", ev.Server, "session", fmt.Sprintf("%#x", z.conn.SessionID()))
			if first {
				first = false
				close(connected)
			}
		case zk.StateDisconnected:
			switch {
			case z.closing.Load():
				z.log.Debug("zookeeper session closed", "server", ev.Server)
			case up:
				z.log.Warn("zookeeper disconnected; reconnecting", "server", ev.Server)
			default: // another failed attempt
				z.log.Debug("zookeeper still disconnected", "server", ev.Server)
			}
			up = false
		case zk.StateExpired:
			z.log.Warn("zookeeper session expired; starting a new one", "server", ev.Server)
		case zk.StateAuthFailed:
			z.log.Error("zookeeper authentication failed", "server", ev.Server)
		default:
			z.log.Debug("zookeeper state", "state", ev.State.String(), "server", ev.Server)
		}
	}
}

// Conn returns the underlying go-zookeeper connection.
func (z *ZK) Conn() *zk.Conn { return z.conn }

// SessionID returns the current session's id (0 while there is none).
func (z *ZK) SessionID() int64 { return z.conn.SessionID() }

// Session returns the current session's id and password, as a second
// client needs them to take the session over (tests use this to expire it).
func (z *ZK) Session() (int64, []byte) {
	id := z.conn.SessionID()
	z.mu.Lock()
	defer z.mu.Unlock()
	if id == 0 || id != z.sessID {
		return id, nil
	}
	return id, append([]byte(nil), z.passwd...)
}

// Close ends the session (ZooKeeper deletes its ephemeral nodes at once) and
// waits for the connection's goroutines to stop.
func (z *ZK) Close() {
	z.closing.Store(true)
	z.end() // the loops of this package stop before they see the closed connection
	z.conn.Close()
	<-z.done
}

// bind returns a context that ends with ctx or when z is closed, whichever
// comes first: a closed session cannot come back, so the loops using it
// stop. Call stop when done.
func (z *ZK) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(z.life, cancel)
	return ctx, func() { unhook(); cancel() }
}

// EnsurePath creates path and its missing ancestors as persistent nodes.
// Nodes that exist already are fine.
func EnsurePath(conn *zk.Conn, path string) error {
	if err := checkPath(path); err != nil {
		return err
	}
	for i := 1; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			continue
		}
		p := path[:i]
		_, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("membership: create %s: %w", p, err)
		}
	}
	return nil
}

// checkPath accepts absolute ZooKeeper paths other than "/" itself, without
// empty elements or a trailing slash.
func checkPath(path string) error {
	if !strings.HasPrefix(path, "/") || len(path) < 2 || strings.HasSuffix(path, "/") || strings.Contains(path, "//") {
		return fmt.Errorf("membership: bad zookeeper path %q: want /name[/name...]", path)
	}
	return nil
}

// zkLogger sends go-zookeeper's messages to slog at debug level; the
// session events worth an operator's attention are logged by watchEvents.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug("zookeeper: " + fmt.Sprintf(format, args...))
}

// dial connects to a ZooKeeper server and records the session id and
// password from the server's connect response, which go-zookeeper does not
// expose.
func (z *ZK) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, z: z}, nil
}

// sniffConn watches the first frame read on a connection: the connect
// response (int32 length, int32 protocol version, int32 timeout, int64
// session id, int32 password length, password).
type sniffConn struct {
	net.Conn
	z    *ZK
	buf  []byte
	done bool
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.done && n > 0 {
		c.buf = append(c.buf, p[:n]...)
		c.parse()
	}
	return n, err
}

func (c *sniffConn) parse() {
	b := c.buf
	if len(b) < 4 {
		return
	}
	size := int(binary.BigEndian.Uint32(b))
	if size > 1024 { // not a connect response
		c.done, c.buf = true, nil
		return
	}
	if len(b) < 4+size {
		return
	}
	c.done = true
	f := b[4 : 4+size]
	c.buf = nil
	if len(f) < 20 {
		return
	}
	id := int64(binary.BigEndian.Uint64(f[8:16]))
	plen := int(int32(binary.BigEndian.Uint32(f[16:20])))
	if id == 0 || plen < 0 || len(f) < 20+plen {
		return
	}
	c.z.mu.Lock()
	c.z.sessID = id
	c.z.passwd = append([]byte(nil), f[20:20+plen]...)
	c.z.mu.Unlock()
}

// startWatch is what every watcher does first: pick its logger (the
// session's when log is nil), check path, and bind ctx to the session. ok is
// false, after logging why, when path is not a valid ZooKeeper path; else
// the caller must call stop when done.
func (z *ZK) startWatch(ctx context.Context, path string, log *slog.Logger, what string) (_ context.Context, stop context.CancelFunc, _ *slog.Logger, ok bool) {
	if log == nil {
		log = z.log
	}
	log = log.With("zk_path", path)
	if err := checkPath(path); err != nil {
		log.Error(what+" watcher not started", "err", err)
		return ctx, nil, log, false
	}
	ctx, stop = z.bind(ctx)
	return ctx, stop, log, true
}
