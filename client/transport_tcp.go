package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"gopush/api"
)

// tcpConn speaks comet's TCP protocol (docs/protocol.md §2.1).
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
	if cfg.TLS != nil {
		tc := tls.Client(conn, tlsFor(cfg.TLS, addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("comet %s: tls: %w", addr, err)
		}
		conn = tc
	}
	t := &tcpConn{addr: addr, conn: conn, r: bufio.NewReader(conn)}
	if err := t.subscribe(ctx, cfg); err != nil {
		conn.Close()
		return nil, err
	}
	return t, nil
}

// subscription is the subscribe request of cfg.
func subscription(cfg Config) api.Subscribe {
	return api.Subscribe{Key: cfg.Key, Heartbeat: int(cfg.Heartbeat / time.Second), Token: cfg.Token, Version: cfg.Version}
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
	if _, err := t.conn.Write(subscription(cfg).AppendTCP(nil)); err != nil {
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
	kind, body, err := api.ReadTCPFrame(t.r, nil)
	if err != nil {
		return nil, err
	}
	switch kind {
	case api.FrameOK:
		return nil, nil
	case api.FrameError:
		return nil, &ServerError{Comet: t.addr, Code: body[0]}
	}
	return decodeMessage(body)
}

func (t *tcpConn) heartbeat() error {
	t.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := t.conn.Write([]byte{'h'})
	return err
}

func (t *tcpConn) close() error { return t.conn.Close() }
