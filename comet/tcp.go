package comet

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"gopush/api"
	"gopush/internal/connlimit"
)

// tcpReadBuffer is the size of a connection's read buffer. The subscribe
// request is read through it and so are the heartbeats afterwards, so bytes
// that arrive in the same packet as the request are kept (docs/protocol.md
// §9.1).
const tcpReadBuffer = 128

// acceptTCP accepts connections on ln until it is closed.
func (c *Comet) acceptTCP(ln net.Listener) {
	defer c.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little and
			// go on; the daemon must not stop accepting for good.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			c.log.Warn("tcp accept failed", "addr", ln.Addr(), "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-c.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		if err := connlimit.RefusalOf(nc); err != nil {
			// Over the per-address limits: TCP clients are refused by
			// closing (the limiter logged and counted it).
			nc.Close()
			continue
		}
		cn := newConn(c, nc, protoTCP)
		if !c.conns.add(cn, &c.wg) {
			nc.Close()
			return
		}
		go c.serveTCP(cn)
	}
}

// setSockOpts applies [channel] sndbuf.size, rcvbuf.size and tcp.keepalive.
func (c *Comet) setSockOpts(nc net.Conn) {
	tc := connlimit.TCPConn(nc)
	if tc == nil {
		return
	}
	ch := &c.cfg.Channel
	_ = tc.SetKeepAlive(ch.TCP.Keepalive)
	if ch.Sndbuf.Size > 0 {
		_ = tc.SetWriteBuffer(ch.Sndbuf.Size)
	}
	if ch.Rcvbuf.Size > 0 {
		_ = tc.SetReadBuffer(ch.Rcvbuf.Size)
	}
}

// serveTCP runs the subscribe request of one TCP connection. On success it
// hands the connection to a new goroutine that reads heartbeats, and ends.
//
// Two goroutines rather than one because of memory: the handshake needs a
// deep stack (the ring's SHA-1 alone takes more than a minimal stack), and
// a goroutine's stack never shrinks back to the minimum while it is parked
// in a read. The heartbeat goroutine starts on a fresh minimal stack and
// stays shallow, so an idle connection costs about 2 KiB of stack instead
// of 4 or 8.
func (c *Comet) serveTCP(cn *conn) {
	c.stats.opened(cn)
	c.stats.tcpAccepted.Add(1)
	br := c.handshakeTCP(cn)
	if br == nil {
		c.finish(cn)
		return
	}
	go readHeartbeats(cn, br)
}

// handshakeTCP reads and answers the subscribe request. It returns the
// connection's reader, still holding whatever the client sent after the
// request, or nil when the connection must be closed.
func (c *Comet) handshakeTCP(cn *conn) *bufio.Reader {
	nc := cn.nc
	c.setSockOpts(nc)
	deadline := time.Now().Add(cn.handshake)
	if tc, ok := nc.(*tls.Conn); ok {
		// The TLS handshake and the subscribe request share the
		// handshake timeout, like a slow plain-text client.
		_ = nc.SetDeadline(deadline)
		if err := tc.Handshake(); err != nil {
			c.log.Debug("tls handshake failed", "addr", nc.RemoteAddr(), "err", err)
			return nil
		}
		_ = nc.SetWriteDeadline(time.Time{})
	}
	_ = nc.SetReadDeadline(deadline)
	br := bufio.NewReaderSize(nc, tcpReadBuffer)
	req, err := api.ReadSubscribe(br)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.stats.handshakeTimeouts.Add(1)
		}
		switch {
		case errors.Is(err, api.ErrTokenTooLong) && c.cfg.Channel.Auth:
			// With auth on, a token over the argument limit is a failed
			// token check (-a), refused before its bytes are read.
			c.stats.refused.Add(1)
			c.stats.refusedAuth.Add(1)
			cn.replyAndClose(replyAuth.tcp)
		case errors.Is(err, api.ErrFraming) || errors.Is(err, api.ErrSubParam):
			cn.replyAndClose(c.refuse().tcp)
		}
		c.log.Debug("tcp subscribe failed", "addr", nc.RemoteAddr(), "err", err)
		return nil
	}
	if refused := c.subscribe(cn, req); refused != nil {
		cn.replyAndClose(refused.tcp)
		return nil
	}
	return br
}

// readHeartbeats owns a subscribed TCP connection: it answers each "h"
// with "+h" until the client is silent for heartbeat + 5 s, sends anything
// else, or goes away, and then cleans the connection up. It first uses up
// what the handshake's reader still holds (bytes sent with the request,
// docs/protocol.md §9.1), then drops that reader and reads the socket directly, so an
// idle connection keeps no read buffer.
func readHeartbeats(cn *conn, br *bufio.Reader) {
	defer cn.comet.finish(cn)
	for {
		_ = cn.nc.SetReadDeadline(time.Now().Add(cn.readTimeout))
		var err error
		if br != nil && br.Buffered() > 0 {
			cn.rbuf[0], err = br.ReadByte()
		} else {
			br = nil
			_, err = cn.nc.Read(cn.rbuf[:])
		}
		if err != nil || cn.rbuf[0] != 'h' {
			return
		}
		cn.comet.stats.heartbeats.Add(1)
		cn.send(replyOK.tcp)
	}
}
