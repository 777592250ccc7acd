package comet

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"gopush/conf"
)

// A connection's handshake timeout, heartbeat deadline and write deadline
// are three settings: a short channel.handshake.timeout bounds only the
// subscribe request, and a subscribed client (heartbeat 30) may then stay
// silent for 35 s and take as long to read, on TCP and WebSocket alike.
func TestConnDeadlinesAreSeparate(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Handshake.Timeout = conf.Duration(400 * time.Millisecond)
	c := startComet(t, cfg)
	tc := subscribeTCP(t, c, "tcp-key", "", "1")
	wc := subscribeWS(t, c, "ws-key", "", "1")

	silent := dialTCP(t, c.TCPAddrs()[0])
	silent.expectClosed(5 * time.Second) // the handshake timeout still applies

	time.Sleep(time.Second) // well past the handshake timeout
	tc.write([]byte("h"))
	tc.expect("+h\r\n")
	if err := wc.ws.WriteMessage(websocket.TextMessage, []byte("h")); err != nil {
		t.Fatal(err)
	}
	if got := wc.read(); got != "+h\r\n" {
		t.Fatalf("websocket heartbeat after the handshake timeout: %q", got)
	}

	for _, key := range []string{"tcp-key", "ws-key"} {
		conns := c.hub.conns(key)
		if len(conns) != 1 {
			t.Fatalf("%s: %d connections", key, len(conns))
		}
		cn := conns[0]
		if cn.handshake != 400*time.Millisecond || cn.readTimeout != 35*time.Second || cn.writeTimeout != 35*time.Second {
			t.Errorf("%s: handshake %v, read %v, write %v; want 400ms, heartbeat + 5 s (35s), 35s",
				key, cn.handshake, cn.readTimeout, cn.writeTimeout)
		}
	}
}
