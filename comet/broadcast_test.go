package comet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

func broadcast(rc *gobrpc.Client, msg string, mid int64) error {
	var r int
	return rc.Call(context.Background(), api.CometBroadcast, &api.CometBroadcastArgs{Msg: json.RawMessage(msg), MsgId: mid}, &r)
}

// TestBroadcastReachesEveryConnectionOnce: every subscribed connection,
// whatever its key, protocol and form, gets the broadcast exactly once with
// gid 1 and the caller's mid; bad broadcasts deliver nothing.
func TestBroadcastReachesEveryConnectionOnce(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, testenv.ZKRoot(t), "node1"))
	rc := rpcClient(t, c)

	tcpNew := subscribeTCP(t, c, "alice", "", "1.0")
	tcpNew2 := subscribeTCP(t, c, "alice", "", "1.0") // a second device of alice
	tcpOld := subscribeTCP(t, c, "bob", "", "")
	wsNew := subscribeWS(t, c, "carol", "", "1.0")
	wsOld := subscribeWS(t, c, "dave", "", "")

	for _, bad := range []struct {
		msg string
		mid int64
	}{{`{"a":`, 5}, {``, 5}, {`{"a":1}`, 0}, {`{"a":1}`, -3}} {
		if err := broadcast(rc, bad.msg, bad.mid); err == nil {
			t.Errorf("Broadcast(%q, %d) accepted", bad.msg, bad.mid)
		}
	}

	const mid = int64(17900000000000001) // above 2^53: must come back exact
	if err := broadcast(rc, `{ "news" : [1, 2] }`, mid); err != nil {
		t.Fatal(err)
	}
	newForm := fmt.Sprintf(`{"msg":{"news":[1,2]},"mid":%d,"gid":1}`, mid)
	oldForm := fmt.Sprintf(`{"msg":"{\"news\":[1,2]}","mid":%d,"gid":1}`, mid)
	for name, got := range map[string]string{
		"tcp new": tcpNew.readFrame(), "tcp new, 2nd device": tcpNew2.readFrame(), "tcp old": tcpOld.readFrame(),
	} {
		want := newForm
		if strings.Contains(name, "old") {
			want = oldForm
		}
		if got != want {
			t.Errorf("%s: got %s, want %s", name, got, want)
		}
	}
	if got := wsNew.read(); got != newForm {
		t.Errorf("websocket new: got %s, want %s", got, newForm)
	}
	if got := wsOld.read(); got != oldForm {
		t.Errorf("websocket old: got %s, want %s", got, oldForm)
	}

	// Exactly once: the next thing each connection sees is the next push.
	push(t, rc, "alice", `{"after":1}`, 0)
	push(t, rc, "bob", `{"after":1}`, 0)
	for _, cl := range []*tcpClient{tcpNew, tcpNew2} {
		if d := decode(t, cl.readFrame()); d.Gid != 0 || string(d.Msg) != `{"after":1}` {
			t.Errorf("after the broadcast alice got %+v, want the private push", d)
		}
	}
	if d := decode(t, tcpOld.readFrame()); d.Gid != 0 {
		t.Errorf("after the broadcast bob got %+v, want the private push", d)
	}
}

// TestBroadcastWithNoConnection answers OK.
func TestBroadcastWithNoConnection(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, testenv.ZKRoot(t), "node1"))
	if err := broadcast(rpcClient(t, c), `{"a":1}`, 1); err != nil {
		t.Fatal(err)
	}
}
