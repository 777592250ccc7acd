package message

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/internal/testenv"
)

// TestSaveBatch: SaveBatch stores entries that each carry their own key,
// mid, message and expiry — several for one key, more than one pipeline
// batch or INSERT holds — on both storage types; a bad entry fails alone,
// named by its index with the reason, and the others are stored.
func TestSaveBatch(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cfg := b.cfg(t, 20)
			c := serve(t, cfg, openStorage(t, cfg))
			prefix := testenv.Unique(t)
			base := baseMid()

			// 1200 entries: keys 0..399, three messages each, under
			// increasing mids, with different messages and expiries.
			var args api.MessageSaveBatchArgs
			for i := range 1200 {
				args.Entries = append(args.Entries, api.MessageSaveEntry{
					Key:    fmt.Sprintf("%s-%d", prefix, i%400),
					Msg:    json.RawMessage(fmt.Sprintf(`{"e":%d}`, i)),
					MsgId:  base + int64(10*i),
					Expire: uint(600 + i),
				})
			}
			// Bad entries in between: each fails alone.
			bad := map[int]string{
				3:   "",      // empty key
				500: "exp0",  // expire 0
				801: "notjs", // message not JSON
			}
			args.Entries[3].Key = ""
			args.Entries[500].Expire = 0
			args.Entries[801].Msg = json.RawMessage(`{nope`)
			var resp api.MessageSaveBatchResp
			if err := c.call(api.MessageSaveBatch, &args, &resp); err != nil {
				t.Fatal(err)
			}
			var idx []int
			for _, f := range resp.Failed {
				idx = append(idx, f.Entry)
				if f.Key != args.Entries[f.Entry].Key || !strings.HasPrefix(f.Why, "param: ") {
					t.Errorf("failure %+v: want the entry's key and a param: reason", f)
				}
			}
			if !slices.Equal(idx, []int{3, 500, 801}) {
				t.Fatalf("failed entries %v (%+v), want 3, 500, 801 (%v)", idx, resp.Failed, bad)
			}
			for _, k := range []int{0, 3, 100, 399} {
				key := fmt.Sprintf("%s-%d", prefix, k)
				var want []int64
				var msgs []string
				for _, i := range []int{k, k + 400, k + 800} {
					if _, isBad := bad[i]; isBad {
						continue
					}
					want = append(want, base+int64(10*i))
					msgs = append(msgs, fmt.Sprintf(`{"e":%d}`, i))
				}
				got := c.mustGet(key, 0)
				if !sameMids(got, want...) {
					t.Errorf("key %s: mids %v, want %v", key, mids(got), want)
					continue
				}
				for j, m := range got {
					if string(m.Msg) != msgs[j] {
						t.Errorf("key %s message %d: %s, want %s", key, j, m.Msg, msgs[j])
					}
				}
			}

			// An empty batch stores nothing and fails nothing.
			resp = api.MessageSaveBatchResp{}
			if err := c.call(api.MessageSaveBatch, &api.MessageSaveBatchArgs{}, &resp); err != nil || len(resp.Failed) != 0 {
				t.Errorf("empty batch: %v, %+v", err, resp.Failed)
			}
		})
	}
}

// TestSaveBatchShardDown: with one Redis shard stopped, exactly the
// entries of that shard's keys fail, named with the shard; the others are
// stored.
func TestSaveBatchShardDown(t *testing.T) {
	t.Parallel()
	a, b := testenv.StartRedis(t), testenv.StartRedis(t)
	cfg := redisConfig(map[string]string{"a:1": a.Addr(), "b:2": b.Addr()}, 20)
	cfg.Redis.DialTimeout.UnmarshalText([]byte("2s"))
	rs, err := NewRedisStorage(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	c := serve(t, cfg, rs)
	keys, onA, _ := splitKeys(t, testenv.Unique(t), 30, rs.ShardOf)
	base := baseMid()
	b.Stop()
	var args api.MessageSaveBatchArgs
	var wantFailed []int
	for i, k := range keys {
		args.Entries = append(args.Entries, api.MessageSaveEntry{Key: k, Msg: json.RawMessage(`1`), MsgId: base + int64(i), Expire: 60})
		if rs.ShardOf(k) == "b" {
			wantFailed = append(wantFailed, i)
		}
	}
	var resp api.MessageSaveBatchResp
	if err := c.call(api.MessageSaveBatch, &args, &resp); err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, f := range resp.Failed {
		got = append(got, f.Entry)
		if !strings.Contains(f.Why, "redis shard b") {
			t.Errorf("failure %+v does not name shard b", f)
		}
	}
	if !slices.Equal(got, wantFailed) {
		t.Errorf("failed entries %v, want shard b's %v", got, wantFailed)
	}
	if got := c.mustGet(onA[0], 0); len(got) != 1 {
		t.Errorf("key on shard a: %v, want its message", mids(got))
	}
}

// An entry whose own caller's deadline has passed is not stored, even when
// the call carries time for the others (comet's grouped saves put several
// callers' saves in one call).
func TestSaveBatchEntryPastItsDeadline(t *testing.T) {
	t.Parallel()
	cfg := redisConfig(map[string]string{"a:1": testenv.Redis(t)}, 20)
	c := serve(t, cfg, openStorage(t, cfg))
	prefix := testenv.Unique(t)
	base := baseMid()
	late, onTime := prefix+"-late", prefix+"-on-time"
	args := api.MessageSaveBatchArgs{
		Deadline: time.Now().Add(10 * time.Second).UnixNano(),
		Entries: []api.MessageSaveEntry{
			{Key: late, Msg: json.RawMessage(`1`), MsgId: base, Expire: 60, Deadline: time.Now().Add(-time.Second).UnixNano()},
			{Key: onTime, Msg: json.RawMessage(`2`), MsgId: base + 1, Expire: 60, Deadline: time.Now().Add(10 * time.Second).UnixNano()},
		},
	}
	var resp api.MessageSaveBatchResp
	if err := c.call(api.MessageSaveBatch, &args, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Failed) != 1 || resp.Failed[0].Entry != 0 || !strings.Contains(resp.Failed[0].Why, "deadline passed") {
		t.Fatalf("failed = %+v, want entry 0 with deadline passed", resp.Failed)
	}
	if got := c.mustGet(late, 0); len(got) != 0 {
		t.Errorf("the late entry was stored: %v", mids(got))
	}
	if got := c.mustGet(onTime, 0); !sameMids(got, base+1) {
		t.Errorf("the entry on time: %v, want %d", mids(got), base+1)
	}
}
