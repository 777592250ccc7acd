package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/internal/testenv"
	"gopush/ketama"
)

// batchMsg is the message of one batch push in this test.
type batchMsg struct {
	K string `json:"k"`
	N int    `json:"n"`
}

// TestClusterPushBatch sends batches — JSON lines and a JSON array — with
// several entries per key, mixed expiries and an entry for many keys,
// through the real web to keys on two real comets, and checks over raw
// TCP that every subscriber gets each of its pushes exactly once, in the
// order of the batch, with ascending mids; that the stored pushes can be
// read back under the mids delivered; and that pushes for offline keys are
// stored.
func TestClusterPushBatch(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage()
	n1 := c.StartComet("node1", 1)
	n2 := c.StartComet("node2", 1)
	w := c.StartWeb()
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 1})
	byNode := map[string]*testenv.CometNode{"node1": n1, "node2": n2}
	prefix := testenv.Unique(t) + "-"

	// 8 online keys, 4 per comet, and 3 offline ones.
	var keys []string
	subs := map[string]*tcpSub{}
	for i := range 8 {
		node := []string{"node1", "node2"}[i%2]
		key := keyOn(ring, node, fmt.Sprintf("%son%d-", prefix, i))
		waitRouted(t, w, key, byNode[node].TCP)
		subs[key] = subscribeWhenReady(t, 2, byNode[node].TCP, key, "").(*tcpSub)
		keys = append(keys, key)
	}
	offlineKeys := []string{prefix + "off0", prefix + "off1", prefix + "off2"}

	// Batch 1, JSON lines: 6 rounds over the online keys (expire 0 and 600
	// alternating), one entry for all online and offline keys, then a
	// round of single entries for the offline keys.
	want := map[string][]batchMsg{}       // key → messages in order
	wantStored := map[string][]batchMsg{} // key → the stored ones
	var lines []string
	add := func(msg batchMsg, expire int, ks ...string) {
		m, _ := json.Marshal(msg)
		if len(ks) == 1 {
			lines = append(lines, fmt.Sprintf(`{"key":%q,"msg":%s,"expire":%d}`, ks[0], m, expire))
		} else {
			kj, _ := json.Marshal(ks)
			lines = append(lines, fmt.Sprintf(`{"keys":%s,"msg":%s,"expire":%d}`, kj, m, expire))
		}
		for _, k := range ks {
			want[k] = append(want[k], msg)
			if expire > 0 {
				wantStored[k] = append(wantStored[k], msg)
			}
		}
	}
	n := 0
	for round := range 6 {
		for _, k := range keys {
			add(batchMsg{k, n}, round%2*600, k)
			n++
		}
	}
	add(batchMsg{"all", n}, 600, append(slices.Clone(keys), offlineKeys...)...)
	n++
	for _, k := range offlineKeys {
		add(batchMsg{k, n}, 600, k)
		n++
	}
	a := httpDo(t, "POST", "http://"+w.Admin+"/1/admin/push/batch", "application/x-ndjson", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if a.Status != 200 || a.Body != `{"ret":0}` {
		t.Fatalf("push/batch: %d %s", a.Status, a.Body)
	}

	// Batch 2, a JSON array: one more push per online key.
	lines = nil
	for _, k := range keys {
		add(batchMsg{k, n}, 0, k)
		n++
	}
	a = httpDo(t, "POST", "http://"+w.Admin+"/1/admin/push/batch", "application/json", strings.NewReader("["+strings.Join(lines, ",\n")+"]"))
	if a.Status != 200 || a.Body != `{"ret":0}` {
		t.Fatalf("push/batch (array): %d %s", a.Status, a.Body)
	}

	delivered := map[string][]api.Message{}
	for _, k := range keys {
		s := subs[k]
		var got []batchMsg
		last := int64(0)
		for range want[k] {
			m := s.next(t)
			var bm batchMsg
			if err := json.Unmarshal(m.Msg, &bm); err != nil {
				t.Fatalf("key %s: message %s: %v", k, m.Msg, err)
			}
			if m.MsgId <= last {
				t.Fatalf("key %s: mid %d after %d", k, m.MsgId, last)
			}
			last = m.MsgId
			got = append(got, bm)
			delivered[k] = append(delivered[k], m)
		}
		if !slices.Equal(got, want[k]) {
			t.Fatalf("key %s got\n%v\nwant\n%v", k, got, want[k])
		}
		noMore(t, s, k)
	}

	// What was stored comes back from /1/msg/get under the mids delivered.
	for _, k := range keys {
		var wantMids []int64
		for _, m := range delivered[k] {
			var bm batchMsg
			json.Unmarshal(m.Msg, &bm)
			if slices.Contains(wantStored[k], bm) {
				wantMids = append(wantMids, m.MsgId)
			}
		}
		msgs, _ := offline(t, w, k, 0)
		var gotMids []int64
		for _, m := range msgs {
			gotMids = append(gotMids, m.MsgId)
		}
		if !slices.Equal(gotMids, wantMids) {
			t.Errorf("key %s: stored mids %v, want the delivered %v", k, gotMids, wantMids)
		}
	}
	for _, k := range offlineKeys {
		msgs, a := offline(t, w, k, 0)
		var got []batchMsg
		for _, m := range msgs {
			var bm batchMsg
			json.Unmarshal(m.Msg, &bm)
			got = append(got, bm)
		}
		if !slices.Equal(got, wantStored[k]) {
			t.Errorf("offline key %s: stored %v (%s), want %v", k, got, a.Body, wantStored[k])
		}
	}

	// A malformed batch pushes nothing and names its entry.
	bad := fmt.Sprintf(`{"key":%q,"msg":"x","expire":0}`+"\n"+`{"key":%q,"msg":"y"}`, keys[0], keys[0])
	a = httpPost(t, "http://"+w.Admin+"/1/admin/push/batch", bad)
	if a.ret(t) != api.CodeParamErr || !strings.Contains(a.Body, `"index":1`) {
		t.Fatalf("malformed batch: %s", a.Body)
	}
	noMore(t, subs[keys[0]], keys[0])
}

// noMore fails if s receives anything within a short wait: every push was
// delivered once.
func noMore(t *testing.T, s *tcpSub, key string) {
	t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	kind, body, err := api.ReadTCPFrame(s.r, nil)
	var ne net.Error
	if err == nil {
		t.Fatalf("key %s: one more frame (%d) %q after all its pushes", key, kind, body)
	}
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("key %s: %v", key, err)
	}
	// The bufio.Reader keeps the timeout; later reads need a fresh one.
	s.r.Reset(s.conn)
}
