package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
	"gopush/ketama"
)

// Rooms and public broadcast (issue 8, docs/rooms.md) through the real
// daemons.

// roomMessage returns the changes a message node of these tests gets: the
// given Redis shards ("name:weight" → host:port), rooms of at most roomMax
// keys, and a short dial timeout so that a stopped shard fails fast.
func roomMessage(shards map[string]string, roomMax int) func(*conf.Message) {
	return func(cfg *conf.Message) {
		cfg.Redis.Source = map[string]string{}
		for name, addr := range shards {
			cfg.Redis.Source[name] = "tcp@" + addr
		}
		cfg.Room.Max = roomMax
		cfg.Public.Store = 20
		cfg.Redis.DialTimeout = conf.Duration(time.Second)
	}
}

// adminPost posts body to an admin path of w and returns the answer.
func adminPost(t *testing.T, w *testenv.WebNode, pathQuery, body string) answer {
	t.Helper()
	return httpPost(t, "http://"+w.Admin+pathQuery, body)
}

func keysBody(keys []string) string {
	b, _ := json.Marshal(map[string]string{"k": strings.Join(keys, ",")})
	return string(b)
}

// roomKeys returns room/keys of rid.
func roomKeys(t *testing.T, w *testenv.WebNode, rid string) []string {
	t.Helper()
	a := httpGet(t, "http://"+w.Admin+"/1/admin/room/keys?rid="+url.QueryEscape(rid))
	data, err := api.DecodeReply([]byte(a.Body))
	var d struct{ Keys []string }
	if err == nil && data != nil {
		err = json.Unmarshal(data, &d)
	}
	if err != nil || a.Status != 200 {
		t.Fatalf("room/keys %s: %d %s (%v)", rid, a.Status, a.Body, err)
	}
	return d.Keys
}

func expectBody(t *testing.T, what string, a answer, want string) {
	t.Helper()
	if a.Status != 200 || a.Body != want {
		t.Fatalf("%s: %d %s, want 200 %s", what, a.Status, a.Body, want)
	}
}

// TestClusterRooms: 1 000 keys in a room spread over two comets; online
// subscribers on both get push/room, offline keys find it in msg/get;
// leave, keys and del do what they say; the room's set sits on the Redis
// shard the ring picks for the room id; every bad input is refused; a
// shard that is down fails only its own rooms.
func TestClusterRooms(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	shardA, shardB := testenv.StartRedis(t), testenv.StartRedis(t)
	c.StartMessage(roomMessage(map[string]string{"a:1": shardA.Addr(), "b:1": shardB.Addr()}, 1000))
	n1 := c.StartComet("node1", 1)
	n2 := c.StartComet("node2", 1)
	w := c.StartWeb()
	byNode := map[string]*testenv.CometNode{"node1": n1, "node2": n2}
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 1})
	shardRing := ketama.FromWeights(ketama.DefaultBase, map[string]int{"a": 1, "b": 1})
	prefix := testenv.Unique(t) + "-"
	rid := "room." + testenv.Unique(t)

	keys := make([]string, 1000)
	perNode := map[string]int{}
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%04d", prefix, i)
		perNode[ring.Get(keys[i])]++
	}
	if perNode["node1"] == 0 || perNode["node2"] == 0 {
		t.Fatalf("keys per comet %v", perNode)
	}
	waitFor(t, "web to see both comets", func() bool {
		_, c1 := serverGet(t, w, keyOn(ring, "node1", prefix), 2)
		_, c2 := serverGet(t, w, keyOn(ring, "node2", prefix), 2)
		return c1 == 0 && c2 == 0
	})

	// Online subscribers: on each comet one TCP and one WebSocket key of
	// the room.
	type sub struct {
		key string
		s   subscriber
	}
	var subs []sub
	online := map[string]bool{}
	for _, node := range []string{"node1", "node2"} {
		found := 0
		for _, k := range keys {
			if ring.Get(k) != node || found == 2 {
				continue
			}
			proto := 2 - found // TCP, then WebSocket
			addr := byNode[node].TCP
			if proto == 1 {
				addr = byNode[node].WS
			}
			subs = append(subs, sub{k, subscribeWhenReady(t, proto, addr, k, "")})
			online[k] = true
			found++
		}
	}

	// Join in two calls (the second repeats some keys).
	expectBody(t, "join 600", adminPost(t, w, "/1/admin/room/join?rid="+rid, keysBody(keys[:600])), `{"ret":0}`)
	expectBody(t, "join 500", adminPost(t, w, "/1/admin/room/join?rid="+rid, keysBody(keys[500:])), `{"ret":0}`)
	sorted := slices.Sorted(slices.Values(keys))
	if got := roomKeys(t, w, rid); !slices.Equal(got, sorted) {
		t.Fatalf("room/keys holds %d keys, want the 1000 joined", len(got))
	}
	// The set is on the shard the ring over the shard names gives rid, in
	// the room database (redis.roomdb, docs/security.md).
	want := shardRing.Get(rid)
	for name, s := range map[string]*testenv.RedisServer{"a": shardA, "b": shardB} {
		conn, err := redis.Dial("tcp", s.Addr(), redis.DialDatabase(conf.DefaultMessage().Redis.RoomDB))
		if err != nil {
			t.Fatal(err)
		}
		n, err := redis.Int(conn.Do("SCARD", c.RoomPrefix+rid))
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if (name == want && n != 1000) || (name != want && n != 0) {
			t.Fatalf("shard %s holds %d keys of the room; the ring says shard %s", name, n, want)
		}
	}

	// push/room, stored: every online subscriber gets it once; offline
	// keys find it with the same message.
	expectBody(t, "push/room", adminPost(t, w, "/1/admin/push/room?expire=600&rid="+rid, `{"room":1}`), `{"ret":0}`)
	delivered := map[string]api.Message{}
	for _, s := range subs {
		m := s.s.next(t)
		if string(m.Msg) != `{"room":1}` || m.GroupId != 0 || m.MsgId == 0 {
			t.Fatalf("subscriber %s got %+v", s.key, m)
		}
		delivered[s.key] = m
	}
	for i, k := range keys {
		if i%97 != 0 && !online[k] {
			continue
		}
		got, _ := offline(t, w, k, 0)
		if len(got) != 1 || string(got[0].Msg) != `{"room":1}` || got[0].GroupId != 0 {
			t.Fatalf("offline %s: %+v", k, got)
		}
		if m, ok := delivered[k]; ok && m.MsgId != got[0].MsgId {
			t.Fatalf("offline %s: mid %d, delivered %d", k, got[0].MsgId, m.MsgId)
		}
	}

	// Leave: the first subscriber and 100 more keys go.
	left := append([]string{subs[0].key}, keys[900:]...)
	expectBody(t, "leave", adminPost(t, w, "/1/admin/room/leave?rid="+rid, keysBody(left)), `{"ret":0}`)
	gone := map[string]bool{}
	for _, k := range left {
		gone[k] = true
	}
	var remain []string
	for _, k := range sorted {
		if !gone[k] {
			remain = append(remain, k)
		}
	}
	if got := roomKeys(t, w, rid); !slices.Equal(got, remain) {
		t.Fatalf("after leave room/keys holds %d keys, want %d", len(got), len(remain))
	}
	// push/room now skips it: its next message is the private one after.
	expectBody(t, "push/room 2", adminPost(t, w, "/1/admin/push/room?expire=0&rid="+rid, `{"room":2}`), `{"ret":0}`)
	for _, s := range subs[1:] {
		if m := s.s.next(t); string(m.Msg) != `{"room":2}` {
			t.Fatalf("subscriber %s got %s, want the second room push", s.key, m.Msg)
		}
	}
	expectBody(t, "marker", push(t, w, subs[0].key, 0, `{"marker":1}`), `{"ret":0}`)
	if m := subs[0].s.next(t); string(m.Msg) != `{"marker":1}` {
		t.Fatalf("a key that left the room got %s", m.Msg)
	}

	// Over the limit (room.max 1000): refused with 1002, nothing joined.
	extra := make([]string, 0, 200)
	for i := range 200 {
		extra = append(extra, fmt.Sprintf("%sextra-%d", prefix, i))
	}
	expectBody(t, "join beyond room.max", adminPost(t, w, "/1/admin/room/join?rid="+rid, keysBody(extra)), `{"ret":1002}`)
	if got := roomKeys(t, w, rid); len(got) != len(remain) {
		t.Fatalf("a refused join changed the room: %d keys, want %d", len(got), len(remain))
	}
	expectBody(t, "join up to room.max", adminPost(t, w, "/1/admin/room/join?rid="+rid, keysBody(extra[:1000-len(remain)])), `{"ret":0}`)

	// Del empties it; push/room to it then delivers nothing, ret 0.
	expectBody(t, "room/del", adminPost(t, w, "/1/admin/room/del?rid="+rid, ""), `{"ret":0}`)
	if got := roomKeys(t, w, rid); len(got) != 0 {
		t.Fatalf("after del room/keys holds %d keys", len(got))
	}
	expectBody(t, "push/room to a deleted room", adminPost(t, w, "/1/admin/push/room?expire=600&rid="+rid, `{"room":3}`), `{"ret":0}`)
	expectBody(t, "push/room to a room never made", adminPost(t, w, "/1/admin/push/room?expire=600&rid=never."+rid, `{"room":3}`), `{"ret":0}`)
	for _, s := range subs[1:] {
		expectBody(t, "marker", push(t, w, s.key, 0, `{"marker":2}`), `{"ret":0}`)
		if m := s.s.next(t); string(m.Msg) != `{"marker":2}` {
			t.Fatalf("push/room to an empty room delivered %s to %s", m.Msg, s.key)
		}
	}

	// Bad input.
	const param = `{"ret":65534}`
	for _, c := range []struct{ name, pathQuery, body, want string }{
		{"join without rid", "/1/admin/room/join", `{"k":"a"}`, param},
		{"join with empty rid", "/1/admin/room/join?rid=", `{"k":"a"}`, param},
		{"join with a bad rid", "/1/admin/room/join?rid=a%2Fb", `{"k":"a"}`, param},
		{"join with a long rid", "/1/admin/room/join?rid=" + strings.Repeat("r", 65), `{"k":"a"}`, param},
		{"join with empty k", "/1/admin/room/join?rid=" + rid, `{"k":""}`, param},
		{"join with an empty key", "/1/admin/room/join?rid=" + rid, `{"k":"a,,b"}`, param},
		{"join with a body that is not JSON", "/1/admin/room/join?rid=" + rid, `k=a`, param},
		{"leave with empty k", "/1/admin/room/leave?rid=" + rid, `{}`, param},
		{"push/room with a body that is not JSON", "/1/admin/push/room?expire=0&rid=" + rid, `hello`, param},
		{"push/room without rid", "/1/admin/push/room?expire=0", `{}`, param},
		{"push/room without expire", "/1/admin/push/room?rid=" + rid, `{}`, param},
	} {
		expectBody(t, c.name, adminPost(t, w, c.pathQuery, c.body), c.want)
	}
	if a := httpGet(t, "http://"+w.Admin+"/1/admin/room/keys?rid=a%20b"); a.Body != param {
		t.Fatalf("room/keys with a bad rid: %s", a.Body)
	}
	if got := roomKeys(t, w, rid); len(got) != 0 {
		t.Fatalf("bad requests joined %v", got)
	}

	// A shard down: its rooms answer 65535, the other shard's rooms work.
	var onA, onB string
	for i := 0; onA == "" || onB == ""; i++ {
		r := fmt.Sprintf("shard.%s.%d", prefix[:8], i)
		if shardRing.Get(r) == "a" {
			onA = r
		} else {
			onB = r
		}
	}
	shardA.Stop()
	expectBody(t, "join on a stopped shard", adminPost(t, w, "/1/admin/room/join?rid="+onA, `{"k":"x"}`), `{"ret":65535}`)
	expectBody(t, "push/room on a stopped shard", adminPost(t, w, "/1/admin/push/room?expire=0&rid="+onA, `{}`), `{"ret":65535}`)
	expectBody(t, "join on the live shard", adminPost(t, w, "/1/admin/room/join?rid="+onB, `{"k":"x"}`), `{"ret":0}`)
	if got := roomKeys(t, w, onB); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("room on the live shard: %v", got)
	}
}

// publicAnswer is push/all's answer.
type publicAnswer struct {
	Ret  int
	Data struct {
		Mid int64
		FN  []string
	}
}

func pushAll(t *testing.T, w *testenv.WebNode, expire int, msg string) publicAnswer {
	t.Helper()
	a := httpPost(t, fmt.Sprintf("http://%s/1/admin/push/all?expire=%d", w.Admin, expire), msg)
	var r publicAnswer
	data, err := api.DecodeReply([]byte(a.Body))
	r.Ret = api.RetOf(err)
	if r.Ret == api.CodeOK && data != nil {
		err = json.Unmarshal(data, &r.Data)
	}
	if r.Ret < 0 || (r.Ret == api.CodeOK && err != nil) || a.Status != 200 {
		t.Fatalf("push/all: %d %s (%v)", a.Status, a.Body, err)
	}
	return r
}

// longSession makes a comet whose ZooKeeper session outlives a kill by far
// (so that web still routes to it after it died).
func longSession(cfg *conf.Comet) { cfg.ZooKeeper.Timeout = conf.Duration(30 * time.Second) }

// TestClusterPushAll: push/all reaches every TCP and WebSocket subscriber
// of two comets exactly once with gid 1 and one mid; with expire > 0 a
// client that comes later finds it through pm (/1/msg/get) and pmid
// (/msg/get); mids increase; a comet that died is named in fn while the
// other still delivers.
func TestClusterPushAll(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage(roomMessage(map[string]string{"a:1": testenv.Redis(t)}, 100))
	n1 := c.StartComet("node1", 1)
	n2 := c.StartComet("node2", 1, longSession)
	w := c.StartWeb(func(cfg *conf.Web) { cfg.Prune.Enable = false })
	byNode := map[string]*testenv.CometNode{"node1": n1, "node2": n2}
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 1})
	prefix := testenv.Unique(t) + "-"
	waitFor(t, "web to see both comets", func() bool {
		_, c1 := serverGet(t, w, keyOn(ring, "node1", prefix), 2)
		_, c2 := serverGet(t, w, keyOn(ring, "node2", prefix), 2)
		return c1 == 0 && c2 == 0
	})
	type sub struct {
		key, node string
		s         subscriber
	}
	var subs []sub
	for _, node := range []string{"node1", "node2"} {
		for i, proto := range []int{1, 1, 2, 2} {
			key := keyOn(ring, node, fmt.Sprintf("%s%d-", prefix, i))
			addr := byNode[node].TCP
			if proto == 1 {
				addr = byNode[node].WS
			}
			subs = append(subs, sub{key, node, subscribeWhenReady(t, proto, addr, key, "")})
		}
	}
	// A second connection of one key: each connection gets it once.
	subs = append(subs, sub{subs[0].key, "node1", subscribeWhenReady(t, 1, n1.WS, subs[0].key, "")})

	marker := func(what string) {
		t.Helper()
		seen := map[string]bool{}
		for _, s := range subs {
			if !seen[s.key] {
				expectBody(t, "marker", push(t, w, s.key, 0, `{"marker":"`+what+`"}`), `{"ret":0}`)
				seen[s.key] = true
			}
		}
		for _, s := range subs {
			if m := s.s.next(t); string(m.Msg) != `{"marker":"`+what+`"}` {
				t.Fatalf("%s: subscriber %s got %s, want the marker (a broadcast came twice?)", what, s.key, m.Msg)
			}
		}
	}

	// Volatile broadcast.
	r1 := pushAll(t, w, 0, `{"all":1}`)
	if r1.Ret != 0 || r1.Data.Mid == 0 || len(r1.Data.FN) != 0 {
		t.Fatalf("push/all: %+v", r1)
	}
	for _, s := range subs {
		m := s.s.next(t)
		if string(m.Msg) != `{"all":1}` || m.GroupId != 1 || m.MsgId != r1.Data.Mid {
			t.Fatalf("subscriber %s got %+v, want {\"all\":1} gid 1 mid %d", s.key, m, r1.Data.Mid)
		}
	}
	marker("after-1")

	// Kept broadcast.
	r2 := pushAll(t, w, 600, `{"all":2}`)
	if r2.Ret != 0 || r2.Data.Mid <= r1.Data.Mid {
		t.Fatalf("push/all kept: %+v (first mid %d)", r2, r1.Data.Mid)
	}
	for _, s := range subs {
		if m := s.s.next(t); string(m.Msg) != `{"all":2}` || m.GroupId != 1 || m.MsgId != r2.Data.Mid {
			t.Fatalf("subscriber %s got %+v", s.key, m)
		}
	}
	marker("after-2")
	r3 := pushAll(t, w, 600, `{"all":3}`)
	if r3.Data.Mid <= r2.Data.Mid {
		t.Fatalf("public mids do not increase: %d then %d", r2.Data.Mid, r3.Data.Mid)
	}
	for _, s := range subs {
		s.s.next(t)
	}

	// A client that comes later: pm / pmid.
	late := prefix + "late"
	a := httpGet(t, fmt.Sprintf("http://%s/1/msg/get?k=%s&m=0&pm=0", w.HTTP, url.QueryEscape(late)))
	msgs := func(a answer) api.MsgsData {
		t.Helper()
		data, err := api.DecodeReply([]byte(a.Body))
		var d api.MsgsData
		if err == nil {
			err = json.Unmarshal(data, &d)
		}
		if err != nil {
			t.Fatalf("msg/get pm: %s (%v)", a.Body, err)
		}
		return d
	}
	want := []api.Message{
		{Msg: json.RawMessage(`{"all":2}`), MsgId: r2.Data.Mid, GroupId: 1},
		{Msg: json.RawMessage(`{"all":3}`), MsgId: r3.Data.Mid, GroupId: 1},
	}
	if got := msgs(a); !sameMessages(got.PMsgs, want) || len(got.Msgs) != 0 {
		t.Fatalf("msg/get pm=0: %s", a.Body)
	}
	a = httpGet(t, fmt.Sprintf("http://%s/1/msg/get?k=%s&m=0&pm=%d", w.HTTP, url.QueryEscape(late), r2.Data.Mid))
	if got := msgs(a); !sameMessages(got.PMsgs, want[1:]) {
		t.Fatalf("msg/get pm=<first kept>: %s", a.Body)
	}
	a = httpGet(t, fmt.Sprintf("http://%s/msg/get?key=%s&mid=0&pmid=%d", w.HTTP, url.QueryEscape(late), r2.Data.Mid))
	wantOld := fmt.Sprintf(`{"ret":0,"msg":"ok","data":{"msgs":[],"pmsgs":["{\"msg\":\"{\\\"all\\\":3}\",\"mid\":%d,\"gid\":1}"]}}`, r3.Data.Mid)
	if a.Body != wantOld {
		t.Fatalf("old msg/get pmid:\ngot  %s\nwant %s", a.Body, wantOld)
	}
	if a := httpGet(t, fmt.Sprintf("http://%s/1/msg/get?k=%s&m=0", w.HTTP, url.QueryEscape(late))); a.Body != `{"ret":0}` {
		t.Fatalf("msg/get without pm: %s", a.Body)
	}

	// Bad input.
	for _, c := range []struct{ q, body string }{{"?expire=0", `not json`}, {"?expire=0", ``}, {"", `{}`}, {"?expire=-1", `{}`}} {
		expectBody(t, "push/all "+c.q+" "+c.body, httpPost(t, "http://"+w.Admin+"/1/admin/push/all"+c.q, c.body), `{"ret":65534}`)
	}
	expectBody(t, "msg/get with a bad pm", httpGet(t, fmt.Sprintf("http://%s/1/msg/get?k=%s&pm=x", w.HTTP, url.QueryEscape(late))), `{"ret":65534}`)
	marker("after-bad-input")

	// node2 dies: push/all names it in fn, node1's subscribers still get it.
	n2.Kill()
	r4 := pushAll(t, w, 0, `{"all":4}`)
	if r4.Ret != 0 || !slices.Equal(r4.Data.FN, []string{"node2"}) {
		t.Fatalf("push/all with node2 dead: %+v, want fn [node2]", r4)
	}
	for _, s := range subs {
		if s.node != "node1" {
			continue
		}
		if m := s.s.next(t); string(m.Msg) != `{"all":4}` || m.MsgId != r4.Data.Mid {
			t.Fatalf("subscriber %s on the live comet got %+v", s.key, m)
		}
	}
}
