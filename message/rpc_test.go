package message

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopush/api"
	"gopush/internal/testenv"
)

// TestRoundTrip drives both storage types through MessageRPC over a real
// TCP connection: save, get after a mid, trim to store, delete.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cfg := b.cfg(t, 5)
			c := serve(t, cfg, openStorage(t, cfg))
			key := testenv.Unique(t)
			base := baseMid()

			for i := 1; i <= 3; i++ {
				c.mustSave(key, base+int64(i), msgN(i), 600)
			}
			got := c.mustGet(key, 0)
			if !sameMids(got, base+1, base+2, base+3) {
				t.Fatalf("get after 0: mids %v, want %v", mids(got), []int64{base + 1, base + 2, base + 3})
			}
			for i, m := range got {
				if !bytes.Equal(m.Msg, []byte(msgN(i+1))) || m.GroupId != 0 {
					t.Errorf("message %d: msg %s gid %d, want %s gid 0", i, m.Msg, m.GroupId, msgN(i+1))
				}
			}
			// base+1 and base+2 share one float64 score: the exact mid decides.
			if got := c.mustGet(key, base+1); !sameMids(got, base+2, base+3) {
				t.Errorf("get after base+1: mids %v, want base+2, base+3", mids(got))
			}
			if got := c.mustGet(key, base+3); len(got) != 0 {
				t.Errorf("get after the newest: %v, want nothing", mids(got))
			}
			if got := c.mustGet(testenv.Unique(t), 0); len(got) != 0 {
				t.Errorf("get of an unknown key: %v, want nothing", mids(got))
			}

			// 8 more: only the newest 5 (storage.store) come back, ascending.
			for i := 4; i <= 11; i++ {
				c.mustSave(key, base+int64(i), msgN(i), 600)
			}
			if got := c.mustGet(key, 0); !sameMids(got, base+7, base+8, base+9, base+10, base+11) {
				t.Errorf("after 11 saves with store 5: mids %v, want base+7..base+11", mids(got))
			}
			// Saving the same mid again is harmless.
			c.mustSave(key, base+11, msgN(11), 600)
			if got := c.mustGet(key, base+9); !sameMids(got, base+10, base+11) {
				t.Errorf("after saving base+11 twice: mids %v, want base+10, base+11", mids(got))
			}

			if err := c.del(key); err != nil {
				t.Fatal(err)
			}
			if got := c.mustGet(key, 0); len(got) != 0 {
				t.Errorf("after DelPrivate: %v, want nothing", mids(got))
			}
		})
	}
}

// TestSaveMany covers SavePrivates (one mid for all keys) and
// SavePrivatesEach (a mid per key) on both storage types.
func TestSaveMany(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cfg := b.cfg(t, 20)
			c := serve(t, cfg, openStorage(t, cfg))
			prefix := testenv.Unique(t)
			keys := []string{prefix + "-a", prefix + "-b", prefix + "-c"}
			base := baseMid()

			var resp api.MessageSavePrivatesResp
			if err := c.call(api.MessageSavePrivates, &api.MessageSavePrivatesArgs{
				Keys: keys, Msg: json.RawMessage(`{"all":1}`), MsgId: base, Expire: 600}, &resp); err != nil {
				t.Fatal(err)
			}
			if len(resp.FKeys) != 0 {
				t.Fatalf("SavePrivates: FKeys %v, want none", resp.FKeys)
			}
			var each api.MessageSavePrivatesResp
			if err := c.call(api.MessageSavePrivatesEach, &api.MessageSavePrivatesEachArgs{
				Keys: keys, MsgIds: []int64{base + 10, base + 20, base + 30},
				Msg: json.RawMessage(`{"each":1}`), Expire: 600}, &each); err != nil {
				t.Fatal(err)
			}
			if len(each.FKeys) != 0 {
				t.Fatalf("SavePrivatesEach: FKeys %v, want none", each.FKeys)
			}
			for i, k := range keys {
				got := c.mustGet(k, 0)
				if !sameMids(got, base, base+int64(10*(i+1))) {
					t.Errorf("key %s: mids %v, want %d and %d", k, mids(got), base, base+int64(10*(i+1)))
					continue
				}
				if string(got[0].Msg) != `{"all":1}` || string(got[1].Msg) != `{"each":1}` {
					t.Errorf("key %s: messages %s, %s", k, got[0].Msg, got[1].Msg)
				}
			}

			// More keys than one pipeline batch or one INSERT carries.
			many := make([]string, 1201)
			ids := make([]int64, len(many))
			for i := range many {
				many[i] = fmt.Sprintf("%s-%d", prefix, i)
				ids[i] = base + int64(i)
			}
			var bulk api.MessageSavePrivatesResp
			if err := c.call(api.MessageSavePrivatesEach, &api.MessageSavePrivatesEachArgs{
				Keys: many, MsgIds: ids, Msg: json.RawMessage(`{"bulk":1}`), Expire: 600}, &bulk); err != nil {
				t.Fatal(err)
			}
			if len(bulk.FKeys) != 0 {
				t.Fatalf("SavePrivatesEach of %d keys: %d failed", len(many), len(bulk.FKeys))
			}
			for _, i := range []int{0, 499, 500, 501, 999, 1000, 1200} {
				if got := c.mustGet(many[i], 0); !sameMids(got, ids[i]) {
					t.Errorf("bulk key %d: mids %v, want %d", i, mids(got), ids[i])
				}
			}
		})
	}
}

// TestExpiredMessagesAreNotReturned uses the real clock: a message that
// lives 1 second disappears while a long-lived one stays.
func TestExpiredMessagesAreNotReturned(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cfg := b.cfg(t, 20)
			c := serve(t, cfg, openStorage(t, cfg))
			key := testenv.Unique(t)
			base := baseMid()
			c.mustSave(key, base+1, `"short"`, 1)
			c.mustSave(key, base+2, `"long"`, 3600)
			testenv.WaitFor(t, 15*time.Second, "the 1-second message to expire", func() bool {
				return sameMids(c.mustGet(key, 0), base+2)
			})
		})
	}
}

// TestBadInput: every malformed call is refused with a parameter error
// the caller sees, and nothing is stored.
func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cfg := b.cfg(t, 20)
			cfg.Storage.MaxSize = 1024
			c := serve(t, cfg, openStorage(t, cfg))
			key := testenv.Unique(t)
			other := key + "-other"
			base := baseMid()
			big := `"` + strings.Repeat("x", 1023) + `"` // 1025 bytes

			wantParamError(t, "empty key", c.save("", base, `{}`, 60))
			wantParamError(t, "key of 5000 bytes", c.save(strings.Repeat("k", 5000), base, `{}`, 60))
			wantParamError(t, "nil message", c.save(key, base, "", 60))
			wantParamError(t, "message not JSON", c.save(key, base, `{"a":`, 60))
			wantParamError(t, "message plain text", c.save(key, base, `hello`, 60))
			wantParamError(t, "negative mid", c.save(key, -1, `{}`, 60))
			wantParamError(t, "expire 0", c.save(key, base, `{}`, 0))
			wantParamError(t, "message over maxsize", c.save(key, base, big, 60))

			var resp api.MessageSavePrivatesResp
			wantParamError(t, "SavePrivates with an empty key", c.call(api.MessageSavePrivates,
				&api.MessageSavePrivatesArgs{Keys: []string{other, ""}, Msg: json.RawMessage(`{}`), MsgId: base, Expire: 60}, &resp))
			wantParamError(t, "SavePrivates with a bad message", c.call(api.MessageSavePrivates,
				&api.MessageSavePrivatesArgs{Keys: []string{other}, Msg: json.RawMessage(`nope`), MsgId: base, Expire: 60}, &resp))
			wantParamError(t, "SavePrivatesEach with fewer mids than keys", c.call(api.MessageSavePrivatesEach,
				&api.MessageSavePrivatesEachArgs{Keys: []string{other, key}, MsgIds: []int64{base}, Msg: json.RawMessage(`{}`), Expire: 60}, &resp))
			wantParamError(t, "SavePrivatesEach with a negative mid", c.call(api.MessageSavePrivatesEach,
				&api.MessageSavePrivatesEachArgs{Keys: []string{other, key}, MsgIds: []int64{base, -5}, Msg: json.RawMessage(`{}`), Expire: 60}, &resp))

			_, err := c.get("", 0)
			wantParamError(t, "GetPrivate with an empty key", err)
			_, err = c.get(key, -1)
			wantParamError(t, "GetPrivate with a negative mid", err)
			wantParamError(t, "DelPrivate with an empty key", c.del(""))

			for _, k := range []string{key, other, ""} {
				if k == "" {
					continue
				}
				if got := c.mustGet(k, 0); len(got) != 0 {
					t.Errorf("key %q holds %v after refused calls, want nothing", k, mids(got))
				}
			}
			// The limit is exact: a message of maxsize bytes is accepted whole.
			fits := big[:1023] + `"`
			c.mustSave(key, base, fits, 60)
			if got := c.mustGet(key, 0); len(got) != 1 || string(got[0].Msg) != fits {
				t.Errorf("message of exactly maxsize bytes: got %d messages", len(got))
			}
		})
	}
}

// TestPing answers 0.
func TestPing(t *testing.T) {
	t.Parallel()
	cfg := backends[0].cfg(t, 20)
	c := serve(t, cfg, openStorage(t, cfg))
	reply := -1
	if err := c.call(api.MessagePing, 0, &reply); err != nil || reply != 0 {
		t.Fatalf("Ping: reply %d, err %v; want 0, nil", reply, err)
	}
}

// A key's length is counted in bytes, as comet and web count it: a key of
// multi-byte characters at the limit is stored and read back, one
// character more is refused, though it has far fewer characters than the
// limit's number (MySQL: 64 bytes; Redis: 4096).
func TestKeyLengthInBytes(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cfg := b.cfg(t, 20)
			limit := limitsFor(cfg).maxKey
			c := serve(t, cfg, openStorage(t, cfg))
			base := baseMid()
			// "鍵" is 3 bytes in UTF-8; the prefix keeps keys apart between runs.
			prefix := fmt.Sprintf("%x-", base%(1<<16))
			fill := (limit - len(prefix)) / 3
			atLimit := prefix + strings.Repeat("鍵", fill) + strings.Repeat("k", (limit-len(prefix))%3)
			if len(atLimit) != limit {
				t.Fatalf("test key of %d bytes, want %d", len(atLimit), limit)
			}
			t.Cleanup(func() { c.del(atLimit) })
			c.mustSave(atLimit, base, `{"at":"limit"}`, 60)
			if got := c.mustGet(atLimit, 0); len(got) != 1 || string(got[0].Msg) != `{"at":"limit"}` {
				t.Fatalf("key of %d bytes (%d characters): read back %v", limit, utf8.RuneCountInString(atLimit), got)
			}
			over := prefix + strings.Repeat("鍵", fill+1)
			wantParamError(t, fmt.Sprintf("key of %d bytes, %d characters", len(over), utf8.RuneCountInString(over)),
				c.save(over, base, `{}`, 60))
			_, err := c.get(over, 0)
			wantParamError(t, "get with a key over the limit", err)
			wantParamError(t, "del with a key over the limit", c.del(over))
		})
	}
}
