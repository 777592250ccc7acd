package gobrpc

import (
	"context"
	"errors"
	"fmt"
	"gopush/internal/connlimit"
	"io"
	"net"
	"net/rpc"
	"reflect"
	"strings"
	"sync"
	"time"
)

// ErrClientClosed is returned by Call after Close.
var ErrClientClosed = errors.New("gobrpc: client closed")

// ErrTimeout is returned (wrapped) when a call gets no answer before its
// deadline. The call may or may not have run on the peer.
var ErrTimeout = errors.New("gobrpc: call timed out")

// Client is one net/rpc (gob) connection to one peer. It dials lazily, at
// most once per call, and drops the connection when it breaks so that the
// next call redials. It is safe for concurrent use; calls share the
// connection (net/rpc multiplexes them).
type Client struct {
	addr    string
	timeout time.Duration
	opts    Options

	mu      sync.Mutex
	rc      *rpc.Client   // current connection; nil when none
	used    time.Time     // when rc was last handed to a call
	dialing chan struct{} // closed when the dial in progress ends; nil when none
	dialErr error         // outcome of the last dial
	closed  bool
}

// NewClient returns a client for addr whose calls last at most timeout,
// which must be positive (the daemons take it from rpc.timeout, whose
// default lives in package conf). It does not dial.
func NewClient(addr string, timeout time.Duration) *Client {
	return NewClientWith(addr, timeout, Options{})
}

// NewClientWith is NewClient with hardening options: answers over
// o.MaxMsg break the connection, a connection unused for o.Idle/2 is
// redialled, and with o.Secret the client does the node handshake unless
// the peer's address is in o.Legacy. Allow and MaxConns are ignored.
func NewClientWith(addr string, timeout time.Duration, o Options) *Client {
	if timeout <= 0 {
		panic("gobrpc: NewClient with a timeout that is not positive")
	}
	return &Client{addr: addr, timeout: timeout, opts: o}
}

// Addr returns the peer's address.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection; later calls fail with ErrClientClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	rc := c.rc
	c.rc = nil
	c.closed = true
	c.mu.Unlock()
	if rc != nil {
		return rc.Close()
	}
	return nil
}

// Call invokes method on the peer. The deadline is the earlier of ctx's and
// the client's timeout; Call returns by then whatever the peer does. reply is
// written only when Call returns nil, so a caller may reuse it after a
// timeout. Errors returned by the peer's method are rpc.ServerError (see
// IsTransport, IsNoSuchMethod).
func (c *Client) Call(ctx context.Context, method string, args, reply any) error {
	// A caller that set an earlier deadline itself (comet's store path
	// does, with the same rpc.timeout) needs no second timer.
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if err := c.call(ctx, method, args, reply); err != nil {
		return fmt.Errorf("gobrpc: %s on %s: %w", method, c.addr, err)
	}
	return nil
}

func (c *Client) call(ctx context.Context, method string, args, reply any) error {
	rc, err := c.conn(ctx)
	if err != nil {
		return err
	}
	// Decode into a fresh value: an abandoned call may still be answered
	// later, and must not write into the caller's reply then.
	rv := reflect.ValueOf(reply)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("reply must be a non-nil pointer, not %T", reply)
	}
	fresh := reflect.New(rv.Type().Elem())
	call := rc.Go(method, args, fresh.Interface(), make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		if call.Error != nil {
			if IsTransport(call.Error) {
				c.drop(rc)
			}
			return call.Error
		}
		rv.Elem().Set(fresh.Elem())
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	}
}

// conn returns the current connection, dialling one if there is none.
// Concurrent callers share one dial, which runs on its own goroutine
// (bounded by the client's timeout) so that each caller can give up at its
// own deadline.
func (c *Client) conn(ctx context.Context) (*rpc.Client, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClientClosed
	}
	if rc := c.rc; rc != nil {
		now := time.Now()
		if c.opts.Idle <= 0 || now.Sub(c.used) < c.opts.Idle/2 {
			c.used = now
			c.mu.Unlock()
			return rc, nil
		}
		// Unused for long: the peer may be closing it for idleness just
		// as a call goes out on it. Start afresh.
		c.rc = nil
		rc.Close()
	}
	wait := c.dialing
	if wait == nil {
		wait = make(chan struct{})
		c.dialing = wait
		go c.dial(wait)
	}
	c.mu.Unlock()

	select {
	case <-wait:
	case <-ctx.Done():
		return nil, ctxErr(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, ErrClientClosed
	case c.rc != nil:
		c.used = time.Now()
		return c.rc, nil
	case c.dialErr != nil:
		return nil, c.dialErr
	}
	return nil, errors.New("connection lost just after dialling")
}

// dial connects to the peer and publishes the outcome; it closes wait.
func (c *Client) dial(wait chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err == nil && c.opts.needsHandshake(connlimit.PeerIP(nc.RemoteAddr())) {
		if err = clientHandshake(nc, c.opts.Secret, min(c.timeout, c.opts.handshakeTimeout())); err != nil {
			nc.Close()
		}
	}
	var rc *rpc.Client
	if err == nil {
		rc = rpc.NewClientWithCodec(newClientCodec(nc, c.timeout, c.opts.MaxMsg))
	}
	if err != nil {
		err = &dialError{err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	close(wait)
	c.dialing = nil
	c.dialErr = err
	if rc != nil {
		if c.closed {
			rc.Close()
		} else {
			// Fresh: a call that comes before the waiters take it must
			// not find it idle (used is still the zero time on a first
			// dial) and close it under them.
			c.rc, c.used = rc, time.Now()
		}
	}
}

// dialError is a failure to connect: nothing was sent, so the call can be
// tried elsewhere whatever the cause (a dial timeout included).
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// ctxErr is ctx's error, marked ErrTimeout when its deadline passed.
func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
	return ctx.Err()
}

// drop forgets rc (if it is still the current connection) and closes it.
func (c *Client) drop(rc *rpc.Client) {
	c.mu.Lock()
	if c.rc == rc {
		c.rc = nil
	}
	c.mu.Unlock()
	rc.Close()
}

// Reset closes the current connection, if any, so that the next call
// redials. Calls waiting on it fail at once. The pool uses it when a peer
// stops answering.
func (c *Client) Reset() {
	c.mu.Lock()
	rc := c.rc
	c.rc = nil
	c.mu.Unlock()
	if rc != nil {
		rc.Close()
	}
}

// NotSent reports whether err means the call never reached the peer (it
// could not be dialled, or the client was closed): the peer did nothing,
// so the caller may do the work another way without doing it twice.
func NotSent(err error) bool {
	var de *dialError
	return errors.As(err, &de) || errors.Is(err, ErrClientClosed)
}

// IsTransport reports whether err is a failure to reach the peer or to talk
// to it (dial error, broken or closed connection, closed client), as opposed
// to an error that the peer's method returned (rpc.ServerError) or a
// timeout. The pool retries transport errors on another node; a call that
// broke after it was sent may then run twice.
func IsTransport(err error) bool {
	if err == nil {
		return false
	}
	var se rpc.ServerError
	if errors.As(err, &se) {
		return false
	}
	var de *dialError
	if errors.As(err, &de) || errors.Is(err, ErrClientClosed) {
		return true // nothing was sent
	}
	if errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return errors.Is(err, rpc.ErrShutdown) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.As(err, &ne) || isGobStreamError(err)
}

// isGobStreamError matches the errors net/rpc's client returns when the
// stream itself is broken (it does not wrap them).
func isGobStreamError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "gob: ") || strings.Contains(s, "reading body")
}

// IsNoSuchMethod reports whether the peer answered that it has no such
// service or method, e.g. a 1.0.5 message node asked for SavePrivatesEach.
func IsNoSuchMethod(err error) bool {
	var se rpc.ServerError
	if !errors.As(err, &se) {
		return false
	}
	s := string(se)
	return strings.HasPrefix(s, "rpc: can't find method ") ||
		strings.HasPrefix(s, "rpc: can't find service ")
}
