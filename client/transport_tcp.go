package client

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// tcpConn speaks comet's TCP protocol (SPEC §2.1).
type tcpConn struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
}

func dialTCP(ctx context.Context, cfg Config, addr string) (*tcpConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("comet %s: %w", addr, err)
	}
	t := &tcpConn{addr: addr, conn: conn, r: bufio.NewReader(conn)}
	if err := t.subscribe(ctx, cfg); err != nil {
		conn.Close()
		return nil, err
	}
	return t, nil
}

// subRequest is the subscribe request: sub, key, heartbeat seconds, token,
// version, as an array of bulk strings.
func subRequest(cfg Config) []byte {
	args := []string{"sub", cfg.Key, strconv.Itoa(int(cfg.Heartbeat / time.Second)), cfg.Token, cfg.Version}
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

func (t *tcpConn) subscribe(ctx context.Context, cfg Config) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(writeTimeout)
	}
	t.conn.SetDeadline(deadline)
	// Close the connection if ctx ends first, which unblocks the I/O below.
	stop := context.AfterFunc(ctx, func() { t.conn.Close() })
	defer stop()
	if _, err := t.conn.Write(subRequest(cfg)); err != nil {
		return fmt.Errorf("comet %s: subscribe: %w", t.addr, err)
	}
	m, err := t.read()
	if err != nil {
		return fmt.Errorf("comet %s: subscribe: %w", t.addr, err)
	}
	if m != nil {
		return fmt.Errorf("comet %s: subscribe: a message came before +h", t.addr)
	}
	t.conn.SetDeadline(time.Time{})
	return nil
}

func (t *tcpConn) next(timeout time.Duration) (*Message, error) {
	t.conn.SetReadDeadline(time.Now().Add(timeout))
	m, err := t.read()
	if err != nil {
		return nil, fmt.Errorf("comet %s: %w", t.addr, err)
	}
	return m, nil
}

// read reads one reply: +h (nil message), -x (*ServerError) or a bulk
// string holding a message.
func (t *tcpConn) read() (*Message, error) {
	line, err := t.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("reply line longer than %d bytes", t.r.Size())
	}
	if err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("malformed reply %q", line)
	}
	line = line[:len(line)-2]
	switch line[0] {
	case '+':
		if string(line) != "+h" {
			return nil, fmt.Errorf("unknown reply %q", line)
		}
		return nil, nil
	case '-':
		if len(line) != 2 {
			return nil, fmt.Errorf("unknown error reply %q", line)
		}
		return nil, &ServerError{Comet: t.addr, Code: line[1]}
	case '$':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n < 0 || n > maxFrame {
			return nil, fmt.Errorf("bad bulk length %q (at most %d)", line, maxFrame)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(t.r, buf); err != nil {
			return nil, fmt.Errorf("reading a message of %d bytes: %w", n, err)
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return nil, fmt.Errorf("message of %d bytes not followed by CRLF", n)
		}
		return decodeMessage(buf[:n])
	}
	return nil, fmt.Errorf("unknown reply %q", line)
}

func (t *tcpConn) heartbeat() error {
	t.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := t.conn.Write([]byte{'h'})
	return err
}

func (t *tcpConn) close() error { return t.conn.Close() }
