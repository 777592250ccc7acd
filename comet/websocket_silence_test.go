package comet

import (
	"testing"
	"time"
)

// TestWebSocketSilentSubscriberClosedAfterHeartbeatPlus5s is the WebSocket
// side of docs/protocol.md §2.1/§2.2: a subscriber that sends no heartbeat frame for
// heartbeat + 5 s is closed, not before, and its channel is freed. Like the
// TCP test it lasts ~35 s, in parallel with the others.
func TestWebSocketSilentSubscriberClosedAfterHeartbeatPlus5s(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	ws := subscribeWS(t, c, "quiet-ws", "", "1")
	start := time.Now()
	ws.expectClosed(60 * time.Second)
	if d := time.Since(start); d < 30*time.Second {
		t.Fatalf("closed after %v, before heartbeat + 5 s", d)
	}
	waitIdle(t, c)
}
