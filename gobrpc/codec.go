package gobrpc

import (
	"bufio"
	"encoding/gob"
	"net"
	"net/rpc"
	"time"
)

// The gob codecs below speak exactly what net/rpc's own gob codecs speak
// (header, then body, each a gob value on one stream), so peers built with
// plain net/rpc — 1.0.5 nodes — understand them. They add what the standard
// ones lack: write deadlines, and on the server responses that share one
// flush.

// clientCodec is net/rpc's client gob codec with a write deadline, so that a
// peer that stops reading cannot block a caller for ever.
type clientCodec struct {
	conn    net.Conn
	timeout time.Duration
	dec     *gob.Decoder
	enc     *gob.Encoder
	buf     *bufio.Writer
}

func newClientCodec(conn net.Conn, timeout time.Duration, maxMsg int) *clientCodec {
	buf := bufio.NewWriter(conn)
	return &clientCodec{conn: conn, timeout: timeout, dec: gob.NewDecoder(newMsgLimiter(conn, maxMsg)), enc: gob.NewEncoder(buf), buf: buf}
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

// serverCodec reads requests and writes responses of one server
// connection in net/rpc's gob encoding: each message is a header (an
// rpc.Request or rpc.Response) followed by a body, each one gob value on
// the connection's single gob stream. Server drives it: one reader calls
// readRequestHeader and readRequestBody; responses are written under the
// connection's sending lock.
type serverCodec struct {
	conn    net.Conn
	dec     *gob.Decoder
	enc     *gob.Encoder
	buf     *bufio.Writer
	timeout time.Duration // write deadline of one response
}

func newServerCodec(conn net.Conn, maxMsg int) *serverCodec {
	buf := bufio.NewWriter(conn)
	return &serverCodec{conn: conn, dec: gob.NewDecoder(newMsgLimiter(conn, maxMsg)), enc: gob.NewEncoder(buf), buf: buf, timeout: serverWriteTimeout}
}

// serverWriteTimeout bounds one response write, so that a client that stops
// reading cannot hold a worker (and Close) for ever.
const serverWriteTimeout = 30 * time.Second

func (c *serverCodec) readRequestHeader(r *rpc.Request) error { return c.dec.Decode(r) }

// readRequestBody decodes the body that follows a header; with body nil it
// reads the body and discards it.
func (c *serverCodec) readRequestBody(body any) error { return c.dec.Decode(body) }

// writeResponse writes one response; with flush false it stays in the
// buffer for the next response's flush (the caller knows one follows).
func (c *serverCodec) writeResponse(r *rpc.Response, body any, flush bool) (err error) {
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	if err = c.enc.Encode(r); err != nil {
		if c.buf.Flush() == nil {
			// A gob error in the header should not happen; close so the
			// client does not wait for ever.
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

func (c *serverCodec) close() error { return c.conn.Close() }
