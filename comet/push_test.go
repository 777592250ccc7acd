package comet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

// cometWithFake starts a comet and a fake message node it can store
// through, and waits until a stored push succeeds.
func cometWithFake(t *testing.T, old bool) (*Comet, *runningFake, *gobrpc.Client) {
	t.Helper()
	root := zkRoot(t)
	cfg := testConfig(t, root, "node1")
	fake := startFakeMessage(t, testenv.ZK(t), cfg.ZooKeeper.Message.Path, old)
	c := startComet(t, cfg)
	rc := rpcClient(t, c)
	waitStorage(t, rc)
	return c, fake, rc
}

// waitStorage pushes with expire > 0 to a key nobody holds until comet
// can store.
func waitStorage(t *testing.T, rc *gobrpc.Client) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, "comet to reach a message node", func() bool {
		var r int
		args := &api.CometPushPrivateArgs{Key: "warmup", Msg: json.RawMessage(`1`), Expire: 1}
		return rc.Call(context.Background(), api.CometPushPrivate, args, &r) == nil
	})
}

type delivered struct {
	Msg json.RawMessage `json:"msg"`
	Mid int64           `json:"mid"`
	Gid int             `json:"gid"`
}

func decode(t testing.TB, s string) delivered {
	t.Helper()
	var d delivered
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		t.Fatalf("message %q is not JSON: %v", s, err)
	}
	return d
}

func TestPushReachesEveryConnectionInItsFormExactBytes(t *testing.T) {
	t.Parallel()
	c, fake, rc := cometWithFake(t, false)
	tcpNew := subscribeTCP(t, c, "Terry-Mao", "", "1.0.5")
	tcpOld := subscribeTCP(t, c, "Terry-Mao", "", "")
	wsNew := subscribeWS(t, c, "Terry-Mao", "", "1.0.5")
	wsOld := subscribeWS(t, c, "Terry-Mao", "", "")
	wsRaw := dialRawWS(t, c.WSAddrs()[0], wsQuery("Terry-Mao", "30", "", "1"))
	wsRaw.expect("\x81\x04+h\r\n")
	_, before := fake.Saved()

	push(t, rc, "Terry-Mao", `{"test": 1}`, 0) // expire 0: deliver only
	got := tcpNew.readFrame()
	mid := decode(t, got).Mid
	ms := strconv.FormatInt(mid, 10)
	newJSON := `{"msg":{"test":1},"mid":` + ms + `,"gid":0}`
	oldJSON := `{"msg":"{\"test\":1}","mid":` + ms + `,"gid":0}`
	if got != newJSON {
		t.Fatalf("tcp new form: %q, want %q", got, newJSON)
	}
	tcpOld.expect(fmt.Sprintf("$%d\r\n%s\r\n", len(oldJSON), oldJSON))
	if got := wsNew.read(); got != newJSON {
		t.Fatalf("websocket new form: %q", got)
	}
	if got := wsOld.read(); got != oldJSON {
		t.Fatalf("websocket old form: %q", got)
	}
	wsRaw.expect("\x81" + string(rune(len(newJSON))) + newJSON)
	if _, after := fake.Saved(); len(after) != len(before) {
		t.Fatalf("expire 0 stored something: %v", after[len(before):])
	}
	now := time.Now().UnixNano() / 100
	if mid > now || mid < now-int64(time.Minute/100) {
		t.Fatalf("mid %d is not now in 100 ns units (%d)", mid, now)
	}

	// expire > 0: stored under the mid that was delivered.
	push(t, rc, "Terry-Mao", `{"test":2}`, 60)
	d := decode(t, tcpNew.readFrame())
	keys, mids := fake.Saved()
	if len(keys) == 0 || keys[len(keys)-1] != "Terry-Mao" || mids[len(mids)-1] != d.Mid {
		t.Fatalf("stored %v %v, delivered mid %d", keys, mids, d.Mid)
	}
	if d.Mid <= mid {
		t.Fatalf("second mid %d not above the first %d", d.Mid, mid)
	}
	if n := statInt(t, c, "type=message", "stored"); n < 1 {
		t.Fatalf("stat stored = %d", n)
	}
}

func TestPushFailsWhenStorageFails(t *testing.T) {
	t.Parallel()
	c, fake, rc := cometWithFake(t, false)
	cl := subscribeTCP(t, c, "k", "", "1")
	fake.mu.Lock()
	fake.fail = errors.New("disk full")
	fake.mu.Unlock()
	var r int
	err := rc.Call(context.Background(), api.CometPushPrivate,
		&api.CometPushPrivateArgs{Key: "k", Msg: json.RawMessage(`"lost"`), Expire: 60}, &r)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("push with a failing store: %v", err)
	}
	push(t, rc, "k", `"next"`, 0)
	// The failed message was not delivered: the next one comes first.
	if d := decode(t, cl.readFrame()); string(d.Msg) != `"next"` {
		t.Fatalf("got %s", d.Msg)
	}

	var resp api.CometPushPrivatesResp
	call(t, rc, api.CometPushPrivates, &api.CometPushPrivatesArgs{Keys: []string{"k", "j"}, Msg: json.RawMessage(`"x"`), Expire: 5}, &resp)
	slices.Sort(resp.FKeys)
	if !slices.Equal(resp.FKeys, []string{"j", "k"}) {
		t.Fatalf("FKeys %v, want [j k]", resp.FKeys)
	}
}

func TestPushRefusesBadArguments(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	rc := rpcClient(t, c)
	for name, a := range map[string]*api.CometPushPrivateArgs{
		"empty key": {Key: "", Msg: json.RawMessage(`1`)},
		"long key":  {Key: strings.Repeat("k", 65), Msg: json.RawMessage(`1`)},
		"not JSON":  {Key: "k", Msg: json.RawMessage(`{"a":`)},
		"no body":   {Key: "k"},
	} {
		var r int
		if err := rc.Call(context.Background(), api.CometPushPrivate, a, &r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var resp api.CometPushPrivatesResp
	err := rc.Call(context.Background(), api.CometPushPrivates, &api.CometPushPrivatesArgs{Keys: []string{"a"}, Msg: json.RawMessage(`x`)}, &resp)
	if err == nil {
		t.Error("PushPrivates accepted a body that is not JSON")
	}
	// Still serving.
	cl := subscribeTCP(t, c, "k", "", "1")
	push(t, rc, "k", `1`, 0)
	if d := decode(t, cl.readFrame()); string(d.Msg) != "1" {
		t.Fatalf("got %s", d.Msg)
	}
}

func TestPushPrivatesGivesEveryKeyItsOwnMid(t *testing.T) {
	t.Parallel()
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("old_message_node=%v", old), func(t *testing.T) {
			t.Parallel()
			c, fake, rc := cometWithFake(t, old)
			a := subscribeTCP(t, c, "a", "", "1")
			b := subscribeWS(t, c, "b", "", "1")
			_, before := fake.Saved()
			var resp api.CometPushPrivatesResp
			call(t, rc, api.CometPushPrivates, &api.CometPushPrivatesArgs{
				Keys: []string{"a", "b", "", "a", "refuse-me", "offline"}, Msg: json.RawMessage(`{"m":1}`), Expire: 60,
			}, &resp)
			slices.Sort(resp.FKeys)
			if !slices.Equal(resp.FKeys, []string{"", "refuse-me"}) {
				t.Fatalf("FKeys %q", resp.FKeys)
			}
			da, db := decode(t, a.readFrame()), decode(t, b.read())
			keys, mids := fake.Saved()
			stored := map[string]int64{}
			for i := len(before); i < len(keys); i++ {
				stored[keys[i]] = mids[i]
			}
			if len(stored) != 3 || stored["a"] != da.Mid || stored["b"] != db.Mid || stored["offline"] == 0 {
				t.Fatalf("stored %v; delivered a=%d b=%d", stored, da.Mid, db.Mid)
			}
			// Also with a 1.0.5 node, whose SavePrivates takes one mid
			// for all keys: comet then stores key by key (docs/protocol.md §9.8).
			if da.Mid == db.Mid || stored["offline"] == da.Mid || stored["offline"] == db.Mid {
				t.Fatalf("keys pushed together share a mid: %v", stored)
			}
			// "a" twice in the list is pushed once.
			push(t, rc, "a", `"after"`, 0)
			if d := decode(t, a.readFrame()); string(d.Msg) != `"after"` {
				t.Fatalf("a repeated key got the message twice: %s", d.Msg)
			}
		})
	}
}

func TestPushesToOneKeyArriveInMidOrder(t *testing.T) {
	t.Parallel()
	c, _, rc := cometWithFake(t, false)
	cl := subscribeTCP(t, c, "ordered", "", "1")
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var r int
				expire := uint(i % 2 * 60) // mix stored and unstored pushes
				args := &api.CometPushPrivateArgs{Key: "ordered", Msg: json.RawMessage(strconv.Itoa(w*1000 + i)), Expire: expire}
				if err := rc.Call(context.Background(), api.CometPushPrivate, args, &r); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	last := int64(0)
	for range workers * each {
		d := decode(t, cl.readFrame())
		if d.Mid <= last {
			t.Fatalf("mid %d arrived after %d", d.Mid, last)
		}
		last = d.Mid
	}
	wg.Wait()
}

func TestSlowClientIsClosedOthersUnaffected(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Msgbuf.Num = 32
	cfg.Channel.Sndbuf.Size = 4096
	c := startComet(t, cfg)
	rc := rpcClient(t, c)
	slow := subscribeTCP(t, c, "shared", "", "1") // never reads again
	_ = slow.nc.(*net.TCPConn).SetReadBuffer(4096)
	fast := subscribeTCP(t, c, "shared", "", "1")
	// Lockstep: each push waits until the fast client has its message, so
	// the fast client is never behind; the slow one reads nothing.
	const n = 400
	msg := `"` + strings.Repeat("x", 16<<10) + `"`
	for i := range n {
		push(t, rc, "shared", msg, 0)
		if d := decode(t, fast.readFrame()); len(d.Msg) != len(msg) {
			t.Fatalf("message %d: %d bytes", i, len(d.Msg))
		}
	}
	testenv.WaitFor(t, 10*time.Second, "the slow client to be closed", func() bool {
		return c.stats.slowClosed.Load() >= 1 && c.hub.count("shared") == 1
	})
	// What the slow client can still read ends with EOF.
	_ = slow.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := slow.br.Discard(1 << 30); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("slow client: %v, want EOF", err)
	}
	fast.write([]byte("h"))
	fast.expect("+h\r\n")
}

func TestRPCCloseForgetsTheKey(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	rc := rpcClient(t, c)
	tc := subscribeTCP(t, c, "gone", "", "1")
	wc := subscribeWS(t, c, "gone", "", "1")
	keep := subscribeTCP(t, c, "kept", "", "1")
	var r int
	call(t, rc, api.CometClose, "gone", &r)
	tc.expectClosed(5 * time.Second)
	wc.expectClosed(5 * time.Second)
	call(t, rc, api.CometPing, 0, &r)
	keep.write([]byte("h"))
	keep.expect("+h\r\n")
	testenv.WaitFor(t, 5*time.Second, "one channel left", func() bool { return c.hub.numChannels() == 1 })
}

// A push to many keys, each with two TCP connections and a WebSocket one
// opened one pass over the keys after the other (so that comet's sort by
// accept order interleaves the keys), reaches every connection once with
// its own key's message.
func TestPushPrivatesToManyConnectionsDeliversEachOnce(t *testing.T) {
	t.Parallel()
	c, _, rc := cometWithFake(t, false)
	const keys = fanOutMin/3 + 10
	names := make([]string, keys)
	tcp1, tcp2 := make([]*tcpClient, keys), make([]*tcpClient, keys)
	wss := make([]*wsClient, keys)
	for i := range names {
		names[i] = fmt.Sprintf("many-%d", i)
		tcp1[i] = subscribeTCP(t, c, names[i], "", "1")
	}
	for i := range names {
		wss[i] = subscribeWS(t, c, names[i], "", "1")
	}
	for i := range names {
		tcp2[i] = subscribeTCP(t, c, names[i], "", "1")
	}
	var resp api.CometPushPrivatesResp
	call(t, rc, api.CometPushPrivates, &api.CometPushPrivatesArgs{Keys: names, Msg: json.RawMessage(`{"to":"all of them"}`)}, &resp)
	if len(resp.FKeys) > 0 {
		t.Fatalf("failed keys: %q", resp.FKeys)
	}
	mids := make(map[int64]string, keys)
	for i := range names {
		d1, d2, dw := decode(t, tcp1[i].readFrame()), decode(t, tcp2[i].readFrame()), decode(t, wss[i].read())
		for _, d := range []delivered{d2, dw} {
			if d.Mid != d1.Mid || string(d.Msg) != `{"to":"all of them"}` || string(d1.Msg) != string(d.Msg) {
				t.Fatalf("key %s: connections got mid %d %s and %d %s", names[i], d1.Mid, d1.Msg, d.Mid, d.Msg)
			}
		}
		if other, dup := mids[d1.Mid]; dup {
			t.Fatalf("keys %s and %s got the same mid %d", other, names[i], d1.Mid)
		}
		mids[d1.Mid] = names[i]
	}
	// Nothing more came: the next frame on each is the next push.
	push(t, rc, names[0], `"next"`, 0)
	for _, d := range []delivered{decode(t, tcp1[0].readFrame()), decode(t, tcp2[0].readFrame()), decode(t, wss[0].read())} {
		if string(d.Msg) != `"next"` {
			t.Fatalf("a connection got a second frame: %s", d.Msg)
		}
	}
}
