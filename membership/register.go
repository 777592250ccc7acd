package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Registration keeps one ephemeral sequential child alive under a parent
// path: a comet instance under <comet.path>/<node>, a message instance under
// <message.path>.
type Registration struct {
	z      *ZK
	parent string
	data   []byte
	log    *slog.Logger

	cancel context.CancelFunc
	done   chan struct{} // closed when loop returns

	made    atomic.Int64 // children created (or adopted) so far
	missing atomic.Bool  // the child is known to be gone and not yet made again
	again   func()       // called before the child is created again; may be nil

	mu        sync.Mutex
	path      string // current child
	closeOnce sync.Once
	closeErr  error
}

// Backoff bounds of the registration and watch loops.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Register creates parent (persistent, with its ancestors) and an ephemeral
// sequential child parent+"/<seq>" holding data, and returns once that child
// exists. Until Close or the end of ctx it then keeps a child there: after a
// session expiry, or after the child or the parent is deleted, it creates
// them again (with a new sequence number).
//
// If the first creation fails with a transient error Register retries until
// ctx ends; a bad path fails at once.
func Register(ctx context.Context, z *ZK, parent string, data []byte, log *slog.Logger) (*Registration, error) {
	return RegisterNotify(ctx, z, parent, data, log, nil)
}

// RegisterNotify is Register with again, when not nil, called each time
// the child is found gone (session expired, child or parent deleted), just
// before it is created again: the owner learns that it was unregistered
// for a while before anyone can see it registered again.
func RegisterNotify(ctx context.Context, z *ZK, parent string, data []byte, log *slog.Logger, again func()) (*Registration, error) {
	if err := checkPath(parent); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registration{z: z, parent: parent, data: append([]byte(nil), data...), log: log.With("zk_parent", parent), done: make(chan struct{}), again: again}
	ctx, r.cancel = z.bind(ctx)
	path, err := r.create(ctx, false)
	if err != nil {
		r.cancel()
		return nil, err
	}
	r.path = path
	r.made.Add(1)
	r.log.Info("registered in zookeeper", "zk_path", path)
	go r.loop(ctx)
	return r, nil
}

// Path returns the full path of the current child.
func (r *Registration) Path() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.path
}

// Registered reports whether the child is in place as far as the
// registration knows: false from the moment it finds the child gone until
// it has made a new one, and after Close. (It does not ask ZooKeeper; with
// the session down, ask the session.)
func (r *Registration) Registered() bool {
	select {
	case <-r.done:
		return false
	default:
	}
	return !r.missing.Load()
}

// Registrations returns how many children the registration has made: 1
// after Register, one more each time it had to register again.
func (r *Registration) Registrations() int64 { return r.made.Load() }

// Close stops keeping the child and deletes it. It does not close the
// session. The loop also stops when ctx ends or the session is closed
// (ZK.Close), but the child is only deleted by Close or with the session.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
		path := r.Path()
		if r.z.closing.Load() {
			return // the session is closed, and its ephemeral child with it
		}
		err := r.z.conn.Delete(path, -1)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			r.closeErr = fmt.Errorf("membership: delete %s: %w", path, err)
			return
		}
		r.log.Info("unregistered from zookeeper", "zk_path", path)
	})
	return r.closeErr
}

// loop watches the child and recreates it whenever it is gone.
func (r *Registration) loop(ctx context.Context) {
	defer close(r.done)
	backoff := minBackoff
	retry := func(err error) bool {
		if r.z.closing.Load() {
			return false
		}
		r.log.Warn("zookeeper registration: retrying", "err", err, "retry_in", backoff)
		if !sleepCtx(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, maxBackoff)
		return true
	}
	for ctx.Err() == nil {
		path := r.Path()
		ok, stat, ev, err := r.z.conn.ExistsW(path)
		if err != nil {
			if !retry(fmt.Errorf("watch %s: %w", path, err)) {
				return
			}
			continue
		}
		if ok && stat.EphemeralOwner != r.z.conn.SessionID() {
			// Left over from a session that has ended (or is ending): it is
			// not ours to keep. Make our own.
			r.log.Warn("zookeeper registration belongs to an old session; registering again", "zk_path", path)
			r.z.conn.Delete(path, stat.Version)
			ok = false
		}
		if !ok {
			r.missing.Store(true)
			if r.again != nil {
				r.again()
			}
			newPath, err := r.create(ctx, true)
			if err != nil {
				if ctx.Err() == nil && !r.z.closing.Load() {
					r.log.Error("zookeeper registration stopped", "err", err)
				}
				return
			}
			r.mu.Lock()
			r.path = newPath
			r.mu.Unlock()
			r.made.Add(1)
			r.missing.Store(false)
			r.log.Warn("registered again in zookeeper", "zk_path", newPath, "old_zk_path", path)
			backoff = minBackoff
			continue
		}
		backoff = minBackoff
		select {
		case <-ctx.Done():
			return
		case e := <-ev:
			// Deleted, data changed, or the watch is lost (disconnection,
			// session expiry): look again.
			r.log.Debug("zookeeper registration event", "type", e.Type.String(), "state", e.State.String(), "err", e.Err)
		}
	}
}

// create makes the parent and a new child, retrying transient errors with
// backoff until ctx ends. After a lost connection the first create may have
// succeeded without our knowing: adopt a child of this session holding our
// data rather than leave a duplicate.
func (r *Registration) create(ctx context.Context, again bool) (string, error) {
	backoff := minBackoff
	ambiguous := again
	for {
		path, err := r.tryCreate(ambiguous)
		if err == nil {
			return path, nil
		}
		if errors.Is(err, zk.ErrInvalidPath) || errors.Is(err, zk.ErrBadArguments) || errors.Is(err, zk.ErrNoAuth) || errors.Is(err, zk.ErrInvalidACL) {
			return "", fmt.Errorf("membership: register under %s: %w", r.parent, err)
		}
		if r.z.closing.Load() {
			return "", fmt.Errorf("membership: register under %s: zookeeper session closed", r.parent)
		}
		ambiguous = ambiguous || errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved)
		r.log.Warn("zookeeper registration failed; retrying", "err", err, "retry_in", backoff)
		if !sleepCtx(ctx, backoff) {
			return "", fmt.Errorf("membership: register under %s: %w (last error: %v)", r.parent, ctx.Err(), err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (r *Registration) tryCreate(adopt bool) (string, error) {
	conn := r.z.conn
	if adopt {
		if p := r.findOwn(); p != "" {
			return p, nil
		}
	}
	path, err := conn.Create(r.parent+"/", r.data, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNoNode) {
		if err := EnsurePath(conn, r.parent); err != nil {
			return "", err
		}
		path, err = conn.Create(r.parent+"/", r.data, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	}
	if err != nil {
		return "", fmt.Errorf("create %s/: %w", r.parent, err)
	}
	return path, nil
}

// findOwn returns a child of parent owned by the current session and
// holding our data, or "".
func (r *Registration) findOwn() string {
	conn := r.z.conn
	sid := conn.SessionID()
	children, _, err := conn.Children(r.parent)
	if err != nil || sid == 0 {
		return ""
	}
	for _, c := range children {
		p := r.parent + "/" + c
		data, st, err := conn.Get(p)
		if err == nil && st.EphemeralOwner == sid && bytes.Equal(data, r.data) {
			return p
		}
	}
	return ""
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
