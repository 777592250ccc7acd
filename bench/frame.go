package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Frame kinds read from a comet connection (SPEC §2).
const (
	FrameHeartbeat = iota // "+h": subscribed, or the answer to a heartbeat
	FrameError            // "-p", "-a", "-c", "-n": comet refused and will close
	FrameMessage          // a pushed message (JSON)
)

// maxFrame bounds one pushed message so that a broken stream cannot make the
// reader allocate without limit.
const maxFrame = 1 << 20

// ReadTCPFrame reads one reply or message from a comet TCP connection
// (SPEC §2.1): "+h\r\n", "-x\r\n" or "$<len>\r\n<json>\r\n". For a message
// the JSON is returned in scratch (grown when too small) and stays valid until
// the next call; for an error reply the code ("p", "n", ...) is returned.
func ReadTCPFrame(r *bufio.Reader, scratch []byte) (kind int, body []byte, err error) {
	line, err := readLine(r)
	if err != nil {
		return 0, nil, err
	}
	if len(line) == 0 {
		return 0, nil, errors.New("empty line from comet")
	}
	switch line[0] {
	case '+':
		return FrameHeartbeat, nil, nil
	case '-':
		return FrameError, append(scratch[:0], line[1:]...), nil
	case '$':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n < 0 || n > maxFrame {
			return 0, nil, fmt.Errorf("bad bulk length %q", line)
		}
		if cap(scratch) < n+2 {
			scratch = make([]byte, n+2)
		}
		buf := scratch[:n+2]
		if _, err := io.ReadFull(r, buf); err != nil {
			return 0, nil, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return 0, nil, errors.New("bulk string not ended by CRLF")
		}
		return FrameMessage, buf[:n], nil
	}
	return 0, nil, fmt.Errorf("unexpected line %q", line)
}

// readLine returns one line without its CRLF. The slice is valid until the
// next read on r.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("line too long")
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("line not ended by CRLF: %q", line)
	}
	return line[:len(line)-2], nil
}

// SubRequest builds the TCP subscribe request of SPEC §2.1: sub, key,
// heartbeat seconds, token and version.
func SubRequest(key string, heartbeat int, token, version string) []byte {
	args := []string{"sub", key, strconv.Itoa(heartbeat), token, version}
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

// Payload is what the load tool pushes: the send time (Unix nanoseconds,
// taken when the push call starts) and a sequence number that names the
// push.
type Payload struct {
	T int64  // send time, Unix ns
	S uint64 // sequence number
}

// AppendPayload appends the payload JSON {"t":<ns>,"s":<seq>} to b.
func AppendPayload(b []byte, p Payload) []byte {
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, p.T, 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendUint(b, p.S, 10)
	return append(b, '}')
}

// ParseDelivery finds the payload inside a delivered message, in either form
// comet sends: {"msg":{"t":..,"s":..},"mid":..,"gid":0} or the old one where
// msg is a JSON string ({"msg":"{\"t\":..,\"s\":..}",...}). It does not
// allocate.
func ParseDelivery(msg []byte) (Payload, error) {
	t, ok1 := numberAfter(msg, `"t`)
	s, ok2 := numberAfter(msg, `"s`)
	if !ok1 || !ok2 || t < 0 || s < 0 {
		return Payload{}, fmt.Errorf("no load-tool payload in %q", truncate(msg, 80))
	}
	return Payload{T: t, S: uint64(s)}, nil
}

// numberAfter finds name (with its opening quote), skips the closing quote
// (plain or escaped) and the colon, and parses the integer that follows.
func numberAfter(b []byte, name string) (int64, bool) {
	for {
		i := bytes.Index(b, []byte(name))
		if i < 0 {
			return 0, false
		}
		b = b[i+len(name):]
		j := 0
		if j < len(b) && b[j] == '\\' {
			j++
		}
		if j >= len(b) || b[j] != '"' {
			continue
		}
		j++
		if j >= len(b) || b[j] != ':' {
			continue
		}
		j++
		var n int64
		start := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			n = n*10 + int64(b[j]-'0')
			j++
		}
		if j == start {
			return 0, false
		}
		return n, true
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
