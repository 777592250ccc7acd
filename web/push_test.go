package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

// The push work is called without HTTP: one PushPrivates per comet node
// with exactly that node's keys, and the failed keys in the caller's order.
func TestPushKeysOneCallPerNode(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1, "b": 1}, []string{"a", "b"}, nil)
	tw.comets["b"].fn = func(method string, args, reply any) error {
		a := args.(*api.CometPushPrivatesArgs)
		reply.(*api.CometPushPrivatesResp).FKeys = a.Keys[:1] // b could not store its first key
		return nil
	}
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = "pk" + string(rune('A'+i))
	}
	fk, _ := tw.w.pushKeys(context.Background(), keys, json.RawMessage(`{"x":1}`), 60)

	view := tw.w.cluster.load()
	want := map[string][]string{}
	for _, k := range keys {
		node, _, err := view.lookup(k)
		if err != nil {
			t.Fatal(err)
		}
		want[node] = append(want[node], k)
	}
	for node, f := range tw.comets {
		calls := f.Calls()
		if len(calls) != 1 || calls[0].method != api.CometPushPrivates {
			t.Fatalf("comet %s got %d calls, want one PushPrivates", node, len(calls))
		}
		got := calls[0].args.(*api.CometPushPrivatesArgs)
		if !slices.Equal(got.Keys, want[node]) || got.Expire != 60 || string(got.Msg) != `{"x":1}` {
			t.Errorf("comet %s pushed %+v, want keys %v", node, got, want[node])
		}
	}
	if !slices.Equal(fk, want["b"][:1]) {
		t.Errorf("failed keys %v, want %v", fk, want["b"][:1])
	}
}

// A node that fails its call fails all its keys; one that is not serving
// fails the keys the ring gives it; a single push to it is errNoNode.
func TestPushFailuresAreNamed(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1, "dead": 1}, []string{"a"}, nil)
	var deadKey, liveKey string
	view := tw.w.cluster.load()
	for i := 0; deadKey == "" || liveKey == ""; i++ {
		k := "fk" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if _, _, err := view.lookup(k); err != nil {
			deadKey = k
		} else {
			liveKey = k
		}
	}
	if _, err := tw.w.pushOne(context.Background(), deadKey, json.RawMessage(`1`), 0); !errors.Is(err, errNoNode) || codeOf(err) != api.CodeNoNode {
		t.Fatalf("push to a key of a node without comet: %v", err)
	}
	tw.comets["a"].fn = func(string, any, any) error { return errors.New("comet down") }
	if _, err := tw.w.pushOne(context.Background(), liveKey, json.RawMessage(`1`), 0); err == nil || codeOf(err) != api.CodeInternalErr {
		t.Fatalf("push through a failing comet: %v", err)
	}
	fk, _ := tw.w.pushKeys(context.Background(), []string{liveKey, deadKey}, json.RawMessage(`1`), 0)
	if !slices.Equal(fk, []string{liveKey, deadKey}) {
		t.Fatalf("failed keys %v", fk)
	}
}

// broadcast stores first when asked to, sends one mid to every serving
// comet, and names the nodes that failed.
func TestBroadcastNamesFailedNodes(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1, "b": 1, "c": 1}, []string{"a", "b", "c"}, nil)
	tw.comets["c"].fn = func(string, any, any) error { return errors.New("comet down") }
	mid, failed, err := tw.w.broadcast(context.Background(), json.RawMessage(`"all"`), 600)
	if err != nil || !slices.Equal(failed, []string{"c"}) {
		t.Fatalf("broadcast: failed %v, %v", failed, err)
	}
	saves := tw.msgs.Calls()
	if len(saves) != 1 || saves[0].method != api.MessageSavePublic || saves[0].args.(*api.MessageSavePublicArgs).MsgId != mid {
		t.Fatalf("message calls %+v, want one SavePublic with mid %d", saves, mid)
	}
	for _, node := range []string{"a", "b", "c"} {
		calls := tw.comets[node].Calls()
		if len(calls) != 1 || calls[0].args.(*api.CometBroadcastArgs).MsgId != mid {
			t.Errorf("comet %s: %+v", node, calls)
		}
	}
	// A failed save sends nothing.
	tw.msgs.fn = func(string, any, any) error { return errors.New("redis down") }
	if _, _, err := tw.w.broadcast(context.Background(), json.RawMessage(`"x"`), 600); err == nil {
		t.Fatal("broadcast went on after the save failed")
	}
	if n := len(tw.comets["a"].Calls()); n != 1 {
		t.Fatalf("comet a got %d broadcasts, want still 1", n)
	}
}

// A push with expire > 0 to a key whose comet node has no serving
// instance, or whose comet cannot be dialled, is kept through a message
// node all the same: ret 0 with data {"stored":true,"delivered":false,
// "mid":M}. With expire 0 it fails as before (1001, 65535), and a comet
// call that may have been carried out (an error after sending) is not
// stored a second time.
func TestPushStoredWhenCometAbsent(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1, "dead": 1}, []string{"a"}, nil)
	// Comet "a" has an address nothing listens on: the call is never sent.
	closed := gobrpc.NewClient(testenv.FreeAddr(t), time.Second)
	t.Cleanup(func() { closed.Close() })
	view := tw.w.cluster.load()
	view.nodes["a"].rpc = closed
	var deadKey, downKey string
	for i := 0; deadKey == "" || downKey == ""; i++ {
		k := fmt.Sprintf("sk%d", i)
		if _, _, err := view.lookup(k); err != nil {
			deadKey = k
		} else {
			downKey = k
		}
	}
	for _, key := range []string{deadKey, downKey} {
		a := post(t, tw.admin.URL+"/1/admin/push/private?expire=60&key="+key, `{"n":1}`)
		var got struct {
			Ret  int             `json:"ret"`
			Data *api.PushStored `json:"data"`
		}
		if err := json.Unmarshal([]byte(a.body), &got); err != nil || got.Ret != 0 || got.Data == nil ||
			!got.Data.Stored || got.Data.Delivered || got.Data.Mid <= 0 {
			t.Fatalf("push to %s: %s, want ret 0 and stored-not-delivered", key, a.body)
		}
		calls := tw.msgs.Calls()
		last := calls[len(calls)-1]
		args, ok := last.args.(*api.MessageSavePrivateArgs)
		if last.method != api.MessageSavePrivate || !ok || args.Key != key || args.MsgId != got.Data.Mid ||
			args.Expire != 60 || string(args.Msg) != `{"n":1}` {
			t.Fatalf("message node got %s %+v, want the push kept for %s under mid %d", last.method, last.args, key, got.Data.Mid)
		}
	}
	before := len(tw.msgs.Calls())
	if a := post(t, tw.admin.URL+"/1/admin/push/private?expire=0&key="+deadKey, `1`); !strings.Contains(a.body, `"ret":1001`) {
		t.Errorf("online-only push to an absent comet: %s, want 1001", a.body)
	}
	if a := post(t, tw.admin.URL+"/1/admin/push/private?expire=0&key="+downKey, `1`); !strings.Contains(a.body, `"ret":65535`) {
		t.Errorf("online-only push to an unreachable comet: %s, want 65535", a.body)
	}
	// A comet that failed after the call was sent may have stored it.
	view.nodes["a"].rpc = &fakeRPC{fn: func(string, any, any) error { return gobrpc.ErrTimeout }}
	if a := post(t, tw.admin.URL+"/1/admin/push/private?expire=60&key="+downKey, `1`); !strings.Contains(a.body, `"ret":65535`) {
		t.Errorf("push whose comet call timed out: %s, want 65535", a.body)
	}
	if n := len(tw.msgs.Calls()); n != before {
		t.Errorf("message node got %d calls for pushes that must not be stored by web", n-before)
	}
	// The message node failing too: the push fails as it did without the
	// fallback (1001: no comet; 65535: the comet could not be reached).
	tw.msgs.fn = func(string, any, any) error { return errors.New("redis down") }
	if a := post(t, tw.admin.URL+"/1/admin/push/private?expire=60&key="+deadKey, `1`); !strings.Contains(a.body, `"ret":1001`) {
		t.Errorf("push kept nowhere: %s, want 1001", a.body)
	}
	view.nodes["a"].rpc = closed
	if a := post(t, tw.admin.URL+"/1/admin/push/private?expire=60&key="+downKey, `1`); !strings.Contains(a.body, `"ret":65535`) {
		t.Errorf("push kept nowhere: %s, want 65535", a.body)
	}
}

// Every push call carries web's deadline for it (now + rpc.timeout), so
// that a comet getting it after web gave up drops it.
func TestPushCarriesDeadline(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1}, []string{"a"}, nil)
	start := time.Now()
	if _, err := tw.w.pushOne(context.Background(), "k1", json.RawMessage(`1`), 60); err != nil {
		t.Fatal(err)
	}
	tw.w.pushKeys(context.Background(), []string{"k1", "k2"}, json.RawMessage(`1`), 60)
	calls := tw.comets["a"].Calls()
	if len(calls) != 2 {
		t.Fatalf("%d comet calls, want 2", len(calls))
	}
	max := time.Now().Add(tw.w.cfg.RPC.Timeout.D()).UnixNano()
	min := start.Add(tw.w.cfg.RPC.Timeout.D()).UnixNano()
	for _, dl := range []int64{
		calls[0].args.(*api.CometPushPrivateArgs).Deadline,
		calls[1].args.(*api.CometPushPrivatesArgs).Deadline,
	} {
		if dl < min || dl > max {
			t.Errorf("deadline %d, want now + rpc.timeout (%d..%d)", dl, min, max)
		}
	}
}

// push/mprivate with expire > 0: keys whose comet is absent or cannot be
// dialled are kept through a message node and listed in sk; with expire 0
// they fail (fk) as before.
func TestMprivateStoresKeysOfAbsentComets(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1, "b": 1, "dead": 1}, []string{"a", "b"}, nil)
	closed := gobrpc.NewClient(testenv.FreeAddr(t), time.Second)
	t.Cleanup(func() { closed.Close() })
	view := tw.w.cluster.load()
	view.nodes["b"].rpc = closed
	byNode := map[string]string{}
	for i := 0; len(byNode) < 3; i++ {
		k := fmt.Sprintf("mk%d", i)
		node := view.ring.Get(k)
		if _, ok := byNode[node]; !ok {
			byNode[node] = k
		}
	}
	keys := []string{byNode["a"], byNode["b"], byNode["dead"]}
	fk, sk := tw.w.pushKeys(context.Background(), keys, json.RawMessage(`1`), 60)
	if len(fk) != 0 || !slices.Equal(sk, keys[1:]) {
		t.Fatalf("fk %v sk %v, want no failure and %v kept", fk, sk, keys[1:])
	}
	calls := tw.msgs.Calls()
	args, ok := calls[len(calls)-1].args.(*api.MessageSavePrivatesEachArgs)
	if !ok || len(args.Keys) != 2 || len(args.MsgIds) != 2 || args.MsgIds[0] == args.MsgIds[1] {
		t.Fatalf("message node got %+v, want the two keys under their own mids", calls[len(calls)-1].args)
	}
	fk, sk = tw.w.pushKeys(context.Background(), keys, json.RawMessage(`1`), 0)
	if !slices.Equal(fk, keys[1:]) || len(sk) != 0 {
		t.Fatalf("expire 0: fk %v sk %v, want %v failed", fk, sk, keys[1:])
	}
	a := post(t, tw.admin.URL+"/1/admin/push/mprivate?expire=60", fmt.Sprintf(`{"m":"1","k":"%s"}`, strings.Join(keys, ",")))
	if want := fmt.Sprintf(`{"ret":0,"data":{"fk":[],"sk":["%s","%s"]}}`, keys[1], keys[2]); strings.TrimSpace(a.body) != want {
		t.Errorf("mprivate answer %s, want %s", a.body, want)
	}
}
