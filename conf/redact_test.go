package conf

import (
	"encoding/json"
	"strings"
	"testing"
)

// Every secret a configuration can hold is hidden in what is shown, and
// the original is left alone.
func TestRedactedHidesEverySecret(t *testing.T) {
	c := DefaultComet()
	c.RPC.Secret = "rpc-secret-0123456789"
	c.Channel.Token.Secret = "hs256-secret-0123456789abcdef0123456789"
	w := DefaultWeb()
	w.Admin.Token = "admin-token-0123456789"
	w.RPC.Secret = "rpc-secret-0123456789"
	m := DefaultMessage()
	m.RPC.Secret = "rpc-secret-0123456789"
	m.Redis.Source = map[string]string{"n1:1": "tcp@localhost:6379#redis-pass-xyz"}
	m.MySQL.Source = map[string]string{"n1:1": "gopush:mysql-pass-xyz@tcp(localhost:3306)/gopush"}
	for _, v := range []any{c.Redacted(), w.Redacted(), m.Redacted()} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"rpc-secret", "hs256-secret", "admin-token", "redis-pass", "mysql-pass"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%T shows %s: %s", v, secret, b)
			}
		}
	}
	if m.Redis.Source["n1:1"] != "tcp@localhost:6379#redis-pass-xyz" || c.RPC.Secret == Redacted {
		t.Fatal("Redacted changed the original")
	}
	if got := RedactDSN("gopush:p@ss@tcp(h:1)/db"); got != "gopush:"+Redacted+"@tcp(h:1)/db" {
		t.Errorf("RedactDSN with @ in the password: %q", got)
	}
	if got := RedactDSN("gopush@tcp(h:1)/db"); got != "gopush@tcp(h:1)/db" {
		t.Errorf("RedactDSN without a password: %q", got)
	}
}
