package comet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

// stallSaves makes the fake node's saves wait until the returned release is
// called; stalled receives one value per save that waits.
func stallSaves(t *testing.T, fake *runningFake) (stalled chan struct{}, release func()) {
	t.Helper()
	stall := make(chan struct{})
	stalled = make(chan struct{}, 64)
	fake.mu.Lock()
	fake.stall, fake.stalls = stall, stalled
	fake.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			fake.mu.Lock()
			fake.stall, fake.stalls = nil, nil
			fake.mu.Unlock()
			close(stall)
		})
	}
	t.Cleanup(release)
	return stalled, release
}

// waitQueued waits until n saves are queued behind the flush in flight.
func waitQueued(t *testing.T, c *Comet, n int) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d saves queued", n), func() bool {
		c.saves.mu.Lock()
		defer c.saves.mu.Unlock()
		return len(c.saves.queue) >= n
	})
}

func pushAsync(rc *gobrpc.Client, key, msg string, expire uint, deadline time.Time) chan error {
	done := make(chan error, 1)
	go func() {
		var r int
		args := &api.CometPushPrivateArgs{Key: key, Msg: json.RawMessage(msg), Expire: expire}
		if !deadline.IsZero() {
			args.Deadline = deadline.UnixNano()
		}
		done <- rc.Call(context.Background(), api.CometPushPrivate, args, &r)
	}()
	return done
}

// Stored single pushes made while a save is in flight go to the message
// node together, in one SaveBatch call: every push is stored once, under
// the mid its key's connections get, and the pushes to one key are stored
// and delivered in mid order.
func TestStoredPushesGroupedIntoOneSaveBatch(t *testing.T) {
	t.Parallel()
	c, fake, rc, batches := cometWithMessageNode(t, "batch")
	subs := map[string]*tcpClient{}
	for k := range 4 {
		key := fmt.Sprintf("g%d", k)
		subs[key] = subscribeTCP(t, c, key, "", "1")
	}
	stalled, release := stallSaves(t, fake)
	first := pushAsync(rc, "lead", `"lead"`, 60, time.Time{})
	<-stalled // the first save is in flight, alone
	_, before := fake.Saved()
	calls := batches.Load()

	const keys, perKey = 40, 3
	var results []chan error
	for k := range keys {
		results = append(results, pushAsync(rc, fmt.Sprintf("g%d", k), fmt.Sprintf(`"%d-0"`, k), 60, time.Time{}))
	}
	// One save per key at a time (its order stripe): the second push of a
	// key waits behind the first.
	waitQueued(t, c, keys)
	var later []chan error
	for k := range 4 {
		for i := 1; i < perKey; i++ {
			later = append(later, pushAsync(rc, fmt.Sprintf("g%d", k), fmt.Sprintf(`"%d-%d"`, k, i), 60, time.Time{}))
		}
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for _, ch := range append(results, later...) {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	gotKeys, mids := fake.Saved()
	gotKeys, mids = gotKeys[len(before):], mids[len(before):]
	if want := 1 + keys + 4*(perKey-1); len(mids) != want { // with "lead"
		t.Fatalf("%d saves, want %d", len(mids), want)
	}
	seen := map[int64]bool{}
	last := map[string]int64{}
	for i, m := range mids {
		if seen[m] {
			t.Fatalf("mid %d stored twice", m)
		}
		seen[m] = true
		if m <= last[gotKeys[i]] {
			t.Fatalf("key %s stored mid %d after %d", gotKeys[i], m, last[gotKeys[i]])
		}
		last[gotKeys[i]] = m
	}
	// The 40 queued saves went in one call; the later pushes of the four
	// keys, each waiting for the one before it, in at most 8 more.
	if n := batches.Load() - calls; n < 2 || n > 1+4*(perKey-1) {
		t.Errorf("%d SaveBatch calls for %d pushes made during one save, want 2..%d", n, len(mids), 1+4*(perKey-1))
	}
	for k := range 4 {
		key := fmt.Sprintf("g%d", k)
		var prev int64
		for i := range perKey {
			// The later pushes of a key race each other to its stripe:
			// whichever wins gets the smaller mid, stored and delivered
			// first.
			d := decode(t, subs[key].readFrame())
			if !seen[d.Mid] || d.Mid <= prev || i == perKey-1 && d.Mid != last[key] {
				t.Fatalf("key %s frame %d: %s mid %d, want a stored mid, ascending, the last one %d", key, i, d.Msg, d.Mid, last[key])
			}
			prev = d.Mid
		}
	}
}

// In a grouped save, an entry the message node refuses fails its own push
// only; a SaveBatch call that fails as a whole fails every push it carried,
// each caller getting the error.
func TestGroupedSaveFailuresReachTheirOwnCallers(t *testing.T) {
	t.Parallel()
	c, fake, rc, _ := cometWithMessageNode(t, "batch")
	stalled, release := stallSaves(t, fake)
	first := pushAsync(rc, "lead", `1`, 60, time.Time{})
	<-stalled
	ok1 := pushAsync(rc, "ok1", `1`, 60, time.Time{})
	bad := pushAsync(rc, "refuse-me", `1`, 60, time.Time{})
	ok2 := pushAsync(rc, "ok2", `1`, 60, time.Time{})
	waitQueued(t, c, 3)
	release()
	for name, ch := range map[string]chan error{"lead": first, "ok1": ok1, "ok2": ok2} {
		if err := <-ch; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := <-bad; err == nil || !strings.Contains(err.Error(), "refused by the fake") {
		t.Errorf("refused entry: err %v, want the node's reason", err)
	}

	// Now every save fails: all the pushes of a batch get the error.
	stalled, release = stallSaves(t, fake)
	first = pushAsync(rc, "lead", `2`, 60, time.Time{})
	<-stalled
	var rest []chan error
	for i := range 5 {
		rest = append(rest, pushAsync(rc, fmt.Sprintf("f%d", i), `2`, 60, time.Time{}))
	}
	waitQueued(t, c, 5)
	fake.mu.Lock()
	fake.fail = fmt.Errorf("disk on fire")
	fake.mu.Unlock()
	release()
	<-first // in flight before the node failed
	for i, ch := range rest {
		if err := <-ch; err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("push %d: err %v, want the batch's error", i, err)
		}
	}
	keys, _ := fake.Saved()
	for _, k := range keys {
		if strings.HasPrefix(k, "f") || k == "refuse-me" {
			t.Errorf("failed push of %s stored", k)
		}
	}
}

// A message node without SaveBatch (1.0.5) gets one SavePrivate per
// push, grouped or not, and comet stops trying SaveBatch for a while.
func TestGroupedSavesOnOldMessageNode(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"old", "each"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c, fake, rc, _ := cometWithMessageNode(t, kind)
			if c.saves.oldUntil.Load() <= time.Now().UnixNano() {
				t.Fatal("SaveBatch refused, but not remembered")
			}
			// Forget it, and again while the first save (refused, then
			// sent alone) is in flight: the saves queued meanwhile try
			// SaveBatch together, then go one by one.
			c.saves.oldUntil.Store(0)
			_, before := fake.Saved()
			stalled, release := stallSaves(t, fake)
			first := pushAsync(rc, "lead", `1`, 60, time.Time{})
			<-stalled
			c.saves.oldUntil.Store(0)
			var rest []chan error
			for i := range 20 {
				rest = append(rest, pushAsync(rc, fmt.Sprintf("o%d", i), `1`, 60, time.Time{}))
			}
			waitQueued(t, c, 20)
			release()
			for _, ch := range append(rest, first) {
				if err := <-ch; err != nil {
					t.Fatal(err)
				}
			}
			keys, _ := fake.Saved()
			if n := len(keys) - len(before); n != 21 {
				t.Fatalf("%d saves, want 21", n)
			}
			// Remembered: a push goes straight to SavePrivate.
			if c.saves.oldUntil.Load() <= time.Now().UnixNano() {
				t.Error("SaveBatch refused, but not remembered")
			}
			push(t, rc, "after", `1`, 60)
			if keys, _ := fake.Saved(); keys[len(keys)-1] != "after" {
				t.Errorf("last saved %q, want after", keys[len(keys)-1])
			}
		})
	}
}

// A push whose deadline passes while its save waits behind a flush in
// flight fails at once with its own deadline, and is never sent to the
// message node; the pushes grouped around it are stored.
func TestGroupedSaveKeepsTheCallersDeadline(t *testing.T) {
	t.Parallel()
	c, fake, rc, _ := cometWithMessageNode(t, "batch")
	cl := subscribeTCP(t, c, "late", "", "1")
	stalled, release := stallSaves(t, fake)
	first := pushAsync(rc, "lead", `1`, 60, time.Time{})
	<-stalled
	other := pushAsync(rc, "other", `1`, 60, time.Time{})
	start := time.Now()
	late := pushAsync(rc, "late", `"late"`, 60, start.Add(500*time.Millisecond))
	waitQueued(t, c, 1)
	select {
	case err := <-late:
		if err == nil || !strings.Contains(err.Error(), "deadline") {
			t.Fatalf("late push: err %v, want its deadline", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("late push answered after %v, deadline 500ms", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("late push still waiting 10 s after its deadline")
	}
	release()
	for _, ch := range []chan error{first, other} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	keys, _ := fake.Saved()
	for _, k := range keys {
		if k == "late" {
			t.Error("push whose caller gave up was stored")
		}
	}
	// Nothing delivered for it: the next push is the first frame.
	push(t, rc, "late", `"next"`, 0)
	if d := decode(t, cl.readFrame()); string(d.Msg) != `"next"` {
		t.Errorf("first frame %s, want \"next\"", d.Msg)
	}
}

// Saves made after Close began are refused.
func TestSaveGroupRefusesAfterClose(t *testing.T) {
	t.Parallel()
	c, _, _, _ := cometWithMessageNode(t, "batch")
	c.saves.close()
	err := c.saves.save(context.Background(), api.MessageSaveEntry{Key: "k", Msg: json.RawMessage(`1`), MsgId: 1, Expire: 60})
	if err == nil {
		t.Fatal("save after close accepted")
	}
}
