package bench

import (
	"bytes"
	"fmt"
	"strconv"
)

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
