package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// httpConn is one keep-alive HTTP/1.1 connection that sends a request and
// reads its answer, nothing more. The pushers use it instead of net/http's
// client, which spends two goroutines, a channel round trip and several
// allocations per call: on a 2-core machine shared with the daemons under
// test, the load tool's own CPU comes out of what the daemons can use, as
// with wrk. It is not safe for concurrent use; each pusher owns one.
type httpConn struct {
	addr    string
	timeout time.Duration
	nc      net.Conn
	br      *bufio.Reader
	req     []byte
	body    []byte
}

func newHTTPConn(addr string, timeout time.Duration) *httpConn {
	return &httpConn{addr: addr, timeout: timeout}
}

// Post sends POST target with body and returns the status and the answer's
// body (valid until the next call). A request that fails on a reused
// connection before any answer byte arrived is retried once on a new one.
func (c *httpConn) Post(target string, body []byte) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		reused := c.nc != nil
		status, resp, err := c.roundTrip(target, body)
		if err == nil {
			return status, resp, nil
		}
		c.Close()
		if !reused || attempt > 0 || !errors.Is(err, errBeforeAnswer) {
			return 0, nil, err
		}
	}
}

var errBeforeAnswer = errors.New("connection closed before the answer")

func (c *httpConn) roundTrip(target string, body []byte) (int, []byte, error) {
	if c.nc == nil {
		nc, err := net.DialTimeout("tcp", c.addr, c.timeout)
		if err != nil {
			return 0, nil, err
		}
		c.nc = nc
		c.br = bufio.NewReaderSize(nc, 4096)
	}
	c.nc.SetDeadline(time.Now().Add(c.timeout))
	c.req = append(c.req[:0], "POST "...)
	c.req = append(c.req, target...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.addr...)
	c.req = append(c.req, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, body...)
	if _, err := c.nc.Write(c.req); err != nil {
		return 0, nil, fmt.Errorf("%w: %v", errBeforeAnswer, err)
	}
	return c.readResponse()
}

func (c *httpConn) readResponse() (int, []byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, errBeforeAnswer
		}
		return 0, nil, err
	}
	// HTTP/1.1 200 OK
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("bad status line %q", truncate(line, 60))
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", truncate(line, 60))
	}
	length, chunked, closeAfter := -1, false, false
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, val, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.Atoi(string(val))
			if err != nil || length < 0 || length > 16<<20 {
				return 0, nil, fmt.Errorf("bad Content-Length %q", val)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(val, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closeAfter = bytes.EqualFold(val, []byte("close"))
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		for {
			szLine, err := c.br.ReadSlice('\n')
			if err != nil {
				return 0, nil, err
			}
			sz, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.SplitN(szLine, []byte(";"), 2)[0])), 16, 32)
			if err != nil || sz < 0 || len(c.body)+int(sz) > 16<<20 {
				return 0, nil, fmt.Errorf("bad chunk size %q", szLine)
			}
			if sz == 0 {
				// trailers, then an empty line
				for {
					t, err := c.br.ReadSlice('\n')
					if err != nil {
						return 0, nil, err
					}
					if len(bytes.TrimRight(t, "\r\n")) == 0 {
						break
					}
				}
				break
			}
			start := len(c.body)
			c.body = append(c.body, make([]byte, sz+2)...)
			if _, err := io.ReadFull(c.br, c.body[start:]); err != nil {
				return 0, nil, err
			}
			c.body = c.body[:len(c.body)-2]
		}
	case length >= 0:
		if cap(c.body) < length {
			c.body = make([]byte, length)
		}
		c.body = c.body[:length]
		if _, err := io.ReadFull(c.br, c.body); err != nil {
			return 0, nil, err
		}
	default:
		// No length: the body runs to the end of the connection.
		b, err := io.ReadAll(io.LimitReader(c.br, 16<<20))
		if err != nil {
			return 0, nil, err
		}
		c.body = b
		closeAfter = true
	}
	if closeAfter {
		c.Close()
	}
	return status, c.body, nil
}

// Close closes the connection; the next Post dials again.
func (c *httpConn) Close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}
