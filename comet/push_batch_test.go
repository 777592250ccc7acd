package comet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

// batchMessageRPC is a gopush message node with SaveBatch; it counts the
// SaveBatch calls.
type batchMessageRPC struct {
	newMessageRPC
	batches atomic.Int64
}

func (s *batchMessageRPC) SaveBatch(a *api.MessageSaveBatchArgs, r *api.MessageSaveBatchResp) error {
	s.batches.Add(1)
	if err := s.f.gate(); err != nil {
		return err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	for i, e := range a.Entries {
		if e.Key == "refuse-me" {
			r.Failed = append(r.Failed, api.BatchFailure{Entry: i, Key: e.Key, Why: "refused by the fake"})
			continue
		}
		s.f.record(e.Key, e.Msg, e.MsgId)
	}
	return nil
}

// cometWithMessageNode starts a comet storing through a fake message node
// of the given kind: "batch" (SaveBatch), "each" (a gopush node without
// SaveBatch) or "old" (1.0.5). batches counts SaveBatch calls (nil unless
// "batch").
func cometWithMessageNode(t *testing.T, kind string) (c *Comet, fake *runningFake, rc *gobrpc.Client, batches *atomic.Int64) {
	t.Helper()
	cfg := testConfig(t, zkRoot(t), "node1")
	// Batches of megabytes under -race on a busy machine: more than the
	// usual 2 s per store call.
	cfg.RPC.Timeout = conf.Duration(10 * time.Second)
	f := &fakeMessage{}
	var rcvr any
	switch kind {
	case "batch":
		b := &batchMessageRPC{newMessageRPC: newMessageRPC{oldMessageRPC{f}}}
		rcvr, batches = b, &b.batches
	case "each":
		rcvr = &newMessageRPC{oldMessageRPC{f}}
	default:
		rcvr = &oldMessageRPC{f}
	}
	fake = serveFakeMessage(t, testenv.ZK(t), cfg.ZooKeeper.Message.Path, f, rcvr)
	c = startComet(t, cfg)
	rc = rpcClient(t, c)
	waitStorage(t, rc)
	return c, fake, rc, batches
}

func entry(msg string, expire uint, keys ...string) api.CometPushEntry {
	return api.CometPushEntry{Keys: keys, Msg: json.RawMessage(msg), Expire: expire}
}

// PushBatch delivers each entry to each of its keys under its own mid, in
// the order of the entries; stores the pushes with expire > 0 first (one
// SaveBatch call, or one SavePrivate each on a node without it) under the
// mid delivered; and names the pushes that failed, which get nothing.
func TestPushBatchOrderMidsAndStorage(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"batch", "each", "old"} {
		t.Run(kind+"_message_node", func(t *testing.T) {
			t.Parallel()
			c, fake, rc, batches := cometWithMessageNode(t, kind)
			a := subscribeTCP(t, c, "a", "", "1")
			b := subscribeWS(t, c, "b", "", "1")
			_, before := fake.Saved()
			var saveCalls int64
			if batches != nil {
				saveCalls = batches.Load()
			}
			var resp api.CometPushBatchResp
			call(t, rc, api.CometPushBatch, &api.CometPushBatchArgs{Entries: []api.CometPushEntry{
				entry(`"1"`, 0, "a"),
				entry(`"2"`, 60, "a", "b", "a"), // a repeated key is pushed once
				entry(`"3"`, 60, "offline"),
				entry(`"4"`, 60, "a"),
				entry(`"5"`, 60, "", "refuse-me", "b"),
				entry(`{"not json"`, 0, "b"),
				entry(`"7"`, 0, "a"),
				entry(`"8"`, 60),
			}}, &resp)

			type fail struct {
				entry int
				key   string
			}
			var got []fail
			for _, f := range resp.Failed {
				got = append(got, fail{f.Entry, f.Key})
				if f.Why == "" {
					t.Errorf("failure %+v has no reason", f)
				}
			}
			want := []fail{{4, ""}, {4, "refuse-me"}, {5, "b"}, {7, ""}}
			if !slices.Equal(got, want) {
				t.Fatalf("failed %+v, want %+v", resp.Failed, want)
			}

			var aMsgs []string
			var aMids []int64
			for range 4 {
				d := decode(t, a.readFrame())
				aMsgs = append(aMsgs, string(d.Msg))
				aMids = append(aMids, d.Mid)
			}
			if !slices.Equal(aMsgs, []string{`"1"`, `"2"`, `"4"`, `"7"`}) || !slices.IsSorted(aMids) {
				t.Fatalf("a got %v with mids %v, want 1 2 4 7 in ascending mids", aMsgs, aMids)
			}
			b2, b5 := decode(t, b.read()), decode(t, b.read())
			if string(b2.Msg) != `"2"` || string(b5.Msg) != `"5"` || b5.Mid <= b2.Mid {
				t.Fatalf("b got %s (%d), %s (%d), want 2 then 5", b2.Msg, b2.Mid, b5.Msg, b5.Mid)
			}

			keys, mids := fake.Saved()
			stored := map[string][]int64{}
			for i := len(before); i < len(keys); i++ {
				stored[keys[i]] = append(stored[keys[i]], mids[i])
			}
			for k := range stored {
				slices.Sort(stored[k])
			}
			if !slices.Equal(stored["a"], []int64{aMids[1], aMids[2]}) || !slices.Equal(stored["b"], []int64{b2.Mid, b5.Mid}) ||
				len(stored["offline"]) != 1 || len(stored) != 3 {
				t.Fatalf("stored %v; delivered a %v, b %d %d", stored, aMids, b2.Mid, b5.Mid)
			}
			all := append(slices.Clone(aMids), b2.Mid, b5.Mid, stored["offline"][0])
			slices.Sort(all)
			if len(slices.Compact(all)) != 7 {
				t.Fatalf("pushes share mids: %v", all)
			}
			if batches != nil {
				if n := batches.Load() - saveCalls; n != 1 {
					t.Errorf("%d SaveBatch calls for one batch, want 1", n)
				}
			}
			if n := statInt(t, c, "type=message", "stored"); n < 5 {
				t.Errorf("stat stored = %d, want at least the batch's 5", n)
			}
		})
	}
}

// A message node that fails fails every push with expire > 0 (they are
// not delivered); the others are delivered.
func TestPushBatchStorageFails(t *testing.T) {
	t.Parallel()
	c, fake, rc, _ := cometWithMessageNode(t, "batch")
	cl := subscribeTCP(t, c, "k", "", "1")
	fake.mu.Lock()
	fake.fail = errors.New("disk full")
	fake.mu.Unlock()
	var resp api.CometPushBatchResp
	call(t, rc, api.CometPushBatch, &api.CometPushBatchArgs{Entries: []api.CometPushEntry{
		entry(`"kept?"`, 60, "k", "j"),
		entry(`"live"`, 0, "k"),
	}}, &resp)
	if len(resp.Failed) != 2 || resp.Failed[0].Key != "k" || resp.Failed[1].Key != "j" || resp.Failed[0].Entry != 0 {
		t.Fatalf("failed %+v, want entry 0's two keys", resp.Failed)
	}
	if d := decode(t, cl.readFrame()); string(d.Msg) != `"live"` {
		t.Fatalf("got %s, want only the expire-0 push", d.Msg)
	}
}

// Batches and single pushes to one key, sent concurrently, arrive in mid
// order, and each batch's entries in the order sent.
func TestPushBatchKeepsOrderWithConcurrentPushes(t *testing.T) {
	t.Parallel()
	c, _, rc, _ := cometWithMessageNode(t, "batch")
	cl := subscribeTCP(t, c, "ordered", "", "1")
	const workers, batches, per = 4, 10, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				args := &api.CometPushBatchArgs{}
				for j := range per {
					n := (w*batches+i)*per + j
					args.Entries = append(args.Entries, entry(strconv.Itoa(n), uint(j%2*60), "ordered", fmt.Sprintf("other%d", j)))
				}
				var resp api.CometPushBatchResp
				if err := rc.Call(context.Background(), api.CometPushBatch, args, &resp); err != nil || len(resp.Failed) > 0 {
					t.Error(err, resp.Failed)
				}
				var r int
				single := &api.CometPushPrivateArgs{Key: "ordered", Msg: json.RawMessage(`-1`), Expire: 60}
				if err := rc.Call(context.Background(), api.CometPushPrivate, single, &r); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	last := int64(0)
	lastOf := map[int]int{} // worker → last n seen
	for range workers * batches * (per + 1) {
		d := decode(t, cl.readFrame())
		if d.Mid <= last {
			t.Fatalf("mid %d arrived after %d", d.Mid, last)
		}
		last = d.Mid
		n, _ := strconv.Atoi(string(d.Msg))
		if n < 0 {
			continue
		}
		w := n / (batches * per)
		if prev, ok := lastOf[w]; ok && n <= prev {
			t.Fatalf("worker %d: %d arrived after %d", w, n, prev)
		}
		lastOf[w] = n
	}
	wg.Wait()
}

// A batch whose caller gave up while it waited for its keys (held by a
// batch being stored) does nothing: its pushes fail with "deadline
// passed" and are never delivered.
func TestPushBatchDroppedWhenDeadlinePassesWhileWaiting(t *testing.T) {
	t.Parallel()
	c, fake, rc, _ := cometWithMessageNode(t, "batch")
	cl := subscribeTCP(t, c, "held", "", "1")
	stall := make(chan struct{})
	stalls := make(chan struct{}, 1)
	fake.mu.Lock()
	fake.stall, fake.stalls = stall, stalls
	fake.mu.Unlock()
	first := make(chan error, 1)
	go func() {
		var resp api.CometPushBatchResp
		first <- rc.Call(context.Background(), api.CometPushBatch, &api.CometPushBatchArgs{Entries: []api.CometPushEntry{entry(`"first"`, 60, "held")}}, &resp)
	}()
	<-stalls // the first batch holds "held" while it is stored
	var resp api.CometPushBatchResp
	second := &api.CometPushBatchArgs{Entries: []api.CometPushEntry{entry(`"late"`, 0, "held")}, Deadline: time.Now().Add(time.Second).UnixNano()}
	done := make(chan error, 1)
	go func() { done <- rc.Call(context.Background(), api.CometPushBatch, second, &resp) }()
	time.Sleep(1500 * time.Millisecond)
	fake.mu.Lock()
	fake.stall = nil
	fake.mu.Unlock()
	close(stall)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// On a very busy machine the call may even arrive after its deadline
	// and be refused at once: also nothing done.
	if err := <-done; err != nil && !strings.Contains(err.Error(), api.ErrDeadlinePassed.Error()) {
		t.Fatal(err)
	} else if err == nil && (len(resp.Failed) != 1 || resp.Failed[0].Why != api.ErrDeadlinePassed.Error()) {
		t.Fatalf("late batch: failed %+v, want its push dropped for its deadline", resp.Failed)
	}
	if d := decode(t, cl.readFrame()); string(d.Msg) != `"first"` {
		t.Fatalf("got %s", d.Msg)
	}
	push(t, rc, "held", `"next"`, 0)
	if d := decode(t, cl.readFrame()); string(d.Msg) != `"next"` {
		t.Fatalf("got %s after the dropped batch, want the next push", d.Msg)
	}
}

// An entry pushed to many keys repeats its message per key in SaveBatch:
// a batch whose stored messages pass api.SaveBatchBytes is stored in
// several calls, every push stored and delivered.
func TestPushBatchLargeStoredInRuns(t *testing.T) {
	t.Parallel()
	c, fake, rc, batches := cometWithMessageNode(t, "batch")
	cl := subscribeTCP(t, c, "big0", "", "1")
	msg := `"` + strings.Repeat("x", 600<<10) + `"`
	keys := make([]string, 8) // 8 × 600 KiB: two runs
	for i := range keys {
		keys[i] = fmt.Sprintf("big%d", i)
	}
	_, before := fake.Saved()
	n0 := batches.Load()
	var resp api.CometPushBatchResp
	call(t, rc, api.CometPushBatch, &api.CometPushBatchArgs{Entries: []api.CometPushEntry{entry(msg, 60, keys...)}}, &resp)
	if len(resp.Failed) != 0 {
		t.Fatalf("failed %+v", resp.Failed)
	}
	if n := batches.Load() - n0; n != 2 {
		t.Errorf("%d SaveBatch calls, want 2", n)
	}
	if _, after := fake.Saved(); len(after)-len(before) != 8 {
		t.Errorf("%d stored, want 8", len(after)-len(before))
	}
	if d := decode(t, cl.readFrame()); len(d.Msg) != len(msg) {
		t.Errorf("delivered %d bytes", len(d.Msg))
	}
}
