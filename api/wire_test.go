package api

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func parse(s string) (Subscribe, error) {
	return ReadSubscribe(bufio.NewReaderSize(strings.NewReader(s), 128))
}

func TestReadSubscribe(t *testing.T) {
	req, err := parse("*4\r\n$3\r\nsub\r\n$9\r\nTerry-Mao\r\n$2\r\n30\r\n$5\r\n1.0.4\r\n")
	if err != nil {
		t.Fatal(err)
	}
	// The 4th argument is the token; no version means the old form.
	if req.Key != "Terry-Mao" || req.Heartbeat != 30 || req.Token != "1.0.4" || req.Version != "" {
		t.Fatalf("got %+v", req)
	}
	req, err = parse("*5\r\n$3\r\nsub\r\n$1\r\nk\r\n$3\r\n120\r\n$0\r\n\r\n$3\r\n1.1\r\n")
	if err != nil || req.Token != "" || req.Version != "1.1" || req.Heartbeat != 120 {
		t.Fatalf("got %+v, %v", req, err)
	}
}

func TestReadSubscribeRefusesBadInput(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen+1)
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
		if _, err := parse(in); !errors.Is(err, ErrFraming) && !errors.Is(err, ErrSubParam) {
			t.Errorf("%s: got %v, want a framing or parameter error", name, err)
		}
	}
	// A request cut short is a read error (no reply, just closed).
	if _, err := parse("*3\r\n$3\r\nsu"); !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		t.Errorf("truncated request: got %v", err)
	}
}

// FuzzReadSubscribe: whatever a client sends, the parser neither panics
// nor accepts a request outside the limits.
func FuzzReadSubscribe(f *testing.F) {
	f.Add([]byte("*4\r\n$3\r\nsub\r\n$9\r\nTerry-Mao\r\n$2\r\n30\r\n$5\r\n1.0.4\r\n"))
	f.Add([]byte("*9\r\n"))
	f.Add([]byte("*3\r\n$-1\r\n"))
	f.Add([]byte("*3\r\n$3\r\nsub\r\n$1\r\nk\r\n$2\r\n30\r\nh"))
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := parse(string(in))
		if err != nil {
			return
		}
		if req.Key == "" || len(req.Key) > MaxKeyLen || req.Heartbeat < MinHeartbeat ||
			req.Heartbeat > MaxHeartbeat || len(req.Token) > MaxSubArgLen || len(req.Version) > MaxSubArgLen {
			t.Fatalf("accepted %+v from %q", req, in)
		}
	})
}

func TestWSFrameLengthEncodings(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536, 70000} {
		f := AppendWSText(nil, make([]byte, n))
		var hdr int
		switch {
		case n < 126:
			hdr = 2
			if int(f[1]) != n {
				t.Errorf("n=%d: length byte %d", n, f[1])
			}
		case n <= 0xffff:
			hdr = 4
			if f[1] != 126 || int(f[2])<<8|int(f[3]) != n {
				t.Errorf("n=%d: bad 16-bit length % x", n, f[:4])
			}
		default:
			hdr = 10
			if f[1] != 127 {
				t.Errorf("n=%d: bad 64-bit length marker", n)
			}
		}
		if f[0] != 0x81 || len(f) != hdr+n {
			t.Errorf("n=%d: frame of %d bytes starting % x", n, len(f), f[:2])
		}
	}
}

// Both message forms, byte for byte (docs/protocol.md §2.1), and back.
func TestMessageFormsRoundTrip(t *testing.T) {
	raw := []byte(`{"test":1}`)
	newForm := string(AppendMessage(nil, raw, 13996474938346192, 0, false))
	if want := `{"msg":{"test":1},"mid":13996474938346192,"gid":0}`; newForm != want {
		t.Fatalf("new form %s, want %s", newForm, want)
	}
	oldForm := string(AppendMessage(nil, raw, 13996474938346192, 0, true))
	if want := `{"msg":"{\"test\":1}","mid":13996474938346192,"gid":0}`; oldForm != want {
		t.Fatalf("old form %s, want %s", oldForm, want)
	}
	for i, body := range []string{newForm, oldForm} {
		m, err := DecodeMessage([]byte(body), i == 1)
		if err != nil || string(m.Msg) != `{"test":1}` || m.MsgId != 13996474938346192 || m.GroupId != 0 {
			t.Errorf("decode %s: %+v, %v", body, m, err)
		}
	}
	// A message that is itself a JSON string stays one in the new form.
	if m, err := DecodeMessage(AppendMessage(nil, []byte(`"text"`), 1, 0, false), false); err != nil || string(m.Msg) != `"text"` {
		t.Errorf("string message: %+v, %v", m, err)
	}
	if got := string(AppendBulk(nil, []byte("abc"))); got != "$3\r\nabc\r\n" {
		t.Errorf("bulk %q", got)
	}
}

// What a client reads is what comet writes, on TCP and WebSocket.
func TestReadFramesAsWritten(t *testing.T) {
	msg := AppendMessage(nil, []byte(`[1]`), 7, 1, false)
	var stream []byte
	stream = append(stream, ReplyOK...)
	stream = AppendBulk(stream, msg)
	stream = append(stream, ReplyNotOwner...)
	br := bufio.NewReader(strings.NewReader(string(stream)))
	var scratch []byte
	want := []struct {
		kind FrameKind
		body string
	}{{FrameOK, ""}, {FrameMessage, string(msg)}, {FrameError, "n"}}
	for i, w := range want {
		kind, body, err := ReadTCPFrame(br, scratch)
		if err != nil || kind != w.kind || string(body) != w.body {
			t.Fatalf("frame %d: %v %q %v, want %v %q", i, kind, body, err, w.kind, w.body)
		}
	}
	if _, _, err := ReadTCPFrame(br, scratch); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after the last frame: %v", err)
	}
	for _, bad := range []string{"$-1\r\n", "$9999999\r\n", "+x\r\n", "-pp\r\n", "?\r\n", "$3\r\nabcXY"} {
		if _, _, err := ReadTCPFrame(bufio.NewReader(strings.NewReader(bad)), nil); err == nil {
			t.Errorf("%q read as a frame", bad)
		}
	}
	if k, _ := ParseWSText([]byte(ReplyOK)); k != FrameOK {
		t.Error("+h over WebSocket not read as OK")
	}
	if k, b := ParseWSText([]byte(ReplyAuth)); k != FrameError || string(b) != "a" {
		t.Error("-a over WebSocket not read as an error")
	}
	if k, b := ParseWSText(msg); k != FrameMessage || string(b) != string(msg) {
		t.Error("a message over WebSocket not read as one")
	}
}

// A request built here is read back as the same request.
func TestSubscribeRoundTrip(t *testing.T) {
	s := Subscribe{Key: "Terry-Mao", Heartbeat: 60, Token: "t", Version: "1.1"}
	got, err := parse(string(s.AppendTCP(nil)))
	if err != nil || got != s {
		t.Fatalf("got %+v, %v", got, err)
	}
	q := s.Query()
	got, err = CheckSubscribe(q.Get("key"), q.Get("heartbeat"), q.Get("token"), q.Get("ver"))
	if err != nil || got != s {
		t.Fatalf("from the query: %+v, %v", got, err)
	}
}

func TestReadTCPFrameRefusesBrokenStreams(t *testing.T) {
	for _, s := range []string{
		"$abc\r\nxyz\r\n",  // length not a number
		"$-1\r\n",          // negative length
		"$99999999999\r\n", // absurd length
		"$3\r\nabcde\r\n",  // body longer than announced
		"+h\n",             // LF only
		"?what\r\n",        // unknown type
		"$5\r\nab",         // cut short
		"\r\n",             // empty line
	} {
		r := bufio.NewReaderSize(strings.NewReader(s), 64)
		if kind, body, err := ReadTCPFrame(r, nil); err == nil {
			t.Errorf("%q: got kind %d body %q, want an error", s, kind, body)
		}
	}
}

// The TCP request byte for byte (docs/protocol.md §2.1).
func TestSubscribeTCPBytes(t *testing.T) {
	got := string(Subscribe{Key: "Terry-Mao", Heartbeat: 30, Version: "1.0"}.AppendTCP(nil))
	want := "*5\r\n$3\r\nsub\r\n$9\r\nTerry-Mao\r\n$2\r\n30\r\n$0\r\n\r\n$3\r\n1.0\r\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
