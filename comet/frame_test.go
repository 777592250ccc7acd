package comet

import (
	"encoding/json"
	"gopush/api"
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
	if err := json.Unmarshal(api.AppendMessage(nil, out, 1, 0, true), &v); err != nil {
		t.Fatalf("old form is not JSON: %v", err)
	}
}
