package comet

import (
	"encoding/json"
	"fmt"
	"gopush/api"
	"testing"
)

// TestPushesToOfflineKeysKeepNoState is docs/protocol.md §9.2 for the push side: 1.0.5
// kept a channel for every key ever pushed to. Pushes (stored or not, one
// key or many) and Close to keys with no connection leave no channel, and
// the channel of a key goes when its last connection does.
func TestPushesToOfflineKeysKeepNoState(t *testing.T) {
	t.Parallel()
	c, _, rc := cometWithFake(t, false)
	var keys []string
	for i := range 200 {
		keys = append(keys, fmt.Sprint("offline-", i))
	}
	var r int
	for i, k := range keys {
		call(t, rc, api.CometPushPrivate, &api.CometPushPrivateArgs{Key: k, Msg: json.RawMessage(`1`), Expire: uint(i % 2 * 60)}, &r)
	}
	var resp api.CometPushPrivatesResp
	call(t, rc, api.CometPushPrivates, &api.CometPushPrivatesArgs{Keys: keys, Msg: json.RawMessage(`2`), Expire: 60}, &resp)
	call(t, rc, api.CometPushPrivates, &api.CometPushPrivatesArgs{Keys: keys, Msg: json.RawMessage(`3`), Expire: 0}, &resp)
	for _, k := range keys[:20] {
		call(t, rc, api.CometClose, k, &r)
	}
	if n := c.hub.numChannels(); n != 0 {
		t.Fatalf("%d channels after pushes to keys nobody holds, want 0", n)
	}
	if n := statInt(t, c, "type=channel", "current"); n != 0 {
		t.Fatalf("stat: %d channels, want 0", n)
	}

	// A key with connections has one channel, freed with the last one.
	a := subscribeTCP(t, c, "held", "", "1")
	b := subscribeWS(t, c, "held", "", "1")
	push(t, rc, "held", `4`, 0)
	a.readFrame()
	b.read()
	if n := c.hub.numChannels(); n != 1 {
		t.Fatalf("%d channels with one key held, want 1", n)
	}
	a.nc.Close()
	b.ws.Close()
	waitIdle(t, c)
}
