package web

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"gopush/api"
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
	fk := tw.w.pushKeys(context.Background(), keys, json.RawMessage(`{"x":1}`), 60)

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
	if err := tw.w.pushOne(context.Background(), deadKey, json.RawMessage(`1`), 0); !errors.Is(err, errNoNode) || codeOf(err) != api.CodeNoNode {
		t.Fatalf("push to a key of a node without comet: %v", err)
	}
	tw.comets["a"].fn = func(string, any, any) error { return errors.New("comet down") }
	if err := tw.w.pushOne(context.Background(), liveKey, json.RawMessage(`1`), 0); err == nil || codeOf(err) != api.CodeInternalErr {
		t.Fatalf("push through a failing comet: %v", err)
	}
	fk := tw.w.pushKeys(context.Background(), []string{liveKey, deadKey}, json.RawMessage(`1`), 0)
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
