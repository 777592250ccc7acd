package bench

import (
	"testing"
)

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
