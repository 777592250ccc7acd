package bench

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
)

func TestReadTCPFrame(t *testing.T) {
	msg := `{"msg":{"t":1700000000123456789,"s":42},"mid":17000000001234567,"gid":0}`
	stream := "+h\r\n" + "$" + strconv.Itoa(len(msg)) + "\r\n" + msg + "\r\n" + "-n\r\n"
	r := bufio.NewReaderSize(strings.NewReader(stream), 16) // smaller than the message
	kind, _, err := ReadTCPFrame(r, nil)
	if err != nil || kind != FrameHeartbeat {
		t.Fatalf("first frame: kind %d err %v, want heartbeat", kind, err)
	}
	kind, body, err := ReadTCPFrame(r, nil)
	if err != nil || kind != FrameMessage || string(body) != msg {
		t.Fatalf("second frame: kind %d body %q err %v", kind, body, err)
	}
	p, err := ParseDelivery(body)
	if err != nil || p.T != 1700000000123456789 || p.S != 42 {
		t.Fatalf("payload %+v err %v", p, err)
	}
	kind, body, err = ReadTCPFrame(r, nil)
	if err != nil || kind != FrameError || string(body) != "n" {
		t.Fatalf("third frame: kind %d body %q err %v, want error n", kind, body, err)
	}
	if _, _, err := ReadTCPFrame(r, nil); err == nil {
		t.Fatal("read past the end: want an error")
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

func TestParseDeliveryBothForms(t *testing.T) {
	pl := AppendPayload(nil, Payload{T: 123456789, S: 7})
	if string(pl) != `{"t":123456789,"s":7}` {
		t.Fatalf("payload %s", pl)
	}
	forms := []string{
		`{"msg":` + string(pl) + `,"mid":1,"gid":0}`,
		`{"msg":"{\"t\":123456789,\"s\":7}","mid":1,"gid":0}`, // old form: msg is a string
		`{"gid":0,"mid":1,"msg":{"s":7,"t":123456789}}`,       // any key order
	}
	for _, f := range forms {
		p, err := ParseDelivery([]byte(f))
		if err != nil || p.T != 123456789 || p.S != 7 {
			t.Errorf("%s: %+v %v", f, p, err)
		}
	}
	for _, bad := range []string{`{"msg":{"x":1},"mid":1}`, `{"msg":{"t":"a","s":1}}`, ``} {
		if _, err := ParseDelivery([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestSubRequest(t *testing.T) {
	got := string(SubRequest("Terry-Mao", 30, "", "1.0"))
	want := "*5\r\n$3\r\nsub\r\n$9\r\nTerry-Mao\r\n$2\r\n30\r\n$0\r\n\r\n$3\r\n1.0\r\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestParseStatCPU(t *testing.T) {
	// Fields after the name: state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime ...
	stat := "1234 (odd) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 5 0 12345"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 3.8 {
		t.Errorf("got %v %v, want 3.8 s", got, err)
	}
	if _, err := parseStatCPU([]byte("1234 (x) S 1")); err == nil {
		t.Error("short stat: want an error")
	}
}
