package conf

import (
	"errors"
	"testing"
)

// Each security setting with a wrong value stops the daemon with an error
// that names the key.
func TestSecuritySettingsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		file, toml, key string
	}{
		{"comet.toml", "[rpc]\nallow = [\"10.0.0.0/33\"]", "rpc.allow"},
		{"comet.toml", "[rpc]\nlegacy = [\"host.example\"]", "rpc.legacy"},
		{"comet.toml", "[rpc]\nsecret = \"short\"", "rpc.secret"},
		{"comet.toml", "[rpc]\nmaxmsg = 100", "rpc.maxmsg"},
		{"comet.toml", "[rpc]\nidle = \"0s\"", "rpc.idle"},
		{"comet.toml", "[channel]\ntoken.mode = \"magic\"", "channel.token.mode"},
		{"comet.toml", "[channel]\nauth = false\ntoken.mode = \"jwt\"\ntoken.secret = \"0123456789abcdef0123456789abcdef\"", "channel.auth"},
		{"comet.toml", "[channel]\nauth = true\ntoken.mode = \"jwt\"\ntoken.secret = \"too short\"", "channel.token.secret"},
		{"comet.toml", "[channel]\nauth = true\ntoken.mode = \"jwt\"\ntoken.alg = \"none\"", "channel.token.alg"},
		{"comet.toml", "[channel]\nauth = true\ntoken.mode = \"jwt\"\ntoken.alg = \"EdDSA\"", "channel.token.keyfile"},
		{"comet.toml", "[limit]\nconns = -1", "limit.conns"},
		{"comet.toml", "[limit]\nrate = 5.0\nburst = 0", "limit.burst"},
		{"web.toml", "admin.token = \"has a space inside!\"", "admin.token"},
		{"web.toml", "admin.token = \"short\"", "admin.token"},
		{"web.toml", "http.idletimeout = \"0s\"", "http.idletimeout"},
		{"web.toml", "[limit]\nrate = -1.0", "limit.rate"},
		{"message.toml", "[redis]\nroomdb = 0", "redis.roomdb"},
		{"message.toml", "[log]\nrepeat = -1", "log.repeat"},
	} {
		path := write(t, tc.file, tc.toml)
		var err error
		switch tc.file {
		case "comet.toml":
			_, err = LoadComet(path)
		case "web.toml":
			_, err = LoadWeb(path)
		default:
			_, err = LoadMessage(path)
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("%s %q: %v, want an error on %s", tc.file, tc.toml, err, tc.key)
		}
	}
}
