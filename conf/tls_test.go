package conf

import (
	"strings"
	"testing"
)

// The TLS and advertise keys: each bad value is refused with the key named,
// and the good forms load.
func TestTLSAndAdvertiseKeys(t *testing.T) {
	good := []struct{ file, toml string }{
		{"comet.toml", `
tcp.bind = ["0.0.0.0:6969"]
tcp.advertise = ["push1.example.com:6969"]
tcp.tls.bind = ["0.0.0.0:6443"]
websocket.tls.advertise = ["wss://push.example.com/c/node1/sub", "push1.example.com:6444"]
tls.cert = "/etc/gopush/cert.pem"
tls.key = "/etc/gopush/key.pem"
rpc.advertise = ["10.0.0.5:6970"]
`},
		// wss advertised for nginx, no TLS listener and so no pair.
		{"comet.toml", `websocket.tls.advertise = ["wss://push.example.com/c/node1/sub"]`},
		{"comet.toml", "tcp.bind = []\ntcp.tls.bind = [\"localhost:6443\"]\ntls.cert = \"c\"\ntls.key = \"k\"\n"},
		{"web.toml", "http.bind = []\nhttp.tls.bind = [\"localhost:8443\"]\nadmin.tls.bind = [\"localhost:8444\"]\ntls.cert = \"c\"\ntls.key = \"k\"\n"},
		{"message.toml", `rpc.advertise = ["10.0.0.6:8070"]`},
	}
	for _, g := range good {
		var err error
		path := write(t, g.file, g.toml)
		switch g.file {
		case "comet.toml":
			_, err = LoadComet(path)
		case "web.toml":
			_, err = LoadWeb(path)
		case "message.toml":
			_, err = LoadMessage(path)
		}
		if err != nil {
			t.Errorf("%s %q: %v", g.file, g.toml, err)
		}
	}

	bad := []struct{ file, toml, key string }{
		{"comet.toml", `tcp.tls.bind = ["localhost:6443"]`, "tls.cert"},
		{"comet.toml", "websocket.tls.bind = [\"localhost:6443\"]\ntls.cert = \"c\"\n", "tls.key"},
		{"comet.toml", `tcp.advertise = ["push1.example.com"]`, "tcp.advertise"},
		{"comet.toml", `tcp.advertise = ["push1.example.com:0"]`, "tcp.advertise"},
		{"comet.toml", `websocket.advertise = ["wss://push.example.com/sub"]`, "websocket.advertise"},
		{"comet.toml", `tcp.tls.advertise = ["wss://push.example.com/sub"]`, "tcp.tls.advertise"},
		{"comet.toml", `websocket.tls.advertise = ["https://push.example.com/sub"]`, "websocket.tls.advertise"},
		{"comet.toml", `websocket.tls.advertise = ["wss://push.example.com/sub?x=1"]`, "websocket.tls.advertise"},
		{"comet.toml", `websocket.tls.advertise = ["wss://push.example.com/c/node1"]`, "websocket.tls.advertise"},
		{"comet.toml", "tcp.bind = []\nchannel.proto = [\"tcp\"]\n", "tcp.bind"},
		{"web.toml", `http.tls.bind = ["localhost:8443"]`, "tls.cert"},
		{"web.toml", "http.bind = []\n", "http.bind"},
		{"web.toml", `rpc.advertise = ["localhost:1"]`, "rpc.advertise"},
		{"message.toml", `rpc.advertise = ["nohost"]`, "rpc.advertise"},
	}
	for _, b := range bad {
		var err error
		path := write(t, b.file, b.toml)
		switch b.file {
		case "comet.toml":
			_, err = LoadComet(path)
		case "web.toml":
			_, err = LoadWeb(path)
		case "message.toml":
			_, err = LoadMessage(path)
		}
		if err == nil || !strings.Contains(err.Error(), ": "+b.key+": ") {
			t.Errorf("%s %q: %v, want an error naming %s", b.file, b.toml, err, b.key)
		}
	}
}
