package comet

import (
	"encoding/json"
	"testing"
)

func TestMessageFramesExactBytes(t *testing.T) {
	body, err := compactJSON([]byte(`{ "test" : 1 }`))
	if err != nil {
		t.Fatal(err)
	}
	m := &message{msg: body, mid: 13996474938346192}
	newJSON := `{"msg":{"test":1},"mid":13996474938346192,"gid":0}`
	oldJSON := `{"msg":"{\"test\":1}","mid":13996474938346192,"gid":0}`
	cases := []struct {
		name  string
		p     proto
		old   bool
		wants string
	}{
		{"tcp new", protoTCP, false, "$50\r\n" + newJSON + "\r\n"},
		{"tcp old", protoTCP, true, "$54\r\n" + oldJSON + "\r\n"},
		{"ws new", protoWS, false, "\x81\x32" + newJSON},
		{"ws old", protoWS, true, "\x81\x36" + oldJSON},
	}
	for _, tc := range cases {
		if got := string(m.frame(tc.p, tc.old)); got != tc.wants {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.wants)
		}
	}
	// Built once: the same backing array every time.
	a, b := m.frame(protoTCP, false), m.frame(protoTCP, false)
	if &a[0] != &b[0] {
		t.Error("frame encoded twice for the same form and protocol")
	}
}

func TestWSFrameLengthEncodings(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536, 70000} {
		f := appendWSText(nil, make([]byte, n))
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

func TestCompactJSONRefusesNonJSON(t *testing.T) {
	for _, in := range []string{"", "{", "hello", `{"a":1}x`} {
		if _, err := compactJSON([]byte(in)); err == nil {
			t.Errorf("%q accepted as JSON", in)
		}
	}
	out, err := compactJSON([]byte(`[1, "a b", {"c": null}]`))
	if err != nil || string(out) != `[1,"a b",{"c":null}]` {
		t.Fatalf("got %s, %v", out, err)
	}
	var v any
	if err := json.Unmarshal((&message{msg: out, mid: 1}).body(true), &v); err != nil {
		t.Fatalf("old form is not JSON: %v", err)
	}
}
