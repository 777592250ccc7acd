package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"gopush/conf"
)

func TestWarnIfExposed(t *testing.T) {
	for _, tc := range []struct {
		binds []string
		warn  bool
	}{
		{[]string{"localhost:8091"}, false},
		{[]string{"127.0.0.1:8091", "[::1]:8091"}, false},
		{[]string{"0.0.0.0:8091"}, true},
		{[]string{":8091"}, true},
		{[]string{"localhost:8091", "10.0.0.5:8091"}, true},
		{[]string{"example.com:8091"}, true},
	} {
		var buf bytes.Buffer
		WarnIfExposed(slog.New(slog.NewTextHandler(&buf, nil)), "admin.bind", tc.binds, "admin.token")
		if got := strings.Contains(buf.String(), "WARN"); got != tc.warn {
			t.Errorf("%v: warned %v, want %v (%q)", tc.binds, got, tc.warn, buf.String())
		}
	}
}

func TestRPCOptionsFromConfig(t *testing.T) {
	r := conf.DefaultComet().RPC
	o := RPCOptions(r, 7)
	if o.MaxMsg != 32<<20 || o.MaxConns != 7 || len(o.Allow) != 6 || o.Secret != nil || o.Idle != r.Idle.D() {
		t.Fatalf("defaults: %+v", o)
	}
	r.Secret, r.Legacy = "0123456789abcdef", conf.AddrList{"10.1.2.3"}
	o = RPCOptions(r, 0)
	if string(o.Secret) != "0123456789abcdef" || len(o.Legacy) != 1 || o.Legacy[0].String() != "10.1.2.3/32" {
		t.Fatalf("secret and legacy: %+v", o)
	}
}
