package comet

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopush/api"
)

// A push that reaches the comet after its caller's deadline (web gave up
// and answered 65535) is dropped: nothing stored, nothing delivered. One
// inside its deadline is stored with that deadline passed on to the
// message node, and delivered.
func TestPushAfterCallerDeadlineDoesNothing(t *testing.T) {
	t.Parallel()
	root := zkRoot(t)
	cfg := testConfig(t, root, "node1")
	fake := startFakeMessage(t, cfg.ZooKeeper.Addr[0], cfg.ZooKeeper.Message.Path, false)
	c := startComet(t, cfg)
	rc := rpcClient(t, c)
	waitStorage(t, rc)
	cl := subscribeTCP(t, c, "k", "", "1")
	before, _ := fake.Saved()

	var r int
	late := &api.CometPushPrivateArgs{Key: "k", Msg: json.RawMessage(`"late"`), Expire: 60, Deadline: time.Now().Add(-time.Second).UnixNano()}
	err := rc.Call(context.Background(), api.CometPushPrivate, late, &r)
	if err == nil || !strings.Contains(err.Error(), "deadline passed") {
		t.Fatalf("push past its deadline: %v, want deadline passed", err)
	}
	var resp api.CometPushPrivatesResp
	lates := &api.CometPushPrivatesArgs{Keys: []string{"k"}, Msg: json.RawMessage(`"late"`), Expire: 60, Deadline: late.Deadline}
	if err := rc.Call(context.Background(), api.CometPushPrivates, lates, &resp); err == nil || !strings.Contains(err.Error(), "deadline passed") {
		t.Fatalf("pushes past their deadline: %v, want deadline passed", err)
	}
	if after, _ := fake.Saved(); len(after) != len(before) {
		t.Fatalf("late pushes stored %d messages", len(after)-len(before))
	}

	dl := time.Now().Add(time.Minute).UnixNano()
	ok := &api.CometPushPrivateArgs{Key: "k", Msg: json.RawMessage(`"inside"`), Expire: 60, Deadline: dl}
	if err := rc.Call(context.Background(), api.CometPushPrivate, ok, &r); err != nil {
		t.Fatal(err)
	}
	// The first frame the client gets is the one inside its deadline.
	if d := decode(t, cl.readFrame()); string(d.Msg) != `"inside"` {
		t.Fatalf("client got %s, want the push inside its deadline", d.Msg)
	}
	fake.mu.Lock()
	got := fake.deadline
	fake.mu.Unlock()
	if got == 0 || got > dl {
		t.Errorf("message node got deadline %d, want one no later than the caller's %d", got, dl)
	}
}
