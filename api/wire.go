package api

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
)

// The client protocol on comet (docs/protocol.md §2): the subscribe
// request, the one-line replies and the message frames, for TCP and
// WebSocket. comet, the Go client, the load tool and the tests all encode
// and parse them here.

// Limits of a subscribe request (§2.1). A reader never allocates what a
// client claims before checking it against these.
const (
	MaxSubArgs   = 5     // sub, key, heartbeat, token, version
	MaxSubArgLen = 1024  // bytes in one TCP argument
	MinHeartbeat = 30    // seconds
	MaxHeartbeat = 86400 // seconds
)

// MaxKeyLen is the longest key, in bytes, that gopush accepts anywhere: the
// width of the MySQL skey column (§7). comet refuses a longer key with -p,
// web with CodeParamErr, message with a parameter error.
const MaxKeyLen = 64

// The replies of §2.1, as sent on TCP. On WebSocket each is the payload of
// one text frame. An error reply is followed by the close of the connection.
const (
	ReplyOK       = "+h\r\n" // subscribed; also the answer to every heartbeat
	ReplyParam    = "-p\r\n" // parameter error
	ReplyAuth     = "-a\r\n" // token check failed
	ReplyChannel  = "-c\r\n" // channel refused (maxsubscriber reached)
	ReplyNotOwner = "-n\r\n" // the key belongs to another comet
)

// Heartbeat is what a subscribed client sends every heartbeat seconds: the
// single byte "h" on TCP, a text frame "h" on WebSocket.
const Heartbeat = "h"

// ErrFraming is a TCP subscribe request that breaks the framing of §2.1.
var ErrFraming = errors.New("bad subscribe request framing")

// ErrTokenTooLong is a TCP subscribe request whose token argument is
// longer than MaxSubArgLen; it wraps ErrFraming. A comet with auth on
// answers it -a (a failed token check), without reading the token.
var ErrTokenTooLong = fmt.Errorf("%w: token longer than %d bytes", ErrFraming, MaxSubArgLen)

// errArgTooLong is a bulk string length over its limit.
var errArgTooLong = fmt.Errorf("%w: argument too long", ErrFraming)

// ErrSubParam is a subscribe request whose values are wrong (empty or too
// long key, heartbeat not a number or out of range).
var ErrSubParam = errors.New("bad subscribe parameter")

// Subscribe is a subscribe request, from TCP arguments or a WebSocket query.
type Subscribe struct {
	Key       string
	Heartbeat int // seconds
	Token     string
	Version   string // empty: the client wants the old message form
}

// CheckSubscribe checks the values common to both protocols and returns the
// request, or an error wrapping ErrSubParam.
func CheckSubscribe(key, heartbeat, token, version string) (Subscribe, error) {
	if key == "" || len(key) > MaxKeyLen {
		return Subscribe{}, fmt.Errorf("%w: key of %d bytes (1 to %d)", ErrSubParam, len(key), MaxKeyLen)
	}
	hb, err := strconv.Atoi(heartbeat)
	if err != nil || hb < MinHeartbeat || hb > MaxHeartbeat {
		return Subscribe{}, fmt.Errorf("%w: heartbeat %q (%d to %d)", ErrSubParam, heartbeat, MinHeartbeat, MaxHeartbeat)
	}
	return Subscribe{Key: key, Heartbeat: hb, Token: token, Version: version}, nil
}

// AppendTCP appends the TCP form of s, with all five arguments.
func (s Subscribe) AppendTCP(b []byte) []byte {
	return AppendSubArgs(b, "sub", s.Key, strconv.Itoa(s.Heartbeat), s.Token, s.Version)
}

// Query returns the WebSocket form of s: key, heartbeat, token, ver.
func (s Subscribe) Query() url.Values {
	q := url.Values{}
	q.Set("key", s.Key)
	q.Set("heartbeat", strconv.Itoa(s.Heartbeat))
	q.Set("token", s.Token)
	q.Set("ver", s.Version)
	return q
}

// AppendSubArgs appends args as a TCP request: "*<n>\r\n" and n bulk
// strings. It writes any arguments, right or wrong.
func AppendSubArgs(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// ReadSubscribe reads a TCP subscribe request, "*<n>\r\n" and n bulk
// strings, and checks it. Errors wrap ErrFraming or ErrSubParam (both
// answered -p), or are the read error. br keeps whatever the client sent
// after the request (§9.1).
func ReadSubscribe(br *bufio.Reader) (Subscribe, error) {
	n, err := readCount(br, '*', MaxSubArgs)
	if err != nil {
		return Subscribe{}, err
	}
	if n < 1 {
		return Subscribe{}, ErrFraming
	}
	var args [MaxSubArgs]string
	for i := 0; i < n; i++ {
		size, err := readCount(br, '$', MaxSubArgLen)
		if err != nil {
			if i == 3 && errors.Is(err, errArgTooLong) {
				return Subscribe{}, ErrTokenTooLong
			}
			return Subscribe{}, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return Subscribe{}, err
		}
		if buf[size] != '\r' || buf[size+1] != '\n' {
			return Subscribe{}, ErrFraming
		}
		args[i] = string(buf[:size])
	}
	if args[0] != "sub" || n < 3 {
		return Subscribe{}, ErrFraming
	}
	return CheckSubscribe(args[1], args[2], args[3], args[4])
}

// readCount reads a line "<prefix><decimal>\r\n" and returns the number,
// failing as soon as a byte is wrong or the number passes limit, so that a
// client cannot make a reader wait for or allocate more than that.
func readCount(br *bufio.Reader, prefix byte, limit int) (int, error) {
	b, err := br.ReadByte()
	if err != nil {
		return 0, err
	}
	if b != prefix {
		return 0, ErrFraming
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
				return 0, errArgTooLong
			}
		case b == '\r' && digits > 0:
			b, err := br.ReadByte()
			if err != nil {
				return 0, err
			}
			if b != '\n' {
				return 0, ErrFraming
			}
			return n, nil
		default:
			return 0, ErrFraming
		}
	}
}

// AppendMessage appends the JSON of a pushed message (§2.1):
// {"msg":<raw>,"mid":N,"gid":G}, or in the old form, for clients that sent
// no version, {"msg":"<raw as a JSON string>","mid":N,"gid":G}. msg must be
// compact JSON.
func AppendMessage(b []byte, msg json.RawMessage, mid int64, gid uint, old bool) []byte {
	b = append(b, `{"msg":`...)
	if old {
		q, _ := json.Marshal(string(msg)) // a string always marshals
		b = append(b, q...)
	} else {
		b = append(b, msg...)
	}
	b = append(b, `,"mid":`...)
	b = strconv.AppendInt(b, mid, 10)
	b = append(b, `,"gid":`...)
	b = strconv.AppendUint(b, uint64(gid), 10)
	return append(b, '}')
}

// AppendBulk appends body as a TCP bulk string: "$<len>\r\n<body>\r\n".
func AppendBulk(b, body []byte) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, '\r', '\n')
	b = append(b, body...)
	return append(b, '\r', '\n')
}

// AppendWSText appends one final, unmasked WebSocket text frame holding
// payload, as a server sends it.
func AppendWSText(b, payload []byte) []byte {
	n := len(payload)
	b = append(b, 0x81) // FIN + text
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// FrameKind is what a client reads from comet.
type FrameKind int

const (
	FrameOK      FrameKind = iota // "+h": subscribed, or the answer to a heartbeat
	FrameError                    // "-p", "-a", "-c", "-n": comet refused and closes
	FrameMessage                  // a pushed message (JSON)
)

// MaxFrame bounds one message a client reads, so that a broken stream
// cannot make it allocate without limit.
const MaxFrame = 4 << 20

// ReadTCPFrame reads one reply or message from a comet TCP connection:
// "+h\r\n", "-x\r\n" or "$<len>\r\n<json>\r\n". For a message the JSON is
// returned in scratch (grown when too small), valid until the next call;
// for an error reply the code ("p", "n", ...).
func ReadTCPFrame(r *bufio.Reader, scratch []byte) (kind FrameKind, body []byte, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, nil, errors.New("reply line too long")
		}
		if err == io.EOF {
			return 0, nil, io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, nil, fmt.Errorf("malformed reply %q", line)
	}
	line = line[:len(line)-2]
	switch line[0] {
	case '+':
		if string(line) != "+h" {
			return 0, nil, fmt.Errorf("unknown reply %q", line)
		}
		return FrameOK, nil, nil
	case '-':
		if len(line) != 2 {
			return 0, nil, fmt.Errorf("unknown error reply %q", line)
		}
		return FrameError, append(scratch[:0], line[1]), nil
	case '$':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n < 0 || n > MaxFrame {
			return 0, nil, fmt.Errorf("bad bulk length %q (at most %d)", line, MaxFrame)
		}
		if cap(scratch) < n+2 {
			scratch = make([]byte, n+2)
		}
		buf := scratch[:n+2]
		if _, err := io.ReadFull(r, buf); err != nil {
			return 0, nil, fmt.Errorf("reading a message of %d bytes: %w", n, err)
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return 0, nil, fmt.Errorf("message of %d bytes not followed by CRLF", n)
		}
		return FrameMessage, buf[:n], nil
	}
	return 0, nil, fmt.Errorf("unknown reply %q", line)
}

// ParseWSText classifies the payload of a text frame from comet: "+h\r\n",
// "-x\r\n" (body is the code) or a message (body is the JSON).
func ParseWSText(p []byte) (kind FrameKind, body []byte) {
	if len(p) == 4 && p[2] == '\r' && p[3] == '\n' {
		switch p[0] {
		case '+':
			if p[1] == 'h' {
				return FrameOK, nil
			}
		case '-':
			return FrameError, p[1:2]
		}
	}
	return FrameMessage, p
}

// DecodeMessage parses a pushed message of the new form, or of the old
// form when old is set (what a client that sent no version gets). In the
// old form msg is a JSON string; Msg is then the JSON it holds. (The forms
// cannot be told apart by looking: a pushed message may itself be a JSON
// string.)
func DecodeMessage(body []byte, old bool) (Message, error) {
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		return Message{}, fmt.Errorf("message is not JSON: %w", err)
	}
	if old {
		var s string
		if err := json.Unmarshal(m.Msg, &s); err != nil {
			return Message{}, fmt.Errorf("old-form message: %w", err)
		}
		m.Msg = json.RawMessage(s)
	}
	return m, nil
}
