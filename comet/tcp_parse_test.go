package comet

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func parse(s string) (subRequest, error) {
	return readSubRequest(bufio.NewReaderSize(strings.NewReader(s), tcpReadBuffer))
}

func TestReadSubRequest(t *testing.T) {
	req, err := parse("*4\r\n$3\r\nsub\r\n$9\r\nTerry-Mao\r\n$2\r\n30\r\n$5\r\n1.0.4\r\n")
	if err != nil {
		t.Fatal(err)
	}
	// The 4th argument is the token; no version means the old form.
	if req.key != "Terry-Mao" || req.heartbeat != 30*time.Second || req.token != "1.0.4" || req.version != "" {
		t.Fatalf("got %+v", req)
	}
	req, err = parse("*5\r\n$3\r\nsub\r\n$1\r\nk\r\n$3\r\n120\r\n$0\r\n\r\n$3\r\n1.1\r\n")
	if err != nil || req.token != "" || req.version != "1.1" || req.heartbeat != 120*time.Second {
		t.Fatalf("got %+v, %v", req, err)
	}
}

func TestReadSubRequestRefusesBadInput(t *testing.T) {
	long := strings.Repeat("k", maxKeyLen+1)
	cases := map[string]string{
		"garbage":          "hello world\r\n",
		"too many args":    "*9\r\n",
		"zero args":        "*0\r\n",
		"negative length":  "*3\r\n$-1\r\n",
		"huge length":      "*3\r\n$99999999999\r\n",
		"arg over the cap": "*3\r\n$1025\r\n",
		"leading zeros":    "*3\r\n$00000000000000003\r\n",
		"LF only":          "*3\n",
		"CR then junk":     "*3\rX",
		"no digits":        "*\r\n",
		"bad arg end":      "*3\r\n$3\r\nsubXY",
		"not sub":          "*3\r\n$3\r\npub\r\n$1\r\nk\r\n$2\r\n30\r\n",
		"too few args":     "*2\r\n$3\r\nsub\r\n$1\r\nk\r\n",
		"empty key":        "*3\r\n$3\r\nsub\r\n$0\r\n\r\n$2\r\n30\r\n",
		"long key":         "*3\r\n$3\r\nsub\r\n$65\r\n" + long + "\r\n$2\r\n30\r\n",
		"heartbeat < 30":   "*3\r\n$3\r\nsub\r\n$1\r\nk\r\n$2\r\n29\r\n",
		"heartbeat NaN":    "*3\r\n$3\r\nsub\r\n$1\r\nk\r\n$2\r\nab\r\n",
		"heartbeat huge":   "*3\r\n$3\r\nsub\r\n$1\r\nk\r\n$6\r\n999999\r\n",
	}
	for name, in := range cases {
		if _, err := parse(in); !errors.Is(err, errFraming) {
			t.Errorf("%s: got %v, want a framing error", name, err)
		}
	}
	// A request cut short is a read error (no reply, just closed).
	if _, err := parse("*3\r\n$3\r\nsu"); !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		t.Errorf("truncated request: got %v", err)
	}
}

// FuzzReadSubRequest: whatever a client sends, the parser neither panics
// nor accepts a request outside the limits.
func FuzzReadSubRequest(f *testing.F) {
	f.Add([]byte("*4\r\n$3\r\nsub\r\n$9\r\nTerry-Mao\r\n$2\r\n30\r\n$5\r\n1.0.4\r\n"))
	f.Add([]byte("*9\r\n"))
	f.Add([]byte("*3\r\n$-1\r\n"))
	f.Add([]byte("*3\r\n$3\r\nsub\r\n$1\r\nk\r\n$2\r\n30\r\nh"))
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := readSubRequest(bufio.NewReaderSize(strings.NewReader(string(in)), tcpReadBuffer))
		if err != nil {
			return
		}
		if req.key == "" || len(req.key) > maxKeyLen || req.heartbeat < minHeartbeat*time.Second ||
			req.heartbeat > maxHeartbeat*time.Second || len(req.token) > maxArgLen || len(req.version) > maxArgLen {
			t.Fatalf("accepted %+v from %q", req, in)
		}
	})
}
