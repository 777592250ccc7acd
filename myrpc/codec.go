package myrpc

import (
	"bufio"
	"encoding/gob"
	"io"
	"net"
	"net/rpc"
	"time"
)

// The gob codecs below speak exactly what net/rpc's own gob codecs speak
// (header, then body, each a gob value on one stream), so peers built with
// plain net/rpc — 1.0.5 nodes — understand them. They add what the standard
// ones lack: write deadlines on the client, and in-flight accounting on the
// server.

// clientCodec is net/rpc's client gob codec with a write deadline, so that a
// peer that stops reading cannot block a caller for ever.
type clientCodec struct {
	conn    net.Conn
	timeout time.Duration
	dec     *gob.Decoder
	enc     *gob.Encoder
	buf     *bufio.Writer
}

func newClientCodec(conn net.Conn, timeout time.Duration) *clientCodec {
	buf := bufio.NewWriter(conn)
	return &clientCodec{conn: conn, timeout: timeout, dec: gob.NewDecoder(conn), enc: gob.NewEncoder(buf), buf: buf}
}

func (c *clientCodec) WriteRequest(r *rpc.Request, body any) error {
	// net/rpc serialises WriteRequest calls.
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	if err := c.enc.Encode(r); err != nil {
		return err
	}
	if err := c.enc.Encode(body); err != nil {
		return err
	}
	return c.buf.Flush()
}

func (c *clientCodec) ReadResponseHeader(r *rpc.Response) error { return c.dec.Decode(r) }
func (c *clientCodec) ReadResponseBody(body any) error          { return c.dec.Decode(body) }
func (c *clientCodec) Close() error                             { return c.conn.Close() }

// serverCodec is net/rpc's server gob codec that tells its Server when a
// request starts and when its answer has been written, and stops reading
// requests once the Server is closing.
type serverCodec struct {
	srv     *Server
	conn    io.ReadWriteCloser
	dec     *gob.Decoder
	enc     *gob.Encoder
	buf     *bufio.Writer
	timeout time.Duration // write deadline, when conn is a net.Conn
	closed  bool          // set by Close, which net/rpc calls once
}

func newServerCodec(srv *Server, conn io.ReadWriteCloser) *serverCodec {
	buf := bufio.NewWriter(conn)
	return &serverCodec{srv: srv, conn: conn, dec: gob.NewDecoder(conn), enc: gob.NewEncoder(buf), buf: buf, timeout: serverWriteTimeout}
}

// serverWriteTimeout bounds one response write, so that a client that stops
// reading cannot hold a handler goroutine (and Close) for ever.
const serverWriteTimeout = 30 * time.Second

func (c *serverCodec) ReadRequestHeader(r *rpc.Request) error {
	if err := c.dec.Decode(r); err != nil {
		return err
	}
	// Every header read is answered by exactly one WriteResponse (net/rpc
	// answers bad requests too), which ends the request.
	if !c.srv.begin() {
		// Closing: this request will not run. Dropping the connection tells
		// the client so (it may retry elsewhere); net/rpc then waits for the
		// requests already running before it closes the codec.
		return errServerClosing
	}
	return nil
}

func (c *serverCodec) ReadRequestBody(body any) error { return c.dec.Decode(body) }

func (c *serverCodec) WriteResponse(r *rpc.Response, body any) error {
	return c.writeResponse(r, body, true)
}

// writeResponse writes one response; with flush false it stays in the
// buffer for the next response's flush (the caller knows one follows).
func (c *serverCodec) writeResponse(r *rpc.Response, body any, flush bool) (err error) {
	defer c.srv.end()
	if nc, ok := c.conn.(net.Conn); ok {
		if err := nc.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
			return err
		}
	}
	if err = c.enc.Encode(r); err != nil {
		if c.buf.Flush() == nil {
			// Like net/rpc: a gob error in the header should not happen;
			// close so the client does not wait for ever.
			c.conn.Close()
		}
		return err
	}
	if err = c.enc.Encode(body); err != nil {
		if c.buf.Flush() == nil {
			c.conn.Close()
		}
		return err
	}
	if !flush {
		return nil
	}
	return c.buf.Flush()
}

func (c *serverCodec) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.conn.Close()
}
