package comet

import (
	"net/url"
	"strconv"
	"testing"
)

// TestClientsWithoutVersionGetTheOldForm: clients older than 1.0 send no
// version at all (a 3-argument TCP request, a WebSocket URL without ver,
// as in the 1.0.5 JavaScript SDK) and get msg as a JSON string (docs/protocol.md §2.1,
// §2.2); a 4-argument request (the token) is still old form.
func TestClientsWithoutVersionGetTheOldForm(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	three := dialTCP(t, c.TCPAddrs()[0])
	three.write(subBytes("sub", "Terry-Mao", "30"))
	three.expect("+h\r\n")
	four := dialTCP(t, c.TCPAddrs()[0])
	four.write(subBytes("sub", "Terry-Mao", "30", "tok"))
	four.expect("+h\r\n")
	ws := dialWS(t, c.WSAddrs()[0], url.Values{"key": {"Terry-Mao"}, "heartbeat": {"30"}})
	if got := ws.read(); got != "+h\r\n" {
		t.Fatalf("WebSocket without ver: %q", got)
	}

	push(t, rpcClient(t, c), "Terry-Mao", `{"test":1}`, 0)
	got := three.readFrame()
	mid := decode(t, got).Mid
	want := `{"msg":"{\"test\":1}","mid":` + strconv.FormatInt(mid, 10) + `,"gid":0}`
	if got != want {
		t.Fatalf("3-argument TCP client: %q, want %q", got, want)
	}
	if got := four.readFrame(); got != want {
		t.Fatalf("4-argument TCP client: %q, want %q", got, want)
	}
	if got := ws.read(); got != want {
		t.Fatalf("WebSocket client without ver: %q, want %q", got, want)
	}
}
