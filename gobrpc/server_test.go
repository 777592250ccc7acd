package gobrpc

import (
	"bytes"
	"context"
	"log/slog"
	"net/rpc"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Pair is a struct argument, as the daemons' RPC types are.
type Pair struct {
	A, B int
}

// stockSvc exercises what a stock net/rpc client sends: struct, pointer,
// map and slice types, errors and panics.
type stockSvc struct {
	started chan struct{}
	release chan struct{}
}

func (s *stockSvc) Add(p Pair, reply *int) error { *reply = p.A + p.B; return nil }

func (s *stockSvc) AddPtr(p *Pair, reply *int) error { *reply = p.A + p.B; return nil }

func (s *stockSvc) Split(p string, reply *[]string) error {
	*reply = append(*reply, strings.Split(p, ",")...)
	return nil
}

func (s *stockSvc) Count(p []string, reply *map[string]int) error {
	for _, k := range p {
		(*reply)[k]++
	}
	return nil
}

func (s *stockSvc) Panic(p int, reply *int) error {
	var m map[string]int
	m["x"] = p // nil map: panics
	return nil
}

func (s *stockSvc) Wait(p int, reply *int) error {
	s.started <- struct{}{}
	<-s.release
	*reply = p
	return nil
}

// notRPC has the wrong shape: net/rpc would not serve it, nor do we.
func (s *stockSvc) NotRPC(p int) int { return p }

func serveStock(t *testing.T, log *slog.Logger) (*Server, *stockSvc) {
	t.Helper()
	svc := &stockSvc{started: make(chan struct{}, 64), release: make(chan struct{})}
	srv, err := Serve("Stock", svc, []string{"127.0.0.1:0"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv, svc
}

// A client built with the standard library's net/rpc (what a 1.0.5 peer
// is) gets the same answers, errors included, as from net/rpc's server.
func TestStockClientAgainstServer(t *testing.T) {
	t.Parallel()
	srv, _ := serveStock(t, nil)
	rc, err := rpc.Dial("tcp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	var sum int
	if err := rc.Call("Stock.Add", Pair{2, 3}, &sum); err != nil || sum != 5 {
		t.Errorf("Add = %d, %v; want 5", sum, err)
	}
	if err := rc.Call("Stock.AddPtr", &Pair{4, 5}, &sum); err != nil || sum != 9 {
		t.Errorf("AddPtr = %d, %v; want 9", sum, err)
	}
	var parts []string
	if err := rc.Call("Stock.Split", "a,b", &parts); err != nil || strings.Join(parts, "|") != "a|b" {
		t.Errorf("Split = %q, %v", parts, err)
	}
	var counts map[string]int
	if err := rc.Call("Stock.Count", []string{"x", "y", "x"}, &counts); err != nil || counts["x"] != 2 || counts["y"] != 1 {
		t.Errorf("Count = %v, %v", counts, err)
	}
	for _, tc := range []struct{ method, want string }{
		{"Stock.Nope", "rpc: can't find method Stock.Nope"},
		{"Other.Add", "rpc: can't find service Other.Add"},
		{"NoDot", "rpc: service/method request ill-formed: NoDot"},
		{"Stock.NotRPC", "rpc: can't find method Stock.NotRPC"},
	} {
		err := rc.Call(tc.method, Pair{1, 1}, &sum)
		if _, ok := err.(rpc.ServerError); !ok || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want ServerError %q", tc.method, err, tc.want)
		}
	}
	// An argument of the wrong type is refused, and the connection goes on.
	if err := rc.Call("Stock.Add", "not a pair", &sum); err == nil {
		t.Error("Add with a string argument succeeded")
	}
	if err := rc.Call("Stock.Add", Pair{1, 1}, &sum); err != nil || sum != 2 {
		t.Errorf("Add after errors = %d, %v; want 2", sum, err)
	}
}

// Calls on one connection run concurrently: a handler that blocks (on
// storage, say) does not hold up the calls behind it.
func TestBlockedCallDoesNotHoldUpConnection(t *testing.T) {
	t.Parallel()
	srv, svc := serveStock(t, nil)
	rc, err := rpc.Dial("tcp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	const blocked = 5
	var waits []*rpc.Call
	for i := range blocked {
		waits = append(waits, rc.Go("Stock.Wait", i, new(int), nil))
	}
	for range blocked {
		select {
		case <-svc.started:
		case <-time.After(10 * time.Second):
			t.Fatal("blocked calls did not all start: they run one after another")
		}
	}
	var sum int
	if err := rc.Call("Stock.Add", Pair{20, 22}, &sum); err != nil || sum != 42 {
		t.Errorf("Add while others block = %d, %v", sum, err)
	}
	close(svc.release)
	for i, w := range waits {
		<-w.Done
		if w.Error != nil || *w.Reply.(*int) != i {
			t.Errorf("Wait(%d) = %d, %v", i, *w.Reply.(*int), w.Error)
		}
	}
}

// A handler that panics answers its caller with an error and is logged;
// the server, and the caller's connection, go on.
func TestHandlerPanicIsAnsweredAsError(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	srv, _ := serveStock(t, slog.New(slog.NewTextHandler(&logs, nil)))
	rc, err := rpc.Dial("tcp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var n int
	err = rc.Call("Stock.Panic", 1, &n)
	if _, ok := err.(rpc.ServerError); !ok || !strings.Contains(err.Error(), "Stock.Panic panicked") {
		t.Fatalf("Panic: err = %v, want a ServerError saying it panicked", err)
	}
	if err := rc.Call("Stock.Add", Pair{1, 2}, &n); err != nil || n != 3 {
		t.Errorf("Add after a panic = %d, %v", n, err)
	}
	// Our own client too.
	c := NewClient(srv.Addrs()[0], 5*time.Second)
	defer c.Close()
	if err := c.Call(context.Background(), "Stock.Panic", 1, &n); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("Panic through Client: err = %v", err)
	}
	if err := c.Call(context.Background(), "Stock.Add", Pair{2, 2}, &n); err != nil || n != 4 {
		t.Errorf("Add through Client after a panic = %d, %v", n, err)
	}
	out := logs.String()
	if !strings.Contains(out, "rpc handler panicked") || !strings.Contains(out, "method=Stock.Panic") || !strings.Contains(out, "server_test.go") {
		t.Errorf("panic not logged with its method and stack:\n%s", out)
	}
}

// Many concurrent calls from many connections all get their own answer,
// and the workers they needed do not all stay around afterwards.
func TestConcurrentCallsManyConnections(t *testing.T) {
	t.Parallel()
	srv, svc := serveStock(t, nil)
	const conns, perConn = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, conns*perConn)
	for i := range conns {
		rc, err := rpc.Dial("tcp", srv.Addrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		for j := range perConn {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var sum int
				if err := rc.Call("Stock.Add", Pair{i, j * 1000}, &sum); err != nil || sum != i+j*1000 {
					errs <- err
					if err == nil {
						t.Errorf("Add(%d, %d) = %d", i, j*1000, sum)
					}
				}
			}()
		}
	}
	// A burst of blocked calls needs more workers than stay idle.
	rc, err := rpc.Dial("tcp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var waits []*rpc.Call
	for i := range maxIdleWorkers + 20 {
		waits = append(waits, rc.Go("Stock.Wait", i, new(int), nil))
	}
	for range maxIdleWorkers + 20 {
		<-svc.started
	}
	close(svc.release)
	for _, w := range waits {
		<-w.Done
		if w.Error != nil {
			t.Errorf("Wait: %v", w.Error)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Add: %v", err)
		}
	}
}

// The goroutines that run a connection's calls end when the connection
// ends, not only when the server closes: a peer that goes away leaves
// nothing behind. Not parallel, so that only this test's goroutines count.
func TestConnectionGoroutinesEndWithConnection(t *testing.T) {
	srv, svc := serveStock(t, nil)
	before := goleak.IgnoreCurrent()
	rc, err := rpc.Dial("tcp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	var waits []*rpc.Call
	for i := range maxIdleWorkers + 10 {
		waits = append(waits, rc.Go("Stock.Wait", i, new(int), nil))
	}
	for range maxIdleWorkers + 10 {
		<-svc.started
	}
	close(svc.release)
	for _, w := range waits {
		<-w.Done
	}
	var sum int
	if err := rc.Call("Stock.Add", Pair{1, 1}, &sum); err != nil || sum != 2 {
		t.Fatalf("Add = %d, %v", sum, err)
	}
	rc.Close()
	goleak.VerifyNone(t, before)
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
