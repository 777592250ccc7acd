package comet

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/internal/testenv"
	"gopush/membership"
)

// idMessageRPC is a gopush message node with SavePrivateId: it records ids
// by key as the Redis script does.
type idMessageRPC struct {
	newMessageRPC
	ids map[string]int64 // key + "\x00" + id → first mid (under f.mu)
}

func (s *idMessageRPC) SavePrivateId(a *api.MessageSavePrivateIdArgs, r *api.PushIdReply) error {
	if err := s.f.gate(); err != nil {
		return err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.deadline = a.Deadline
	if first, ok := s.ids[pushIdPair(a.Key, a.Id)]; ok {
		r.Mid, r.Dup = first, true
		return nil
	}
	if a.Expire > 0 {
		s.f.record(a.Key, a.Msg, a.MsgId)
	}
	s.ids[pushIdPair(a.Key, a.Id)] = a.MsgId
	r.Mid = a.MsgId
	return nil
}

// seed records an id as if another comet had pushed it under mid.
func (s *idMessageRPC) seed(key, id string, mid int64, msg string) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.record(key, json.RawMessage(msg), mid)
	s.ids[pushIdPair(key, id)] = mid
}

// cometWithIdFake starts a comet and a fake message node with
// SavePrivateId.
func cometWithIdFake(t *testing.T) (*Comet, *idMessageRPC, *gobrpc.Client) {
	t.Helper()
	root := zkRoot(t)
	cfg := testConfig(t, root, "node1")
	rcvr := &idMessageRPC{newMessageRPC: newMessageRPC{oldMessageRPC{&fakeMessage{}}}, ids: map[string]int64{}}
	srv, err := gobrpc.Serve(api.MessageService, rcvr, []string{"127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	z, err := membership.DialZK([]string{testenv.ZK(t)}, 4*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(api.MessageNodeData{RPC: srv.Addrs(), Weight: 1})
	reg, err := membership.Register(context.Background(), z, cfg.ZooKeeper.Message.Path, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	(&runningFake{fakeMessage: rcvr.f, srv: srv, reg: reg, zk: z}).stopAtEnd(t)
	c := startComet(t, cfg)
	rc := rpcClient(t, c)
	waitStorage(t, rc)
	return c, rcvr, rc
}

func (r *runningFake) stopAtEnd(t *testing.T) { t.Cleanup(r.stop) }

func pushId(rc *gobrpc.Client, key, id, msg string, expire uint) (api.PushIdReply, error) {
	var reply api.PushIdReply
	args := &api.CometPushPrivateIdArgs{Key: key, Msg: json.RawMessage(msg), Expire: expire, Id: id,
		Deadline: time.Now().Add(10 * time.Second).UnixNano()}
	err := rc.Call(context.Background(), api.CometPushPrivateId, args, &reply)
	return reply, err
}

// A push retried with the same id is stored once and delivered once, and
// every answer carries the first mid; another id is a new message. With
// expire 0 the id is recorded all the same.
func TestPushPrivateIdDeliversAndStoresOnce(t *testing.T) {
	t.Parallel()
	c, fake, rc := cometWithIdFake(t)
	cl := subscribeTCP(t, c, "k", "", "1")
	_, before := fake.f.Saved()

	first, err := pushId(rc, "k", "p1", `{"n":1}`, 60)
	if err != nil || first.Dup || first.Mid == 0 {
		t.Fatalf("first push = %+v, %v", first, err)
	}
	if d := decode(t, cl.readFrame()); d.Mid != first.Mid || string(d.Msg) != `{"n":1}` {
		t.Fatalf("client got %+v, want mid %d", d, first.Mid)
	}
	for i := range 3 {
		r, err := pushId(rc, "k", "p1", `{"n":1}`, 60)
		if err != nil || !r.Dup || r.Mid != first.Mid {
			t.Fatalf("retry %d = %+v, %v; want dup with the first mid %d", i, r, err, first.Mid)
		}
	}
	// Online only, with an id: recorded, delivered once.
	live, err := pushId(rc, "k", "p2", `{"n":2}`, 0)
	if err != nil || live.Dup {
		t.Fatalf("expire-0 push = %+v, %v", live, err)
	}
	if r, err := pushId(rc, "k", "p2", `{"n":2}`, 0); err != nil || !r.Dup || r.Mid != live.Mid {
		t.Fatalf("expire-0 retry = %+v, %v; want dup of %d", r, err, live.Mid)
	}
	// The next frame is the expire-0 push, not a retry of p1; after it the
	// marker, not a retry of p2.
	if d := decode(t, cl.readFrame()); d.Mid != live.Mid {
		t.Fatalf("client got %+v, want the expire-0 push %d (a retry was delivered again?)", d, live.Mid)
	}
	var ret int
	if err := rc.Call(context.Background(), api.CometPushPrivate, &api.CometPushPrivateArgs{Key: "k", Msg: json.RawMessage(`"marker"`)}, &ret); err != nil {
		t.Fatal(err)
	}
	if d := decode(t, cl.readFrame()); string(d.Msg) != `"marker"` {
		t.Fatalf("client got %+v, want the marker (a retry was delivered again?)", d)
	}
	if _, after := fake.f.Saved(); len(after)-len(before) != 1 {
		t.Errorf("stored %d messages, want 1 (expire 0 stores nothing, retries store nothing)", len(after)-len(before))
	}
}

// A retry whose first attempt this comet did not deliver (another comet
// did, or the first save was kept after its comet gave up on it) is
// delivered under the FIRST mid; clients that had it drop it by mid.
func TestPushPrivateIdRetryOfAnotherCometsPush(t *testing.T) {
	t.Parallel()
	c, fake, rc := cometWithIdFake(t)
	cl := subscribeTCP(t, c, "k", "", "1")
	firstMid := c.mids.Next() - 1000
	fake.seed("k", "elsewhere", firstMid, `{"n":7}`)
	r, err := pushId(rc, "k", "elsewhere", `{"n":7}`, 60)
	if err != nil || !r.Dup || r.Mid != firstMid {
		t.Fatalf("push = %+v, %v; want dup of %d", r, err, firstMid)
	}
	if d := decode(t, cl.readFrame()); d.Mid != firstMid || string(d.Msg) != `{"n":7}` {
		t.Fatalf("client got %+v, want the message under the first mid %d", d, firstMid)
	}
}

// Refusals: a bad id, a deadline passed on arrival, an unstored push.
func TestPushPrivateIdRefusals(t *testing.T) {
	t.Parallel()
	_, fake, rc := cometWithIdFake(t)
	for _, id := range []string{"", "a b", strings.Repeat("x", api.MaxPushIdLen+1)} {
		if _, err := pushId(rc, "k", id, `1`, 60); err == nil {
			t.Errorf("id %q accepted", id)
		}
	}
	var reply api.PushIdReply
	late := &api.CometPushPrivateIdArgs{Key: "k", Msg: json.RawMessage(`1`), Expire: 60, Id: "late", Deadline: time.Now().Add(-time.Second).UnixNano()}
	if err := rc.Call(context.Background(), api.CometPushPrivateId, late, &reply); err == nil || !strings.Contains(err.Error(), "deadline passed") {
		t.Errorf("late push = %v, want deadline passed", err)
	}
	fake.f.mu.Lock()
	fake.f.fail = errSaveFailed
	fake.f.mu.Unlock()
	if _, err := pushId(rc, "k", "x", `1`, 60); err == nil {
		t.Errorf("a push whose save failed succeeded")
	}
}

var errSaveFailed = errors.New("save failed (the fake)")

// With a 1.0.5 message node (no SavePrivateId) a push with an id is stored
// and delivered as without one: not deduplicated, but not lost.
func TestPushPrivateIdOldMessageNode(t *testing.T) {
	t.Parallel()
	c, fake, rc := cometWithFake(t, true)
	cl := subscribeTCP(t, c, "k", "", "1")
	r, err := pushId(rc, "k", "p", `{"n":1}`, 60)
	if err != nil || r.Dup || r.Mid == 0 {
		t.Fatalf("push with id over a 1.0.5 node = %+v, %v", r, err)
	}
	if d := decode(t, cl.readFrame()); d.Mid != r.Mid {
		t.Fatalf("client got %+v, want mid %d", d, r.Mid)
	}
	if keys, _ := fake.Saved(); len(keys) == 0 || keys[len(keys)-1] != "k" {
		t.Errorf("not stored through SavePrivate: %v", keys)
	}
}
