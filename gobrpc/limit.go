package gobrpc

import (
	"errors"
	"fmt"
	"io"
)

// DefaultMaxMsg is the largest gob message read when Options.MaxMsg is 0:
// room for a 100 000-key PushPrivates (keys of up to 64 bytes) and more.
const DefaultMaxMsg = 32 << 20

// ErrTooLarge is returned (wrapped) when a peer announces a gob message
// larger than the limit. The connection is then closed without reading it.
var ErrTooLarge = errors.New("gobrpc: message larger than the limit")

// msgLimiter passes a gob stream through and fails as soon as a message's
// length prefix announces more than max bytes, before the gob decoder
// allocates a buffer of that size (it would: a 1.5 GB announcement costs
// 1.5 GB of memory, whatever follows).
//
// A gob stream is a sequence of messages, each an unsigned count followed
// by that many bytes. A count below 128 is one byte; a larger one is a
// byte holding the negated number of bytes that follow (1 to 8), then the
// count big-endian.
type msgLimiter struct {
	r   io.Reader
	max uint64

	left  uint64 // bytes of the current message still to pass
	need  int    // bytes of a length prefix still to read
	count uint64 // the length prefix read so far
	err   error
}

func newMsgLimiter(r io.Reader, max int) *msgLimiter {
	if max <= 0 {
		max = DefaultMaxMsg
	}
	return &msgLimiter{r: r, max: uint64(max)}
}

func (m *msgLimiter) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.r.Read(p)
	if ok, e := m.scan(p[:n]); e != nil {
		// Pass what came before the offending length prefix, never the
		// prefix itself (the decoder would allocate what it announces).
		m.err = e
		if ok > 0 {
			return ok, nil
		}
		return 0, e
	}
	return n, err
}

// scan follows the message framing over b. On an error it also returns
// how many bytes of b precede the length prefix that caused it.
func (m *msgLimiter) scan(b []byte) (int, error) {
	start := 0 // where the length prefix being read began in b
	for i := 0; i < len(b); {
		if m.left > 0 {
			k := uint64(len(b) - i)
			if k > m.left {
				k = m.left
			}
			m.left -= k
			i += int(k)
			continue
		}
		c := b[i]
		if m.need == 0 {
			start = i
			i++
			if c < 0x80 {
				m.left = uint64(c)
				continue
			}
			m.need = 256 - int(c)
			if m.need > 8 {
				return start, fmt.Errorf("%w: bad length prefix %#x", ErrTooLarge, c)
			}
			m.count = 0
			continue
		}
		i++
		m.count = m.count<<8 | uint64(c)
		m.need--
		if m.need == 0 {
			if m.count > m.max {
				return start, fmt.Errorf("%w: %d bytes announced, %d allowed", ErrTooLarge, m.count, m.max)
			}
			m.left = m.count
		}
	}
	return 0, nil
}
