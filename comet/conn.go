package comet

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"gopush/api"
	"gopush/internal/connlimit"
)

// proto is the client protocol of a connection.
type proto uint8

const (
	protoTCP  proto = iota // docs/protocol.md §2.1
	protoWS                // docs/protocol.md §2.2
	protoSSE               // docs/protocol.md §2.5
	numProtos              // the number of protocols
)

// String names the protocol in logs, stats and metrics.
func (p proto) String() string {
	switch p {
	case protoWS:
		return "websocket"
	case protoSSE:
		return "sse"
	}
	return "tcp"
}

// protoName names a connection's protocol for logs and metrics, telling
// the TLS listeners apart: "tcp", "tcp+tls", "ws", "wss", "sse" or
// "sse+tls".
func (c *conn) protoName() string {
	switch {
	case c.proto == protoWS && c.tls:
		return "wss"
	case c.proto == protoWS:
		return "ws"
	case c.proto == protoSSE && c.tls:
		return "sse+tls"
	case c.proto == protoSSE:
		return "sse"
	case c.tls:
		return "tcp+tls"
	}
	return "tcp"
}

// conn is one subscriber connection after (or during) its handshake.
//
// Its reader goroutine (tcp.go, websocket.go, sse.go) owns it: it reads heartbeats,
// and when it stops it closes the connection and removes it from its channel.
// Everything sent to the client goes through send or sendMsg. When nothing
// is waiting to be written, a message frame is written at once by the
// goroutine that pushes it, without blocking (writeInline): a push or a
// broadcast needs no other goroutine for a client that keeps up. Otherwise
// (and for whatever a non-blocking write leaves over) it goes into a
// bounded queue that a writer goroutine drains; the writer exists only
// while the queue is not empty, so an idle connection costs one goroutine.
// When the queue is full the client is too slow: the connection is closed
// rather than letting it hold up anyone else.
type conn struct {
	nc      net.Conn
	raw     syscall.RawConn // nc's socket for writeInline; nil over TLS and HTTP/2 streams
	id      uint64          // accept order, spreads connections over connSet shards
	proto   proto
	tls     bool   // nc is a *tls.Conn (tcp.tls.bind, websocket.tls.bind)
	key     string // set once subscribed
	oldForm bool   // the client wants the old message form (empty version)
	// The connection's three deadlines, each for one job (set before the
	// connection is in a channel, read-only after):
	handshake    time.Duration // channel.handshake.timeout: the subscribe request must arrive within it
	readTimeout  time.Duration // once subscribed: heartbeat + heartbeatGrace of silence closes it
	writeTimeout time.Duration // a batch of frames not written within it closes the connection
	maxQueue     int
	comet        *Comet
	subscribed   bool    // true once added to its channel (written by the reader only)
	rbuf         [1]byte // the reader's buffer for heartbeats

	mu      sync.Mutex
	queue   [][]byte // frames waiting for the writer; at most maxQueue
	msgs    int      // how many of queue are messages (the rest are replies)
	spare   [][]byte // the writer's previous batch, reused
	writing bool     // a writer goroutine is running
	closed  bool
	// holding is true while an SSE connection has not sent its response
	// header yet (sse.go): frames wait in queue without a writer, and
	// messages wait in held with their mids, so that the stored messages
	// fetched for Last-Event-ID can go first and duplicates be dropped.
	holding bool
	held    []heldMsg
	// floor: private messages with a mid at or below it were sent from the
	// store when the SSE stream started, and are not sent again when a
	// push that stored one before the read delivers it only now.
	floor int64
}

// heldMsg is a message queued to a holding connection.
type heldMsg struct {
	mid   int64
	gid   int64
	frame []byte
}

func newConn(c *Comet, nc net.Conn, p proto) *conn {
	_, isTLS := nc.(*tls.Conn)
	var raw syscall.RawConn
	if tc, ok := connlimit.Raw(nc).(*net.TCPConn); ok {
		raw, _ = tc.SyscallConn()
	}
	return &conn{
		nc:       nc,
		raw:      raw,
		id:       c.connIDs.Add(1),
		proto:    p,
		tls:      isTLS,
		comet:    c,
		maxQueue: c.cfg.Channel.Msgbuf.Num,
		// Until subscribe sets the heartbeat's deadlines, nothing may take
		// longer than the handshake.
		handshake:    c.cfg.Channel.Handshake.Timeout.D(),
		readTimeout:  c.cfg.Channel.Handshake.Timeout.D(),
		writeTimeout: c.cfg.Channel.Handshake.Timeout.D(),
	}
}

// sendMessage queues m in the form and protocol the connection wants, as
// sendMsg does. The frame is built by m (once per form and protocol); like
// m.frame it must not be called for one message from several goroutines at
// once.
func (c *conn) sendMessage(m *message) bool {
	f := m.frame(c.proto, c.oldForm)
	if c.proto != protoSSE {
		return c.sendMsg(f)
	}
	c.mu.Lock()
	if m.gid == api.PrivateGroupId && m.mid <= c.floor {
		closed := c.closed // a duplicate of a resumed message: not sent again
		c.mu.Unlock()
		return !closed
	}
	if !c.holding {
		c.mu.Unlock()
		return c.sendMsg(f)
	}
	if c.closed {
		c.mu.Unlock()
		c.comet.stats.msgsFailed.Add(1)
		return false
	}
	if len(c.held) >= c.maxQueue {
		c.mu.Unlock()
		c.closeSlow(true)
		return false
	}
	c.held = append(c.held, heldMsg{mid: m.mid, gid: m.gid, frame: f})
	c.mu.Unlock()
	return true
}

// closeSlow closes a connection whose queue is full; msg tells whether
// what did not fit was a message.
func (c *conn) closeSlow(msg bool) {
	if msg {
		c.comet.stats.msgsFailed.Add(1)
	}
	c.comet.stats.slowClosed.Add(1)
	c.comet.log.Debug("closing a slow connection: its send queue is full", "key", c.key, "proto", c.protoName(), "addr", c.nc.RemoteAddr())
	c.close()
}

// send queues one reply frame (+h, a pong). The frame is shared with other
// connections and must not be modified. It returns false if the connection
// is closed, or was closed now because its queue is full.
//
// Replies are always written by the writer goroutine, never inline: they
// are sent from the connection's reader, whose stack must stay minimal
// while it waits for the next heartbeat (see serveTCP), and the write
// path would grow it.
func (c *conn) send(frame []byte) bool { return c.enqueue(frame, false) }

// sendMsg queues one message frame, as send does, and counts it in the
// message stats (written, or failed when the connection ends first).
func (c *conn) sendMsg(frame []byte) bool { return c.enqueue(frame, true) }

func (c *conn) enqueue(frame []byte, msg bool) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		if msg {
			c.comet.stats.msgsFailed.Add(1)
		}
		return false
	}
	if msg && !c.writing && !c.holding && c.raw != nil {
		// Nothing waits and no writer runs (so the queue is empty): write
		// now. writing keeps others queueing behind this frame meanwhile.
		c.writing = true
		c.mu.Unlock()
		c.writeInline(frame, msg)
		return true
	}
	if len(c.queue) >= c.maxQueue {
		c.mu.Unlock()
		c.closeSlow(msg)
		return false
	}
	c.queue = append(c.queue, frame)
	c.comet.stats.queued.Add(1)
	if msg {
		c.msgs++
	}
	start := !c.writing && !c.holding // a holding connection starts its writer in startSSE
	c.writing = c.writing || start
	c.mu.Unlock()
	if start {
		// The reader goroutine of this connection is still running (it
		// marks the connection closed before it ends), so the daemon's
		// WaitGroup is above zero here.
		c.comet.wg.Add(1)
		go c.writeLoop()
	}
	return true
}

// writeInline writes frame on the calling goroutine with one non-blocking
// write. The caller has set c.writing, with nothing queued. Whatever the
// socket does not take at once (its send buffer is full: a slow client, or
// one that has not read yet) is put at the head of the queue for a writer
// goroutine, which waits for the socket under the write timeout; so the
// caller, a push fanning out to many connections, never waits for one.
func (c *conn) writeInline(frame []byte, msg bool) {
	w := inlineWrites.Get().(*inlineWrite)
	w.frame, w.n, w.err, w.called = frame, 0, nil, false
	_ = c.raw.Write(w.fn) // an error without a call: see below
	n, werr, called := w.n, w.err, w.called
	w.frame = nil
	inlineWrites.Put(w)
	st := c.comet.stats
	if n > 0 {
		st.bytesWritten.Add(int64(n))
	}
	if called && werr != nil && werr != syscall.EAGAIN {
		// The client is gone (EPIPE, ECONNRESET...).
		if msg {
			st.msgsFailed.Add(1)
		}
		c.mu.Lock()
		c.writing = false
		c.mu.Unlock()
		c.close()
		return
	}
	c.mu.Lock()
	if n == len(frame) {
		st.framesWritten.Add(1)
		if msg {
			st.msgsWritten.Add(1)
		}
		start := len(c.queue) > 0 && !c.closed // queued behind this frame meanwhile
		c.writing = start
		c.mu.Unlock()
		if start {
			c.comet.wg.Add(1)
			go c.writeLoop()
		}
		return
	}
	// Not (all) written: the socket is full, or (no call) its write
	// deadline from an earlier batch has passed or it is closing. The
	// writer sorts it out, with a fresh deadline.
	if c.closed {
		c.writing = false
		c.mu.Unlock()
		if msg {
			st.msgsFailed.Add(1)
		}
		return
	}
	if len(c.queue) >= c.maxQueue {
		c.writing = false
		c.mu.Unlock()
		c.closeSlow(msg)
		return
	}
	c.queue = append(c.queue, nil)
	copy(c.queue[1:], c.queue)
	c.queue[0] = frame[n:]
	st.queued.Add(1)
	if msg {
		c.msgs++
	}
	c.mu.Unlock()
	c.comet.wg.Add(1)
	go c.writeLoop()
}

// inlineWrite is one non-blocking write through syscall.RawConn; fn is
// its do method, bound once so that a write allocates nothing.
type inlineWrite struct {
	frame  []byte
	n      int
	err    error
	called bool
	fn     func(fd uintptr) bool
}

func (w *inlineWrite) do(fd uintptr) bool {
	w.called = true
	for w.n < len(w.frame) {
		m, err := syscall.Write(int(fd), w.frame[w.n:])
		if m > 0 {
			w.n += m
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil || m <= 0 {
			w.err = err
			break
		}
	}
	return true // never wait for the socket
}

var inlineWrites = sync.Pool{New: func() any {
	w := &inlineWrite{}
	w.fn = w.do
	return w
}}

// writeLoop writes queued frames until the queue is empty, then ends.
func (c *conn) writeLoop() {
	defer c.comet.wg.Done()
	for {
		c.mu.Lock()
		if c.closed || len(c.queue) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch, msgs := c.queue, c.msgs
		c.queue, c.spare, c.msgs = c.spare, nil, 0
		c.mu.Unlock()

		n := len(batch)
		c.comet.stats.queued.Add(-int64(n))
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		bufs := net.Buffers(batch)
		written, err := bufs.WriteTo(connlimit.Raw(c.nc))
		clear(batch)
		c.comet.stats.bytesWritten.Add(written)
		if err != nil {
			c.comet.stats.msgsFailed.Add(int64(msgs))
			c.close()
			return
		}
		c.comet.stats.framesWritten.Add(int64(n))
		c.comet.stats.msgsWritten.Add(int64(msgs))
		c.mu.Lock()
		if c.spare == nil {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
	}
}

// replyAndClose sends an error reply directly (the connection has no
// writer yet) and ends the connection gently: it shuts down its sending
// side and reads whatever the client still sends, for a short while, before
// the socket is closed. Closing at once with unread input would make the
// kernel reset the connection, and the client could lose the reply.
func (c *conn) replyAndClose(frame []byte) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.nc.Write(frame); err != nil {
		return
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = tc.CloseWrite() // close_notify
	}
	if tc := connlimit.TCPConn(c.nc); tc != nil {
		_ = tc.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.nc, lingerBytes))
}

// How long, and how many bytes, replyAndClose reads after an error reply.
const (
	lingerTime  = time.Second
	lingerBytes = 64 << 10
)

// close closes the socket (once) and drops whatever is still queued. The
// reader goroutine then notices and cleans up.
func (c *conn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.comet.stats.queued.Add(-int64(len(c.queue)))
	dropped := c.msgs + len(c.held)
	c.queue, c.spare, c.msgs, c.held = nil, nil, 0, nil
	c.mu.Unlock()
	c.comet.stats.msgsFailed.Add(int64(dropped))
	_ = c.nc.Close()
}

// isClosed reports whether close has been called.
func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// connSet tracks every open client connection (subscribed or not) so that
// Close can end them all, and so that each reader goroutine is counted in
// the daemon's WaitGroup. It is sharded to keep accept paths from
// contending on one lock.
type connSet struct {
	shards [connShards]connShard
}

const connShards = 64

type connShard struct {
	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
}

func (s *connSet) shard(c *conn) *connShard {
	return &s.shards[c.id%connShards]
}

// add registers c and counts its reader in wg. It returns false once
// closeAll has started; the caller must then close the socket itself.
func (s *connSet) add(c *conn, wg *sync.WaitGroup) bool {
	sh := s.shard(c)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.closed {
		return false
	}
	if sh.conns == nil {
		sh.conns = make(map[*conn]struct{})
	}
	sh.conns[c] = struct{}{}
	wg.Add(1)
	return true
}

func (s *connSet) remove(c *conn) {
	sh := s.shard(c)
	sh.mu.Lock()
	delete(sh.conns, c)
	sh.mu.Unlock()
}

// closeAll refuses new connections and closes every open one.
func (s *connSet) closeAll() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.closed = true
		list := make([]*conn, 0, len(sh.conns))
		for c := range sh.conns {
			list = append(list, c)
		}
		sh.mu.Unlock()
		for _, c := range list {
			c.close()
		}
	}
}
