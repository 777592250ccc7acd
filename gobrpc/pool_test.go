package gobrpc

import (
	"context"
	"errors"
	"net"
	"net/rpc"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopush/api"
	"gopush/internal/testenv"
)

// fakeMessage is a message node as the pool sees it: Ping, and a method
// that counts its calls.
type fakeMessage struct {
	pingFails atomic.Bool
	hits      atomic.Int64
	fails     atomic.Int64
}

func (f *fakeMessage) Ping(args int, reply *int) error {
	if f.pingFails.Load() {
		return errors.New("storage down")
	}
	*reply = api.OK
	return nil
}

func (f *fakeMessage) Hit(args int, reply *int) error {
	f.hits.Add(1)
	*reply = args
	return nil
}

func (f *fakeMessage) Fail(args int, reply *int) error {
	f.fails.Add(1)
	return errors.New("no such key")
}

// startMessages serves n fake message nodes and returns them with their
// addresses.
func startMessages(t *testing.T, n int) ([]*fakeMessage, []*Server) {
	t.Helper()
	var fakes []*fakeMessage
	var srvs []*Server
	for range n {
		f := &fakeMessage{}
		s, err := Serve(api.MessageService, f, []string{"127.0.0.1:0"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(context.Background()) })
		fakes, srvs = append(fakes, f), append(srvs, s)
	}
	return fakes, srvs
}

func msgNode(addr string, w int) api.MessageNode {
	return api.MessageNode{Child: addr, Data: api.MessageNodeData{RPC: []string{addr}, Weight: w}}
}

func newTestPool(t *testing.T) *MessagePool {
	p := NewMessagePool(50*time.Millisecond, 50*time.Millisecond, 2*time.Second, testLog(t))
	t.Cleanup(p.Close)
	return p
}

func hitN(t *testing.T, p *MessagePool, n int) {
	t.Helper()
	for i := range n {
		var r int
		if err := p.Call(context.Background(), "MessageRPC.Hit", i, &r); err != nil || r != i {
			t.Fatalf("call %d: %d, %v", i, r, err)
		}
	}
}

func TestPoolWeightedDistribution(t *testing.T) {
	t.Parallel()
	fakes, srvs := startMessages(t, 3)
	p := newTestPool(t)
	p.Update([]api.MessageNode{msgNode(srvs[0].Addrs()[0], 1), msgNode(srvs[1].Addrs()[0], 2), msgNode(srvs[2].Addrs()[0], 3)})
	const total = 3000
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); hitN(t, p, total/4) }()
	}
	wg.Wait()
	for i, f := range fakes {
		want := float64(total) * float64(i+1) / 6
		got := float64(f.hits.Load())
		if got < want*0.75 || got > want*1.25 {
			t.Errorf("node of weight %d got %v calls, want about %v", i+1, got, want)
		}
	}
}

func TestPoolEmptyAndClosed(t *testing.T) {
	t.Parallel()
	p := newTestPool(t)
	var r int
	if err := p.Call(context.Background(), "MessageRPC.Hit", 1, &r); !errors.Is(err, ErrNoMessageNode) {
		t.Errorf("empty pool: err = %v, want ErrNoMessageNode", err)
	}
	_, srvs := startMessages(t, 1)
	p.Update([]api.MessageNode{msgNode(srvs[0].Addrs()[0], 1), {Child: "bad"}, msgNode("127.0.0.1:1", 0)})
	if got := p.Live(); len(got) != 1 {
		t.Errorf("Live = %v, want the one valid node", got)
	}
	p.Close()
	if err := p.Call(context.Background(), "MessageRPC.Hit", 1, &r); !errors.Is(err, ErrNoMessageNode) {
		t.Errorf("closed pool: err = %v, want ErrNoMessageNode", err)
	}
	p.Update([]api.MessageNode{msgNode(srvs[0].Addrs()[0], 1)}) // ignored, no goroutine started
	if len(p.Live()) != 0 {
		t.Error("Update after Close revived the pool")
	}
}

// A node whose pings fail gets no calls; when it answers again it is used
// again after the retry interval.
func TestPoolDeadNodeGetsNoCallsAndComesBack(t *testing.T) {
	t.Parallel()
	fakes, srvs := startMessages(t, 2)
	p := newTestPool(t)
	p.Update([]api.MessageNode{msgNode(srvs[0].Addrs()[0], 1), msgNode(srvs[1].Addrs()[0], 1)})
	hitN(t, p, 50)
	if fakes[1].hits.Load() == 0 {
		t.Fatal("second node got no call while live")
	}

	fakes[1].pingFails.Store(true)
	waitFor(t, "node marked dead", func() bool { return len(p.Live()) == 1 })
	before := fakes[1].hits.Load()
	hitN(t, p, 200)
	if got := fakes[1].hits.Load() - before; got != 0 {
		t.Errorf("dead node got %d calls", got)
	}

	fakes[1].pingFails.Store(false)
	waitFor(t, "node live again", func() bool { return len(p.Live()) == 2 })
	before = fakes[1].hits.Load()
	hitN(t, p, 200)
	if fakes[1].hits.Load() == before {
		t.Error("node that came back gets no calls")
	}
}

// A node that goes away is skipped at once: the failed call is retried on
// another node, so callers see no error, and the node is left out.
func TestPoolRetriesTransportFailureOnAnotherNode(t *testing.T) {
	t.Parallel()
	fakes, srvs := startMessages(t, 2)
	p := NewMessagePool(time.Hour, 50*time.Millisecond, 2*time.Second, testLog(t)) // no ping would notice
	t.Cleanup(p.Close)
	p.Update([]api.MessageNode{msgNode(srvs[0].Addrs()[0], 1), msgNode(srvs[1].Addrs()[0], 1)})
	hitN(t, p, 50) // both connections are open
	srvs[1].Close(context.Background())
	before := fakes[0].hits.Load()
	hitN(t, p, 100) // no error: the call that met the closed node was retried
	if got := fakes[0].hits.Load() - before; got != 100 {
		t.Errorf("live node got %d of 100 calls", got)
	}
	if live := p.Live(); len(live) != 1 || live[0] != srvs[0].Addrs()[0] {
		t.Errorf("Live = %v, want only %s", live, srvs[0].Addrs()[0])
	}

	// Application errors are not retried.
	var r int
	err := p.Call(context.Background(), "MessageRPC.Fail", 1, &r)
	var se rpc.ServerError
	if !errors.As(err, &se) {
		t.Errorf("Fail: err = %v, want the node's error", err)
	}
	if n := fakes[0].fails.Load() + fakes[1].fails.Load(); n != 1 {
		t.Errorf("an application error was tried %d times, want 1", n)
	}
	if len(p.Live()) != 1 {
		t.Error("an application error marked a node dead")
	}
}

// A registered node that cannot be reached costs callers nothing: the call
// goes to another node and the unreachable one is left out.
func TestPoolSkipsUnreachableNode(t *testing.T) {
	t.Parallel()
	fakes, srvs := startMessages(t, 1)
	p := NewMessagePool(time.Hour, time.Hour, 2*time.Second, testLog(t))
	t.Cleanup(p.Close)
	dead := testenv.FreeAddr(t)
	p.Update([]api.MessageNode{msgNode(srvs[0].Addrs()[0], 1), msgNode(dead, 100)})
	hitN(t, p, 20)
	if got := fakes[0].hits.Load(); got != 20 {
		t.Errorf("live node got %d of 20 calls", got)
	}
	if live := p.Live(); len(live) != 1 || live[0] == dead {
		t.Errorf("Live = %v, want only the reachable node", live)
	}
}

func TestPoolUpdateReconciles(t *testing.T) {
	t.Parallel()
	fakes, srvs := startMessages(t, 3)
	a, b, c := srvs[0].Addrs()[0], srvs[1].Addrs()[0], srvs[2].Addrs()[0]
	p := newTestPool(t)
	p.Update([]api.MessageNode{msgNode(a, 1), msgNode(b, 1)})
	p.mu.Lock()
	clientA := p.nodes[a].client
	p.mu.Unlock()

	// b leaves, c joins, a changes weight and stays.
	p.Update([]api.MessageNode{msgNode(a, 3), msgNode(c, 1)})
	p.mu.Lock()
	kept := p.nodes[a] != nil && p.nodes[a].client == clientA
	p.mu.Unlock()
	if !kept {
		t.Error("the client of a node that stayed was replaced")
	}
	before := fakes[1].hits.Load()
	hitN(t, p, 400)
	if got := fakes[1].hits.Load() - before; got != 0 {
		t.Errorf("removed node got %d calls", got)
	}
	ha, hc := fakes[0].hits.Load(), fakes[2].hits.Load()
	if ha < 2*hc {
		t.Errorf("weights 3:1 gave %d:%d calls", ha, hc)
	}
}

// Against a node that accepts connections and never answers, Call returns
// by its deadline.
func TestPoolCallNeverHangs(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-accepted
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	p := NewMessagePool(time.Hour, time.Hour, 300*time.Millisecond, testLog(t))
	defer p.Close()
	p.Update([]api.MessageNode{msgNode(ln.Addr().String(), 1)})
	for _, ctxTimeout := range []time.Duration{time.Hour, 100 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), ctxTimeout)
		start := time.Now()
		var r int
		err := p.Call(ctx, "MessageRPC.Hit", 1, &r)
		cancel()
		// ErrNoMessageNode once the pings have found the node dead.
		if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrNoMessageNode) {
			t.Errorf("err = %v, want ErrTimeout or ErrNoMessageNode", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Call took %v (pool timeout 300ms, ctx %v)", d, ctxTimeout)
		}
	}
}
