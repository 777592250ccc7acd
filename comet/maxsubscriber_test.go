package comet

import (
	"testing"
	"time"
)

// TestMaxSubscriberCountsBothProtocols: channel.maxsubscriber bounds the
// connections of one key whatever their protocol; the one over the limit
// gets -c (a text frame on WebSocket) and is closed, the others stay.
func TestMaxSubscriberCountsBothProtocols(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.MaxSubscriber = 2
	c := startComet(t, cfg)
	tc := subscribeTCP(t, c, "full", "", "1")
	wc := subscribeWS(t, c, "full", "", "1")

	extraWS := dialWS(t, c.WSAddrs()[0], wsQuery("full", "30", "", "1"))
	if got := extraWS.read(); got != "-c\r\n" {
		t.Fatalf("third connection over WebSocket: %q, want -c", got)
	}
	extraWS.expectClosed(5 * time.Second)
	extraTCP := dialTCP(t, c.TCPAddrs()[0])
	extraTCP.write(subBytes("sub", "full", "30"))
	extraTCP.expect("-c\r\n")
	extraTCP.expectClosed(5 * time.Second)

	if n := keyConns(t, c, "full"); n != 2 {
		t.Fatalf("stat: %d connections of the key, want 2", n)
	}
	// Another key is not affected by this one's limit.
	subscribeWS(t, c, "other", "", "1")
	tc.write([]byte("h"))
	tc.expect("+h\r\n")
	push(t, rpcClient(t, c), "full", `{"n":1}`, 0)
	if d := decode(t, tc.readFrame()); string(d.Msg) != `{"n":1}` {
		t.Fatalf("TCP got %s", d.Msg)
	}
	if d := decode(t, wc.read()); string(d.Msg) != `{"n":1}` {
		t.Fatalf("WebSocket got %s", d.Msg)
	}
}
