package comet

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// streamConn lets an SSE response that net/http keeps (HTTP/2) be a conn's
// net.Conn: writes go to the response and are flushed at once, a read waits
// for the client to go away (or the read deadline, for heartbeats), and
// Close ends that wait. The handler that made it must call release before it
// returns: after that nothing touches the ResponseWriter.
type streamConn struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	ctx    context.Context // the request's: done when the client is gone
	remote net.Addr

	done      chan struct{} // closed by Close
	closeOnce sync.Once

	mu       sync.Mutex // guards w once the handler is in readSSE
	released bool

	dmu          sync.Mutex
	readDeadline time.Time
}

func newStreamConn(w http.ResponseWriter, r *http.Request) *streamConn {
	return &streamConn{
		w:      w,
		rc:     http.NewResponseController(w),
		ctx:    r.Context(),
		remote: streamAddr(r.RemoteAddr),
		done:   make(chan struct{}),
	}
}

var errReleased = errors.New("sse stream ended")

// Write writes p as part of the response body and flushes it.
func (s *streamConn) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return 0, errReleased
	}
	n, err := s.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	return n, err
}

// Read waits until the client goes away, Close is called or the read
// deadline passes; the client of a stream sends nothing.
func (s *streamConn) Read([]byte) (int, error) {
	s.dmu.Lock()
	d := s.readDeadline
	s.dmu.Unlock()
	var timeout <-chan time.Time
	if !d.IsZero() {
		t := time.NewTimer(time.Until(d))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-s.ctx.Done():
		return 0, io.EOF
	case <-s.done:
		return 0, net.ErrClosed
	case <-timeout:
		return 0, os.ErrDeadlineExceeded
	}
}

// Close ends the stream: a waiting Read returns, and the handler ends.
func (s *streamConn) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	return nil
}

// release waits for a write in progress and stops every later one; the
// handler calls it before it returns.
func (s *streamConn) release() {
	s.Close()
	s.mu.Lock()
	s.released = true
	s.mu.Unlock()
}

func (s *streamConn) LocalAddr() net.Addr  { return streamAddr("") }
func (s *streamConn) RemoteAddr() net.Addr { return s.remote }

func (s *streamConn) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *streamConn) SetReadDeadline(t time.Time) error {
	s.dmu.Lock()
	s.readDeadline = t
	s.dmu.Unlock()
	return nil
}

func (s *streamConn) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return errReleased
	}
	return s.rc.SetWriteDeadline(t)
}

// streamAddr is the client address net/http reported.
type streamAddr string

func (a streamAddr) Network() string { return "tcp" }
func (a streamAddr) String() string  { return string(a) }
