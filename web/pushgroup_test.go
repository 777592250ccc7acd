package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/rpc"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopush/api"
	"gopush/comet"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/testenv"
	"gopush/membership"
	"gopush/message"
)

// queued waits until n pushes wait in g behind the call in flight.
func queued(t *testing.T, g *pushGroup, n int) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d pushes queued", n), func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.queue) == n
	})
}

// stalledComet makes tw's comet "a" hold the PushPrivate of key "lead"
// until release is closed; entered gets a value when it arrives. Other
// calls go to then. It returns the node.
func stalledComet(t *testing.T, tw *testWeb, then func(method string, args, reply any) error) (node *cometNode, entered chan struct{}, release func()) {
	t.Helper()
	entered = make(chan struct{}, 1)
	stall := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(stall) }) }
	t.Cleanup(release)
	tw.comets["a"].fn = func(method string, args, reply any) error {
		if a, ok := args.(*api.CometPushPrivateArgs); ok && a.Key == "lead" {
			entered <- struct{}{}
			<-stall
			return nil
		}
		if then != nil {
			return then(method, args, reply)
		}
		return nil
	}
	return tw.w.cluster.load().nodes["a"], entered, release
}

// postAsync posts a push/private and sends its answer's body.
func postAsync(t *testing.T, tw *testWeb, key string, expire int, msg string) chan string {
	done := make(chan string, 1)
	go func() {
		u := fmt.Sprintf("%s/1/admin/push/private?expire=%d&key=%s", tw.admin.URL, expire, url.QueryEscape(key))
		resp, err := http.Post(u, "application/json", strings.NewReader(msg))
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- strings.TrimSpace(string(b))
	}()
	return done
}

// Stored pushes made while a stored push to their comet is in flight go
// in one PushBatch, each key its own entry (a live push meanwhile goes at
// once, on its own); a push comet lists as failed in it fails alone, with
// the same answer as a PushPrivate comet refuses; the others are answered
// ok. A failed call fails every push it carried, and a call that was
// never sent lets each stored push be kept through a message node, as for
// a single call.
func TestPushGroupOutcomesPerPush(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1}, []string{"a"}, nil)
	refuse := func(method string, args, reply any) error {
		switch a := args.(type) {
		case *api.CometPushPrivateArgs:
			if a.Key == "bad" {
				return rpc.ServerError(`storing the message of key "bad": message node: redis down`)
			}
		case *api.CometPushBatchArgs:
			resp := reply.(*api.CometPushBatchResp)
			for i, e := range a.Entries {
				if e.Keys[0] == "bad" {
					resp.Failed = append(resp.Failed, api.BatchFailure{Entry: i, Key: "bad", Why: "not stored: message node: redis down"})
				}
			}
		}
		return nil
	}
	// Alone, the refused push's answer: what it was before grouping.
	tw.comets["a"].fn = refuse
	lone := post(t, tw.admin.URL+"/1/admin/push/private?expire=60&key=bad", `1`)
	if lone.body != `{"ret":65535}` {
		t.Fatalf("a refused lone push: %s", lone.body)
	}
	if calls := tw.comets["a"].Calls(); len(calls) != 1 || calls[0].method != api.CometPushPrivate {
		t.Fatalf("a lone push went as %+v, want one PushPrivate", calls)
	}

	node, entered, release := stalledComet(t, tw, refuse)
	stored := node.pushes().group(60)
	lead := postAsync(t, tw, "lead", 60, `0`)
	<-entered
	keys := []string{"k1", "k2", "bad", "k3", "k4"}
	answers := map[string]chan string{}
	for i, k := range keys {
		answers[k] = postAsync(t, tw, k, 60+i, fmt.Sprintf(`{"n":%d}`, i))
		queued(t, stored, i+1) // in this order
	}
	// A live push does not wait behind the stored ones.
	if a := <-postAsync(t, tw, "quick", 0, `1`); a != `{"ret":0}` {
		t.Errorf("live push while a stored call is in flight: %s", a)
	}
	release()
	if a := <-lead; a != `{"ret":0}` {
		t.Errorf("lead: %s", a)
	}
	for _, k := range keys {
		want := `{"ret":0}`
		if k == "bad" {
			want = lone.body
		}
		if a := <-answers[k]; a != want {
			t.Errorf("push to %s: %s, want %s", k, a, want)
		}
	}
	var methods []string
	var args *api.CometPushBatchArgs
	for _, c := range tw.comets["a"].Calls()[1:] {
		methods = append(methods, c.method)
		if a, ok := c.args.(*api.CometPushBatchArgs); ok {
			args = a
		}
	}
	if want := []string{api.CometPushPrivate, api.CometPushPrivate, api.CometPushBatch}; !slices.Equal(methods, want) {
		t.Fatalf("calls %v, want the lead's and the live push's PushPrivate, then one PushBatch", methods)
	}
	var got []string
	for _, e := range args.Entries {
		got = append(got, fmt.Sprintf("%s=%s/%d", strings.Join(e.Keys, ","), e.Msg, e.Expire))
	}
	if want := []string{`k1={"n":0}/60`, `k2={"n":1}/61`, `bad={"n":2}/62`, `k3={"n":3}/63`, `k4={"n":4}/64`}; !slices.Equal(got, want) {
		t.Errorf("PushBatch entries %v, want %v", got, want)
	}

	// The whole call failing after it was sent: every push fails. Never
	// sent: the stored pushes are kept through a message node.
	for _, expire := range []int{0, 60} {
		for _, callErr := range []error{gobrpc.ErrTimeout, gobrpc.ErrClientClosed} {
			node, entered, release = stalledComet(t, tw, func(method string, args, reply any) error {
				if method == api.CometPushBatch {
					return fmt.Errorf("gobrpc: %s: %w", method, callErr)
				}
				return nil
			})
			lead = postAsync(t, tw, "lead", expire, `0`)
			<-entered
			one := postAsync(t, tw, "one", expire, `1`)
			queued(t, node.pushes().group(uint(expire)), 1)
			two := postAsync(t, tw, "two", expire, `2`)
			queued(t, node.pushes().group(uint(expire)), 2)
			release()
			<-lead
			kept := expire > 0 && gobrpc.NotSent(callErr)
			for _, a := range []string{<-one, <-two} {
				if kept != strings.HasPrefix(a, `{"ret":0,"data":{"stored":true,"delivered":false,"mid":`) || !kept && a != `{"ret":65535}` {
					t.Errorf("expire %d, call failing with %v: %s", expire, callErr, a)
				}
			}
		}
	}
}

// A push whose caller's deadline passes while it waits behind the call in
// flight is not sent, and its caller gets the error of a call that timed
// out; the batch that goes next carries the earliest deadline of the
// pushes in it.
func TestPushGroupDeadlines(t *testing.T) {
	tw := newTestWeb(t, map[string]int{"a": 1}, []string{"a"}, func(c *conf.Web) { c.RPC.Timeout = conf.Duration(20 * time.Second) })
	node, entered, release := stalledComet(t, tw, nil)
	lead := postAsync(t, tw, "lead", 0, `0`)
	<-entered

	bg := context.Background()
	late, cancelLate := context.WithTimeout(bg, 200*time.Millisecond)
	defer cancelLate()
	soon, cancelSoon := context.WithTimeout(bg, 10*time.Second)
	defer cancelSoon()
	errs := make(map[string]chan error)
	for _, p := range []struct {
		key string
		ctx context.Context
	}{{"ok1", bg}, {"late", late}, {"ok2", soon}} {
		errs[p.key] = make(chan error, 1)
		go func() {
			_, err := tw.w.pushOne(p.ctx, p.key, json.RawMessage(`1`), 0)
			errs[p.key] <- err
		}()
		queued(t, node.pushes().group(0), len(errs))
	}
	err := <-errs["late"]
	if !errors.Is(err, gobrpc.ErrTimeout) || codeOf(err) != api.CodeInternalErr {
		t.Fatalf("push whose deadline passed in the queue: %v, want a timeout (65535)", err)
	}
	queued(t, node.pushes().group(0), 2)
	release()
	<-lead
	for _, k := range []string{"ok1", "ok2"} {
		if err := <-errs[k]; err != nil {
			t.Errorf("push to %s: %v", k, err)
		}
	}
	calls := tw.comets["a"].Calls()
	if len(calls) != 2 || calls[1].method != api.CometPushBatch {
		t.Fatalf("calls %+v, want the lead's then one PushBatch", calls)
	}
	args := calls[1].args.(*api.CometPushBatchArgs)
	if len(args.Entries) != 2 || args.Entries[0].Keys[0] != "ok1" || args.Entries[1].Keys[0] != "ok2" {
		t.Errorf("PushBatch entries %+v, want ok1 and ok2 (late not sent)", args.Entries)
	}
	if dl, _ := soon.Deadline(); args.Deadline != dl.UnixNano() {
		t.Errorf("PushBatch deadline %d, want the earliest of its callers %d", args.Deadline, dl.UnixNano())
	}
}

// oldComet is a 1.0.5-like comet: PushPrivate but no PushBatch. Its
// pushes take a moment, so that concurrent ones overlap.
type oldComet struct {
	mu     sync.Mutex
	pushed map[string]int // key → times pushed
}

func (c *oldComet) PushPrivate(a *api.CometPushPrivateArgs, r *int) error {
	time.Sleep(2 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pushed[a.Key]++
	return nil
}

func (c *oldComet) Migrate(a *api.CometMigrateArgs, r *int) error { return nil }
func (c *oldComet) Ping(_ int, r *int) error                      { return nil }

// A lone push goes as PushPrivate (a comet without PushBatch sees nothing
// new), and concurrent pushes to such a comet are all delivered, one
// PushPrivate each: web asks it for PushBatch once and remembers.
func TestPushGroupOldComet(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	oc := &oldComet{pushed: map[string]int{}}
	srv, err := gobrpc.Serve(api.CometService, oc, []string{"127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	data, _ := json.Marshal(api.CometNodeData{RPC: srv.Addrs(), TCP: []string{"tcp-old"}, Weight: 1})
	reg, err := membership.Register(context.Background(), c.z, c.cometPath+"/old", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	metrics := testenv.FreeAddr(t)
	w := c.startWeb(func(cfg *conf.Web) { cfg.Metrics.Bind = conf.AddrList{metrics} })
	waitFor(t, "the old comet in web's view", func() bool { return w.cluster.load().nodes["old"] != nil })
	admin := "http://" + w.AdminAddrs()[0]

	expectCode(t, post(t, admin+"/1/admin/push/private?expire=0&key=alone", `1`), api.CodeOK)
	if n := w.cluster.load().nodes["old"].pushes().oldUntil.Load(); n != 0 || oc.pushed["alone"] != 1 {
		t.Fatalf("a lone push: pushed %d times, PushBatch tried (%d); want one PushPrivate only", oc.pushed["alone"], n)
	}

	const pushers, each = 16, 20
	var wg sync.WaitGroup
	var bad sync.Map
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				k := fmt.Sprintf("old-%d-%d", p, i)
				if a := testenv.HTTPDo(t, http.MethodPost, admin+"/1/admin/push/private?expire=0&key="+k, "", strings.NewReader(`1`)); a.Body != `{"ret":0}` {
					bad.Store(k, a.Body)
				}
			}
		}()
	}
	wg.Wait()
	bad.Range(func(k, v any) bool { t.Errorf("push to %s: %s", k, v); return true })
	oc.mu.Lock()
	for p := range pushers {
		for i := range each {
			if k := fmt.Sprintf("old-%d-%d", p, i); oc.pushed[k] != 1 {
				t.Errorf("key %s pushed %d times, want 1", k, oc.pushed[k])
			}
		}
	}
	oc.mu.Unlock()
	m := testenv.Scrape(t, metrics)
	if n := m.Get("gopush_web_comet_rpc_duration_seconds_count", "node", "old", "method", "PushBatch"); n != 1 {
		t.Errorf("web asked the old comet for PushBatch %v times, want once (then remembered)", n)
	}
	if n := m.Get("gopush_web_comet_rpc_duration_seconds_count", "node", "old", "method", "PushPrivate"); n != pushers*each+1 {
		t.Errorf("%v PushPrivate calls, want %d", n, pushers*each+1)
	}
}

// Closing web while pushes wait behind a call the comet never answers
// answers them all: nothing is left waiting.
func TestPushGroupCloseAnswersWaiters(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	hung := &hungComet{entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv, err := gobrpc.Serve(api.CometService, hung, []string{"127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(hung.release); srv.Close(context.Background()) })
	data, _ := json.Marshal(api.CometNodeData{RPC: srv.Addrs(), TCP: []string{"tcp-hung"}, Weight: 1})
	reg, err := membership.Register(context.Background(), c.z, c.cometPath+"/hung", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	w := c.startWeb(func(cfg *conf.Web) { cfg.RPC.Timeout = conf.Duration(time.Minute) })
	waitFor(t, "the comet in web's view", func() bool { return w.cluster.load().nodes["hung"] != nil })
	node := w.cluster.load().nodes["hung"]

	done := make(chan error, 10)
	for i := range 10 {
		go func() {
			_, err := w.pushOne(context.Background(), fmt.Sprint("h", i), json.RawMessage(`1`), 0)
			done <- err
		}()
		if i == 0 {
			<-hung.entered
		}
	}
	queued(t, node.pushes().group(0), 9)
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		closed <- w.Close(ctx)
	}()
	for range 10 {
		select {
		case err := <-done:
			if err == nil {
				t.Error("a push answered ok by a comet that never answered")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a push still waits after web closed")
		}
	}
	<-closed
}

// hungComet holds every push until release is closed.
type hungComet struct {
	entered chan struct{}
	release chan struct{}
}

func (c *hungComet) PushPrivate(a *api.CometPushPrivateArgs, r *int) error {
	select {
	case c.entered <- struct{}{}:
	default:
	}
	<-c.release
	return nil
}

func (c *hungComet) Migrate(a *api.CometMigrateArgs, r *int) error { return nil }
func (c *hungComet) Ping(_ int, r *int) error                      { return nil }

// Many backends pushing at once to keys of one real comet: every push is
// answered ok and delivered exactly once, each key's pushes in the order
// they were made with ascending mids, the stored ones readable through
// /1/msg/get under the mids delivered; and the comet got far fewer calls
// than pushes (web coalesced them into PushBatch calls).
func TestPushGroupRealComet(t *testing.T) {
	t.Parallel()
	// The real daemons, in this process (no binaries to build; -race
	// watches them too).
	c := testenv.NewCluster(t)
	mcfg := c.MessageConfig()
	mcfg.Storage.Store = 100 // every stored push of a key kept
	md, err := message.Start(context.Background(), mcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close(context.Background()) })
	ccfg := c.CometConfig("node1", 1)
	cd := comet.New(ccfg, slog.New(slog.DiscardHandler))
	if err := cd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cd.Close(context.Background()) })
	cometTCP, cometMetrics := ccfg.TCP.Bind[0], ccfg.Metrics.Bind[0]
	cfg := c.WebConfig()
	w := New(cfg, nil)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	waitFor(t, "the comet in web's view", func() bool { return w.cluster.load().nodes["node1"] != nil })
	admin, public := "http://"+w.AdminAddrs()[0], "http://"+w.HTTPAddrs()[0]

	const pushers, each = 64, 30
	prefix := testenv.Unique(t)
	keys := make([]string, pushers)
	subs := make([]*bufio.Reader, pushers)
	for p := range keys {
		keys[p] = fmt.Sprintf("%s-%d", prefix, p)
		nc, err := net.DialTimeout("tcp", cometTCP, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(time.Minute))
		sub, _ := api.CheckSubscribe(keys[p], "60", "", "1")
		if _, err := nc.Write(sub.AppendTCP(nil)); err != nil {
			t.Fatal(err)
		}
		subs[p] = bufio.NewReader(nc)
		if kind, _, err := api.ReadTCPFrame(subs[p], nil); err != nil || kind != api.FrameOK {
			t.Fatalf("subscribe %s: %v %v", keys[p], kind, err)
		}
	}
	before := testenv.Scrape(t, cometMetrics)

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: pushers}}
	t.Cleanup(hc.CloseIdleConnections)
	var wg sync.WaitGroup
	errs := make(chan string, pushers*each)
	delivered := make([][]api.Message, pushers)
	for p := range pushers {
		wg.Add(2)
		go func() { // the backend of key p
			defer wg.Done()
			for i := range each {
				u := fmt.Sprintf("%s/1/admin/push/private?expire=%d&key=%s", admin, 600*(i%2), keys[p])
				resp, err := hc.Post(u, "application/json", strings.NewReader(fmt.Sprintf(`{"p":%d,"i":%d}`, p, i)))
				if err != nil {
					errs <- err.Error()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != `{"ret":0}` {
					errs <- fmt.Sprintf("push %d to %s: %s", i, keys[p], b)
				}
			}
		}()
		go func() { // its subscriber
			defer wg.Done()
			for range each {
				kind, body, err := api.ReadTCPFrame(subs[p], nil)
				if err != nil || kind != api.FrameMessage {
					errs <- fmt.Sprintf("subscriber %s: %v %v", keys[p], kind, err)
					return
				}
				m, err := api.DecodeMessage(body, false)
				if err != nil {
					errs <- err.Error()
					return
				}
				delivered[p] = append(delivered[p], m)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		t.FailNow()
	}
	for p, ms := range delivered {
		var last int64
		var stored []string
		for i, m := range ms {
			if want := fmt.Sprintf(`{"p":%d,"i":%d}`, p, i); string(m.Msg) != want || m.MsgId <= last {
				t.Fatalf("key %s: delivery %d is %s mid %d (after mid %d), want %s", keys[p], i, m.Msg, m.MsgId, last, want)
			}
			last = m.MsgId
			if i%2 == 1 {
				stored = append(stored, fmt.Sprintf(`{"msg":%s,"mid":%d,"gid":0}`, m.Msg, m.MsgId))
			}
		}
		a := get(t, public+"/1/msg/get?k="+keys[p]+"&m=0")
		if want := `{"ret":0,"data":{"msgs":[` + strings.Join(stored, ",") + `]}}`; a.body != want {
			t.Fatalf("msg/get of %s:\n%s\nwant\n%s", keys[p], a.body, want)
		}
	}
	after := testenv.Scrape(t, cometMetrics)
	calls := func(method string) float64 {
		return after.Get("gopush_comet_rpc_pushes_total", "method", method) - before.Get("gopush_comet_rpc_pushes_total", "method", method)
	}
	batches, singles := calls("PushBatch"), calls("PushPrivate")
	t.Logf("%d pushes reached comet in %v PushBatch and %v PushPrivate calls", pushers*each, batches, singles)
	if batches == 0 || batches+singles >= pushers*each/2 {
		t.Errorf("%v PushBatch and %v PushPrivate calls for %d pushes: web did not coalesce", batches, singles, pushers*each)
	}
	// Each push delivered once: the frames read above, and no more queued.
	for _, m := range []string{"gopush_comet_pushed_keys_total", "gopush_comet_deliveries_total"} {
		if n := after.Get(m) - before.Get(m); n != pushers*each {
			t.Errorf("comet %s moved by %v, want %d", m, n, pushers*each)
		}
	}
}

// A comet instance keeps its push group across view updates (its pushes in
// flight go on; that it has no PushBatch is remembered); a new instance of
// the node gets a new one.
func TestPushGroupFollowsTheInstance(t *testing.T) {
	c := newCluster(slog.New(slog.DiscardHandler), time.Second)
	t.Cleanup(c.close)
	view := func(child, rpc string) membership.CometView {
		return membership.CometView{Weights: map[string]int{"n": 1}, Serving: map[string]*membership.CometInstance{
			"n": {Node: "n", Child: child, Data: api.CometNodeData{RPC: []string{rpc}, TCP: []string{"tcp"}, Weight: 1}},
		}}
	}
	c.update(view("0000000001", "127.0.0.1:1"))
	g := c.load().nodes["n"].pushes()
	c.update(view("0000000001", "127.0.0.1:1"))
	if got := c.load().nodes["n"].pushes(); got != g {
		t.Error("the same instance got a new push group on a view update")
	}
	c.update(view("0000000002", "127.0.0.1:1"))
	if got := c.load().nodes["n"].pushes(); got == g {
		t.Error("a new instance of the node kept the old one's push group")
	}
}
