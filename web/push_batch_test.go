package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/rpc"
	"slices"
	"strings"
	"testing"

	"gopush/api"
	"gopush/conf"
)

// batchAnswer is a decoded push/batch answer.
type batchAnswer struct {
	Ret  int             `json:"ret"`
	Data json.RawMessage `json:"data"`
}

func postBatch(t *testing.T, tw *testWeb, body string) (answer, batchAnswer, api.BatchAnswer) {
	t.Helper()
	a := post(t, tw.admin.URL+"/1/admin/push/batch", body)
	var ba batchAnswer
	if err := json.Unmarshal([]byte(a.body), &ba); err != nil {
		t.Fatalf("answer %q: %v", a.body, err)
	}
	var data api.BatchAnswer
	if ba.Ret == 0 && len(ba.Data) > 0 {
		if err := json.Unmarshal(ba.Data, &data); err != nil {
			t.Fatalf("data %s: %v", ba.Data, err)
		}
	}
	return a, ba, data
}

// keysOnNodes returns n keys the ring gives node, for each node asked.
func keysOnNodes(t *testing.T, tw *testWeb, prefix string, n int, nodes ...string) map[string][]string {
	t.Helper()
	view := tw.w.cluster.load()
	out := map[string][]string{}
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		node := view.ring.Get(k)
		if len(out[node]) < n {
			out[node] = append(out[node], k)
		}
		done := true
		for _, want := range nodes {
			if len(out[want]) < n {
				done = false
			}
		}
		if done {
			return out
		}
		if i > 100000 {
			t.Fatal("the ring gives no keys to some node")
		}
	}
}

// A batch of entries for keys on two comets makes exactly two PushBatch
// calls, one per comet, each with that comet's entries in request order
// (an entry whose keys span both comets is split between them, message
// and expire kept); the pushes a comet reports failed come back with their
// entry's index, key and reason.
func TestPushBatchOneCallPerComet(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1, "b": 1}, []string{"a", "b"}, nil)
	byNode := keysOnNodes(t, tw, "bk", 20, "a", "b")
	var lines []string
	want := map[string][]string{} // node → "key=msg/expire" in order
	for i := range 20 {
		for _, node := range []string{"a", "b"} {
			k := byNode[node][i]
			msg := fmt.Sprintf(`{"n":%d,"node":"%s"}`, i, node)
			lines = append(lines, fmt.Sprintf(`{"key":%q,"msg":%s,"expire":%d}`, k, msg, i%2*60))
			want[node] = append(want[node], fmt.Sprintf("%s=%s/%d", k, msg, i%2*60))
		}
	}
	// Entry 40: three keys over both comets.
	multi := []string{byNode["a"][0], byNode["b"][1], byNode["a"][2]}
	lines = append(lines, fmt.Sprintf(`{"keys":["%s","%s","%s"],"msg":"all","expire":600}`, multi[0], multi[1], multi[2]))
	want["a"] = append(want["a"], fmt.Sprintf(`%s,%s="all"/600`, multi[0], multi[2]))
	want["b"] = append(want["b"], fmt.Sprintf(`%s="all"/600`, multi[1]))
	tw.comets["b"].fn = func(method string, args, reply any) error {
		a := args.(*api.CometPushBatchArgs)
		// b could not store its first entry's key and the multi entry's.
		last := len(a.Entries) - 1
		reply.(*api.CometPushBatchResp).Failed = []api.BatchFailure{
			{Entry: 0, Key: a.Entries[0].Keys[0], Why: "not stored: disk full"},
			{Entry: last, Key: a.Entries[last].Keys[0], Why: "not stored: disk full"},
		}
		return nil
	}
	a, ba, data := postBatch(t, tw, strings.Join(lines, "\n")+"\n")
	if a.status != http.StatusOK || ba.Ret != 0 {
		t.Fatalf("answer %d %s", a.status, a.body)
	}
	for node, f := range tw.comets {
		calls := f.Calls()
		if len(calls) != 1 || calls[0].method != api.CometPushBatch {
			t.Fatalf("comet %s got %+v, want one PushBatch", node, calls)
		}
		args := calls[0].args.(*api.CometPushBatchArgs)
		var got []string
		for _, e := range args.Entries {
			got = append(got, fmt.Sprintf("%s=%s/%d", strings.Join(e.Keys, ","), e.Msg, e.Expire))
		}
		if !slices.Equal(got, want[node]) {
			t.Errorf("comet %s got entries\n%v\nwant\n%v", node, got, want[node])
		}
		if args.Deadline == 0 {
			t.Errorf("comet %s: the call carries no deadline", node)
		}
	}
	wantFailed := []api.BatchPush{
		{Index: 1, Key: byNode["b"][0], Why: "not stored: disk full"},
		{Index: 40, Key: multi[1], Why: "not stored: disk full"},
	}
	if !slices.Equal(data.Failed, wantFailed) || len(data.Stored) != 0 {
		t.Errorf("answer %s, want failed %+v", a.body, wantFailed)
	}

	// All delivered: {"ret":0} and nothing else, as a JSON array too.
	tw.comets["b"].fn = nil
	a, _, _ = postBatch(t, tw, `[{"key":"x","msg":1,"expire":0}, {"keys":["y","z"],"msg":[1,2],"expire":5}]`)
	if strings.TrimSpace(a.body) != `{"ret":0}` {
		t.Errorf("answer %s, want {\"ret\":0}", a.body)
	}
}

// noMethod is what a 1.0.5 node answers for a method it does not have.
func noMethod(method string) error { return rpc.ServerError("rpc: can't find method " + method) }

// A comet without PushBatch (1.0.5) gets one PushPrivate per push, in
// request order per key, and web remembers it; pushes whose comet node
// has no serving instance are kept through a message node when expire > 0
// (one SaveBatch; one SavePrivate each on a node without it) and listed as
// stored with their mid, and fail with expire 0.
func TestPushBatchFallbacks(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"old": 1, "dead": 1}, []string{"old"}, nil)
	byNode := keysOnNodes(t, tw, "fb", 3, "old", "dead")
	tw.comets["old"].fn = func(method string, args, reply any) error {
		if method == api.CometPushBatch {
			return noMethod(method)
		}
		return nil
	}
	old, dead := byNode["old"], byNode["dead"]
	body := fmt.Sprintf(`[{"key":%q,"msg":1,"expire":0},{"key":%q,"msg":2,"expire":60},{"key":%q,"msg":3,"expire":0},`+
		`{"keys":[%q,%q],"msg":4,"expire":60},{"key":%q,"msg":5,"expire":0}]`,
		old[0], dead[0], old[0], old[1], dead[1], dead[2])
	for round := range 2 {
		before := len(tw.comets["old"].Calls())
		a, ba, data := postBatch(t, tw, body)
		if ba.Ret != 0 {
			t.Fatalf("answer %s", a.body)
		}
		calls := tw.comets["old"].Calls()[before:]
		var pushed []string
		batches := 0
		for _, c := range calls {
			switch c.method {
			case api.CometPushBatch:
				batches++
			case api.CometPushPrivate:
				p := c.args.(*api.CometPushPrivateArgs)
				pushed = append(pushed, fmt.Sprintf("%s=%s", p.Key, p.Msg))
			}
		}
		if want := 1 - round; batches != want {
			t.Errorf("round %d: %d PushBatch calls, want %d (web remembers the comet has none)", round, batches, want)
		}
		slices.Sort(pushed) // lanes run in parallel; one key's pushes keep their order
		if want := []string{old[0] + "=1", old[0] + "=3", old[1] + "=4"}; !slices.Equal(pushed, want) {
			t.Errorf("round %d: PushPrivate calls %v, want %v", round, pushed, want)
		}
		if len(data.Failed) != 1 || data.Failed[0].Index != 4 || data.Failed[0].Key != dead[2] || !strings.Contains(data.Failed[0].Why, "no comet") {
			t.Errorf("round %d: failed %+v, want entry 4 (expire 0, no comet)", round, data.Failed)
		}
		if len(data.Stored) != 2 || data.Stored[0].Index != 1 || data.Stored[0].Key != dead[0] ||
			data.Stored[1].Index != 3 || data.Stored[1].Key != dead[1] || data.Stored[0].Mid <= 0 || data.Stored[1].Mid <= data.Stored[0].Mid {
			t.Errorf("round %d: stored %+v, want entries 1 and 3 under ascending mids", round, data.Stored)
		}
	}
	// The message node got one SaveBatch per batch, with the mids answered.
	msgCalls := tw.msgs.Calls()
	if len(msgCalls) != 2 || msgCalls[1].method != api.MessageSaveBatch {
		t.Fatalf("message node calls %+v, want one SaveBatch per batch", msgCalls)
	}
	es := msgCalls[1].args.(*api.MessageSaveBatchArgs).Entries
	if len(es) != 2 || es[0].Key != dead[0] || string(es[0].Msg) != "2" || es[0].Expire != 60 || es[1].Key != dead[1] {
		t.Errorf("SaveBatch entries %+v", es)
	}

	// A message node without SaveBatch: one SavePrivate per push.
	tw.msgs.fn = func(method string, args, reply any) error {
		if method == api.MessageSaveBatch {
			return noMethod(method)
		}
		return nil
	}
	_, _, data := postBatch(t, tw, body)
	if len(data.Stored) != 2 {
		t.Errorf("stored %+v with a 1.0.5 message node, want 2", data.Stored)
	}
	var saved []string
	for _, c := range tw.msgs.Calls()[2:] {
		if c.method == api.MessageSavePrivate {
			a := c.args.(*api.MessageSavePrivateArgs)
			saved = append(saved, a.Key)
		}
	}
	slices.Sort(saved)
	if want := slices.Sorted(slices.Values([]string{dead[0], dead[1]})); !slices.Equal(saved, want) {
		t.Errorf("SavePrivate calls for %v, want %v", saved, want)
	}

	// The message node failing too: those pushes fail, with both reasons.
	tw.msgs.fn = func(string, any, any) error { return fmt.Errorf("redis down") }
	_, _, data = postBatch(t, tw, body)
	if len(data.Stored) != 0 || len(data.Failed) != 3 || !strings.Contains(data.Failed[0].Why, "redis down") {
		t.Errorf("answer %+v, want 3 failed, 2 of them naming the storage failure", data)
	}
}

// Malformed batches are refused whole (65534, nothing pushed) with the
// index of the first bad entry; bounds on pushes, keys per entry and body
// size hold.
func TestPushBatchBadInput(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1}, []string{"a"}, func(c *conf.Web) {
		c.Admin.Batch.MaxEntries = 5
		c.Admin.Batch.MaxBody = 2048
		c.Admin.MaxKeys = 3
	})
	good := `{"key":"k","msg":1,"expire":0}`
	for _, c := range []struct {
		name, body string
		index      int // -1: no data
	}{
		{"empty body", ``, -1},
		{"white space", " \n ", -1},
		{"empty array", `[]`, -1},
		{"not an entry list", `"hello"`, -1},
		{"syntax error in a line", good + "\n" + good + "\n{\"key\":\"k\",\"msg\":1,\"expire\":0\n", 2},
		{"syntax error in the array", `[` + good + `,` + good + `,{"key":"k","msg":}]`, 2},
		{"array not closed", `[` + good, 1},
		{"after the array", `[` + good + `] x`, -1},
		{"not an object", `[` + good + `, 3]`, 1},
		{"unknown field", `[` + good + `,{"key":"k","msg":1,"expire":0,"expiry":5}]`, 1},
		{"no key", `[{"msg":1,"expire":0}]`, 0},
		{"key and keys", `[{"key":"a","keys":["b"],"msg":1,"expire":0}]`, 0},
		{"empty keys", `[{"keys":[],"msg":1,"expire":0}]`, 0},
		{"empty key in keys", `[{"keys":["a",""],"msg":1,"expire":0}]`, 0},
		{"long key", `[{"key":"` + strings.Repeat("k", 65) + `","msg":1,"expire":0}]`, 0},
		{"too many keys in an entry", `[{"keys":["a","b","c","d"],"msg":1,"expire":0}]`, 0},
		{"no msg", good + "\n" + `{"key":"k","expire":0}`, 1},
		{"no expire", `[{"key":"k","msg":1}]`, 0},
		{"negative expire", `[{"key":"k","msg":1,"expire":-1}]`, 0},
		{"fractional expire", `[{"key":"k","msg":1,"expire":1.5}]`, 0},
		{"expire too large", `[{"key":"k","msg":1,"expire":4294967296}]`, 0},
		{"too many pushes", `[` + good + `,{"keys":["a","b","c"],"msg":1,"expire":0},{"keys":["d","e"],"msg":1,"expire":0}]`, 2},
	} {
		a, ba, _ := postBatch(t, tw, c.body)
		if a.status != http.StatusOK || ba.Ret != api.CodeParamErr {
			t.Errorf("%s: %d %s, want 65534", c.name, a.status, a.body)
			continue
		}
		var refused api.BatchRefused
		switch {
		case c.index < 0 && len(ba.Data) != 0:
			t.Errorf("%s: %s, want no data", c.name, a.body)
		case c.index >= 0 && (json.Unmarshal(ba.Data, &refused) != nil || refused.Index != c.index || refused.Why == ""):
			t.Errorf("%s: %s, want index %d and a reason", c.name, a.body, c.index)
		}
	}
	// The example of docs/protocol.md §3.11, byte for byte.
	ex := post(t, tw.admin.URL+"/1/admin/push/batch", `[{"key":"alice","msg":1,"expire":0},{"key":"bob","msg":2}]`)
	if want := `{"ret":65534,"data":{"index":1,"why":"expire is missing (whole seconds, 0 or more; 0: deliver now, keep nothing)"}}`; strings.TrimSpace(ex.body) != want {
		t.Errorf("answer %s, want %s", ex.body, want)
	}
	// Over admin.batch.maxbody: 413 and 65534.
	big := "[" + strings.Repeat(good+",", 2048/len(good)) + good + "]"
	if a := post(t, tw.admin.URL+"/1/admin/push/batch", big); a.status != http.StatusRequestEntityTooLarge || a.ret(t) != api.CodeParamErr {
		t.Errorf("oversized body: %d %s", a.status, a.body)
	}
	if n := len(tw.comets["a"].Calls()); n != 0 {
		t.Errorf("refused batches made %d comet calls", n)
	}
	// At the limits it is taken: 5 pushes, 3 keys in an entry, a repeated
	// key in an entry counted once, padding and a final newline.
	a, ba, _ := postBatch(t, tw, "\n"+good+"\r\n\n"+`{"keys":["a","b","c","a"],"msg":{"x":[1]},"expire":"60"}`+"\n"+good+"\n")
	if ba.Ret != 0 {
		t.Fatalf("batch at the limits: %s", a.body)
	}
	calls := tw.comets["a"].Calls()
	if len(calls) != 1 || len(calls[0].args.(*api.CometPushBatchArgs).Entries) != 3 {
		t.Fatalf("calls %+v", calls)
	}
	if e := calls[0].args.(*api.CometPushBatchArgs).Entries[1]; !slices.Equal(e.Keys, []string{"a", "b", "c"}) || e.Expire != 60 || string(e.Msg) != `{"x":[1]}` {
		t.Errorf("entry 1 sent as %+v", e)
	}
	// GET is refused.
	if a := get(t, tw.admin.URL+"/1/admin/push/batch"); a.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", a.status)
	}
}
