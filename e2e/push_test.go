package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
	"gopush/ketama"
)

// subscribeWhenReady subscribes key on addr, retrying while comet answers
// -n (it has not yet been told the ring that gives it the key).
func subscribeWhenReady(t *testing.T, proto int, addr, key, token string) subscriber {
	t.Helper()
	var sub subscriber
	waitFor(t, fmt.Sprintf("comet %s to accept key %s", addr, key), func() bool {
		if proto == 1 {
			s, reply := subscribeWS(t, addr, key, token)
			if s != nil {
				sub = s
				return true
			}
			if reply != "-n" {
				t.Fatalf("websocket subscribe %s: %q", key, reply)
			}
			return false
		}
		s, reply := subscribeTCP(t, addr, key, token)
		if s != nil {
			sub = s
			return true
		}
		if reply != "-n" {
			t.Fatalf("tcp subscribe %s: %q", key, reply)
		}
		return false
	})
	t.Cleanup(sub.close)
	return sub
}

// waitRouted waits until web routes key (proto 2) to a comet with ret 0 and
// returns the address.
func waitRouted(t *testing.T, w *testenv.WebNode, key string, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("web to route %s to %s", key, want), func() bool {
		got, code := serverGet(t, w, key, 2)
		return code == 0 && got == want
	})
}

func TestClusterEndToEnd(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage()
	n1 := c.StartComet("node1", 1)
	n2 := c.StartComet("node2", 2)
	w := c.StartWeb()
	byNode := map[string]*testenv.CometNode{"node1": n1, "node2": n2}
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 2})
	prefix := testenv.Unique(t) + "-"

	// Every key goes where the 1.0.5 ring says.
	waitFor(t, "web to see both comets", func() bool {
		k1, k2 := keyOn(ring, "node1", prefix), keyOn(ring, "node2", prefix)
		a, c1 := serverGet(t, w, k1, 2)
		b, c2 := serverGet(t, w, k2, 2)
		return c1 == 0 && c2 == 0 && a == n1.TCP && b == n2.TCP
	})
	for i := range 200 {
		key := prefix + strconv.Itoa(i)
		want := byNode[ring.Get(key)]
		if got, code := serverGet(t, w, key, 2); code != 0 || got != want.TCP {
			t.Fatalf("key %s: tcp %q (ret %d), want %s", key, got, code, want.TCP)
		}
		if got, code := serverGet(t, w, key, 1); code != 0 || got != want.WS {
			t.Fatalf("key %s: ws %q (ret %d), want %s", key, got, code, want.WS)
		}
	}

	// Subscribers on both comets, over TCP and WebSocket.
	type sub struct {
		key string
		s   subscriber
	}
	var subs []sub
	for _, node := range []string{"node1", "node2"} {
		for _, proto := range []int{1, 2} {
			key := keyOn(ring, node, fmt.Sprintf("%ssub-%d-", prefix, proto))
			addr := byNode[node].TCP
			if proto == 1 {
				addr = byNode[node].WS
			}
			subs = append(subs, sub{key, subscribeWhenReady(t, proto, addr, key, "")})
		}
	}
	// push/private, stored for 10 minutes.
	online := map[string][]api.Message{}
	for i, s := range subs {
		msg := fmt.Sprintf(`{"one":%d}`, i)
		if a := push(t, w, s.key, 600, msg); a.Status != 200 || a.Body != `{"ret":0}` {
			t.Fatalf("push/private %s: %d %s", s.key, a.Status, a.Body)
		}
		m := s.s.next(t)
		if string(m.Msg) != msg || m.GroupId != 0 || m.MsgId == 0 {
			t.Fatalf("subscriber %s got %+v, want %s", s.key, m, msg)
		}
		online[s.key] = append(online[s.key], m)
	}
	// push/mprivate to all of them at once.
	keys := make([]string, len(subs))
	for i, s := range subs {
		keys[i] = s.key
	}
	if a := mpush(t, w, keys, 600, `{"all":true}`); a.Status != 200 || a.Body != `{"ret":0}` {
		t.Fatalf("push/mprivate: %d %s", a.Status, a.Body)
	}
	mids := map[int64]bool{}
	for _, s := range subs {
		m := s.s.next(t)
		if string(m.Msg) != `{"all":true}` {
			t.Fatalf("subscriber %s got %s from mprivate", s.key, m.Msg)
		}
		if prev := online[s.key][0].MsgId; m.MsgId <= prev {
			t.Fatalf("subscriber %s: mid %d not after %d", s.key, m.MsgId, prev)
		}
		mids[m.MsgId] = true
		online[s.key] = append(online[s.key], m)
	}
	if len(mids) != len(subs) {
		t.Fatalf("keys pushed together share mids: %v", mids)
	}

	// Offline: the same messages, same mids, in order; after m only newer.
	for _, s := range subs {
		got, _ := offline(t, w, s.key, 0)
		if !sameMessages(got, online[s.key]) {
			t.Fatalf("offline %s: %+v, want %+v", s.key, got, online[s.key])
		}
		got, _ = offline(t, w, s.key, online[s.key][0].MsgId)
		if !sameMessages(got, online[s.key][1:]) {
			t.Fatalf("offline %s after first mid: %+v", s.key, got)
		}
		if _, a := offline(t, w, s.key, online[s.key][1].MsgId); a.Body != `{"ret":0}` {
			t.Fatalf("offline %s after last mid: %s", s.key, a.Body)
		}
	}
	// msg/del empties them.
	for _, s := range subs {
		if a := httpPost(t, "http://"+w.Admin+"/1/admin/msg/del", "key="+s.key); a.Body != `{"ret":0}` {
			t.Fatalf("msg/del %s: %s", s.key, a.Body)
		}
		if _, a := offline(t, w, s.key, 0); a.Body != `{"ret":0}` {
			t.Fatalf("offline %s after del: %s", s.key, a.Body)
		}
	}
	// expire 0: delivered online, not stored.
	if a := push(t, w, subs[0].key, 0, `{"volatile":1}`); a.Body != `{"ret":0}` {
		t.Fatalf("push expire 0: %s", a.Body)
	}
	if m := subs[0].s.next(t); string(m.Msg) != `{"volatile":1}` {
		t.Fatalf("got %s", m.Msg)
	}
	if _, a := offline(t, w, subs[0].key, 0); a.Body != `{"ret":0}` {
		t.Fatalf("expire 0 was stored: %s", a.Body)
	}

	// time/get is within a second of now.
	a := httpGet(t, "http://"+w.HTTP+"/1/time/get")
	data, err := api.DecodeReply([]byte(a.Body))
	var tr api.TimeData
	if err == nil {
		err = json.Unmarshal(data, &tr)
	}
	if err != nil {
		t.Fatalf("time/get: %s (%v)", a.Body, err)
	}
	if d := time.Since(time.Unix(0, tr.TimeID*100)); d < -time.Second || d > time.Second {
		t.Fatalf("time/get is %v off", d)
	}
}

func sameMessages(a, b []api.Message) bool {
	return slices.EqualFunc(a, b, func(x, y api.Message) bool {
		return x.MsgId == y.MsgId && x.GroupId == y.GroupId && string(x.Msg) == string(y.Msg)
	})
}

// keyOn returns the first key prefix+N that ring gives node.
func keyOn(ring *ketama.Ring, node, prefix string) string {
	for i := 0; ; i++ {
		if k := prefix + strconv.Itoa(i); ring.Get(k) == node {
			return k
		}
	}
}

func TestClusterPrunesKilledComet(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage()
	n1 := c.StartComet("node1", 1)
	n2 := c.StartComet("node2", 1)
	w := c.StartWeb()
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 1})
	prefix := testenv.Unique(t) + "-"
	key := keyOn(ring, "node2", prefix)
	waitRouted(t, w, key, n2.TCP)
	sub := subscribeWhenReady(t, 2, n2.TCP, key, "")
	if a := push(t, w, key, 600, `{"before":1}`); a.Body != `{"ret":0}` {
		t.Fatalf("push: %s", a.Body)
	}
	before := sub.next(t)

	n2.Kill() // SIGKILL: no goodbye; its ephemeral child lives until the session times out
	killed := time.Now()
	waitFor(t, "web to prune node2", func() bool {
		ok, _, err := c.ZKConn.Exists(c.CometPath + "/node2")
		return err == nil && !ok
	})
	took := time.Since(killed)
	t.Logf("node2 pruned %v after SIGKILL (session timeout 4s; %d failed pings %v apart)",
		took.Round(10*time.Millisecond), testenv.PruneFailures, testenv.PruneInterval)
	// The window: the session timeout plus the failed rounds, with a wide
	// margin for a slow machine.
	if window := 4*time.Second + testenv.PruneFailures*testenv.PruneInterval; took > window+10*time.Second {
		t.Fatalf("pruned after %v, far outside the %v window", took, window)
	}
	// web logs the prune just after the delete the test saw.
	waitFor(t, "web to log the prune", func() bool { return strings.Contains(w.Log(), "pruned dead comet node") })
	waitRouted(t, w, key, n1.TCP)
	sub2 := subscribeWhenReady(t, 2, n1.TCP, key, "")
	if a := push(t, w, key, 600, `{"after":1}`); a.Body != `{"ret":0}` {
		t.Fatalf("push after prune: %s", a.Body)
	}
	after := sub2.next(t)
	if string(after.Msg) != `{"after":1}` || after.MsgId <= before.MsgId {
		t.Fatalf("after the move got %+v (before: %+v)", after, before)
	}
	// The message stored before the kill is still there.
	got, _ := offline(t, w, key, 0)
	if len(got) != 2 || got[0].MsgId != before.MsgId || got[1].MsgId != after.MsgId {
		t.Fatalf("offline after the move: %+v", got)
	}
}

func TestClusterStandbyTakesOverWithoutPrune(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage()
	first := c.StartComet("node1", 1)
	// A second node that answers throughout, so that web is not "cut off
	// from every comet" (which would keep it from pruning anything anyway).
	c.StartComet("node2", 1)
	w := c.StartWeb()
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 1})
	key := keyOn(ring, "node1", testenv.Unique(t)+"-")
	waitRouted(t, w, key, first.TCP)
	standby := c.StartComet("node1", 1)
	waitFor(t, "the standby to register", func() bool {
		children, _, err := c.ZKConn.Children(c.CometPath + "/node1")
		return err == nil && len(children) == 2
	})
	if got, _ := serverGet(t, w, key, 2); got != first.TCP {
		t.Fatalf("the standby serves before the first one died: %s", got)
	}
	first.Kill()
	// The standby serves once the killed one's session times out.
	waitRouted(t, w, key, standby.TCP)
	sub := subscribeWhenReady(t, 1, standby.WS, key, "")
	if a := push(t, w, key, 0, `{"standby":1}`); a.Body != `{"ret":0}` {
		t.Fatalf("push to standby: %s", a.Body)
	}
	if m := sub.next(t); string(m.Msg) != `{"standby":1}` {
		t.Fatalf("got %s", m.Msg)
	}
	if strings.Contains(w.Log(), "pruned dead comet node") {
		t.Fatal("web pruned node1 although a standby took over")
	}
}

func TestClusterTokenAuth(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage()
	n1 := c.StartComet("node1", 1, func(cfg *conf.Comet) { cfg.Channel.Auth = true })
	w := c.StartWeb()
	key := testenv.Unique(t)
	waitRouted(t, w, key, n1.TCP)
	// No token added: -a, over TCP and WebSocket.
	if s, reply := subscribeTCP(t, n1.TCP, key, "secret"); s != nil || reply != "-a" {
		t.Fatalf("tcp subscribe without a token: %q", reply)
	}
	if s, reply := subscribeWS(t, n1.WS, key, "secret"); s != nil || reply != "-a" {
		t.Fatalf("websocket subscribe without a token: %q", reply)
	}
	// token/add is not on the public port by default.
	if a := httpGet(t, "http://"+w.HTTP+"/1/token/add?k="+key+"&t=secret"); a.Status != 404 {
		t.Fatalf("public token/add: %d %s", a.Status, a.Body)
	}
	if a := httpGet(t, "http://"+w.Admin+"/1/token/add?k="+key+"&t=secret"); a.Body != `{"ret":0}` {
		t.Fatalf("token/add: %s", a.Body)
	}
	sub := mustSubscribe(t, 2, n1.TCP, key, "secret")
	defer sub.close()
	ws := mustSubscribe(t, 1, n1.WS, key, "secret")
	defer ws.close()
	if s, reply := subscribeTCP(t, n1.TCP, key, "wrong"); s != nil || reply != "-a" {
		t.Fatalf("tcp subscribe with a wrong token: %q", reply)
	}
	if a := push(t, w, key, 0, `{"auth":1}`); a.Body != `{"ret":0}` {
		t.Fatalf("push: %s", a.Body)
	}
	for _, s := range []subscriber{sub, ws} {
		if m := s.next(t); string(m.Msg) != `{"auth":1}` {
			t.Fatalf("got %s", m.Msg)
		}
	}
}

// TestClusterLateWebMigratesComets: comets that started before any web
// (the first one knows only itself) end up with the full map once a web
// starts: the first comet then refuses (-n) the keys of the second.
func TestClusterLateWebMigratesComets(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage()
	n1 := c.StartComet("node1", 1)
	// node1 listens before it reads the ring; node2 must come after.
	waitFor(t, "node1 to have read its ring", func() bool { return strings.Contains(n1.Log(), "comet started") })
	c.StartComet("node2", 1)
	ring := ketama.FromWeights(ketama.DefaultBase, map[string]int{"node1": 1, "node2": 1})
	key := keyOn(ring, "node2", testenv.Unique(t)+"-")
	// node1 read the ring before node2 existed: it takes every key.
	if s, reply := subscribeTCP(t, n1.TCP, key, ""); s == nil {
		t.Fatalf("node1 before any web: %q", reply)
	} else {
		s.close()
	}
	c.StartWeb()
	waitFor(t, "node1 to refuse node2's key after the web's Migrate", func() bool {
		s, reply := subscribeTCP(t, n1.TCP, key, "")
		if s != nil {
			s.close()
			return false
		}
		return reply == "-n"
	})
}
