package comet

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// Limits of the TCP subscribe request (SPEC §2.1). comet never allocates
// what a client claims before checking it against these.
const (
	maxArgs   = 5    // sub, key, heartbeat, token, version
	maxArgLen = 1024 // bytes in one argument
	// tcpReadBuffer is the size of a connection's read buffer. The request
	// is read through it and so are the heartbeats afterwards, so bytes that
	// arrive in the same packet as the request are kept (SPEC §9.1).
	tcpReadBuffer = 128
)

// errFraming is a request that breaks the framing of SPEC §2.1; the client
// gets -p.
var errFraming = errors.New("bad request framing")

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
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
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
	c.stats.tcpConns.Add(1)
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
	deadline := time.Now().Add(c.cfg.Channel.Handshake.Timeout.D())
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
	req, err := readSubRequest(br)
	if err != nil {
		if errors.Is(err, errFraming) {
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
// SPEC §9.1), then drops that reader and reads the socket directly, so an
// idle connection keeps no read buffer.
func readHeartbeats(cn *conn, br *bufio.Reader) {
	defer cn.comet.finish(cn)
	for {
		_ = cn.nc.SetReadDeadline(time.Now().Add(cn.timeout))
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

// readSubRequest reads "*<n>\r\n" and n bulk strings, and checks them as a
// subscribe request. It returns errFraming (wrapped) for anything that
// deserves -p, or the read error.
func readSubRequest(br *bufio.Reader) (subRequest, error) {
	n, err := readCount(br, '*', maxArgs)
	if err != nil {
		return subRequest{}, err
	}
	if n < 1 {
		return subRequest{}, errFraming
	}
	var args [maxArgs]string
	for i := 0; i < n; i++ {
		size, err := readCount(br, '$', maxArgLen)
		if err != nil {
			return subRequest{}, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return subRequest{}, err
		}
		if buf[size] != '\r' || buf[size+1] != '\n' {
			return subRequest{}, errFraming
		}
		args[i] = string(buf[:size])
	}
	if args[0] != "sub" || n < 3 {
		return subRequest{}, errFraming
	}
	req, ok := parseSub(args[1], args[2], args[3], args[4])
	if !ok {
		return subRequest{}, errFraming
	}
	return req, nil
}

// readCount reads a line "<prefix><decimal>\r\n" and returns the number,
// failing as soon as a byte is wrong or the number passes limit, so that a
// client cannot make comet wait for or allocate more than that.
func readCount(br *bufio.Reader, prefix byte, limit int) (int, error) {
	b, err := br.ReadByte()
	if err != nil {
		return 0, err
	}
	if b != prefix {
		return 0, errFraming
	}
	n, digits := 0, 0
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch {
		case b >= '0' && b <= '9':
			n = n*10 + int(b-'0')
			digits++
			if n > limit || digits > 6 {
				return 0, errFraming
			}
		case b == '\r' && digits > 0:
			b, err := br.ReadByte()
			if err != nil {
				return 0, err
			}
			if b != '\n' {
				return 0, errFraming
			}
			return n, nil
		default:
			return 0, errFraming
		}
	}
}
