package gobrpc

import (
	"context"
	"errors"
	"net"
	"net/rpc"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"gopush/api"
	"gopush/internal/testenv"
)

// testSvc is the receiver served in these tests.
type testSvc struct {
	started chan struct{} // Slow sends here when it starts
	release chan struct{} // Slow returns when this is closed
	mu      sync.Mutex
	calls   int
}

func newTestSvc() *testSvc {
	return &testSvc{started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (s *testSvc) Echo(args string, reply *string) error {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	*reply = args
	return nil
}

func (s *testSvc) Ping(args int, reply *int) error {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	*reply = api.OK
	return nil
}

func (s *testSvc) Fail(args int, reply *int) error { return errors.New("boom") }

func (s *testSvc) Slow(args int, reply *int) error {
	s.started <- struct{}{}
	<-s.release
	*reply = args + 1
	return nil
}

func (s *testSvc) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func serveTest(t *testing.T, svc *testSvc, binds ...string) *Server {
	t.Helper()
	if len(binds) == 0 {
		binds = []string{"127.0.0.1:0"}
	}
	s, err := Serve("Test", svc, binds, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

func TestCallRoundTripAndErrors(t *testing.T) {
	t.Parallel()
	srv := serveTest(t, newTestSvc(), "127.0.0.1:0", "127.0.0.1:0")
	if len(srv.Addrs()) != 2 {
		t.Fatalf("Addrs = %v, want 2 addresses", srv.Addrs())
	}
	for _, addr := range srv.Addrs() {
		c := NewClient(addr, 5*time.Second)
		var got string
		if err := c.Call(context.Background(), "Test.Echo", "hello", &got); err != nil || got != "hello" {
			t.Fatalf("Echo on %s = %q, %v; want hello, nil", addr, got, err)
		}
		var n int
		err := c.Call(context.Background(), "Test.Fail", 1, &n)
		var se rpc.ServerError
		if !errors.As(err, &se) || string(se) != "boom" {
			t.Fatalf("Fail: err = %v, want rpc.ServerError boom", err)
		}
		if IsTransport(err) {
			t.Errorf("IsTransport(%v) = true for an application error", err)
		}
		err = c.Call(context.Background(), "Test.Nope", 1, &n)
		if !IsNoSuchMethod(err) {
			t.Errorf("IsNoSuchMethod(%v) = false", err)
		}
		// The connection survives application errors.
		if err := c.Call(context.Background(), "Test.Echo", "again", &got); err != nil || got != "again" {
			t.Fatalf("Echo after errors = %q, %v", got, err)
		}
		c.Close()
		if err := c.Call(context.Background(), "Test.Echo", "x", &got); !errors.Is(err, ErrClientClosed) {
			t.Errorf("Call after Close: err = %v, want ErrClientClosed", err)
		}
	}
}

func TestServeRejectsBadInput(t *testing.T) {
	t.Parallel()
	if _, err := Serve("Test", newTestSvc(), nil, nil); err == nil {
		t.Error("Serve with no bind address succeeded")
	}
	if _, err := Serve("Test", newTestSvc(), []string{"127.0.0.1:0", "no-such-host-xx:notaport"}, nil); err == nil {
		t.Error("Serve with a bad bind address succeeded")
	}
	if _, err := Serve("Test", struct{}{}, []string{"127.0.0.1:0"}, nil); err == nil {
		t.Error("Serve with a receiver without methods succeeded")
	}
}

func TestServerSurvivesGarbage(t *testing.T) {
	t.Parallel()
	srv := serveTest(t, newTestSvc())
	conn, err := net.Dial("tcp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte(strings.Repeat("GET / HTTP/1.0\r\n\r\n\x00\xff\xfe garbage", 100)))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Error("server kept a connection that sent garbage")
			}
			break // the server hung up
		}
	}
	conn.Close()
	c := NewClient(srv.Addrs()[0], 5*time.Second)
	defer c.Close()
	var got string
	if err := c.Call(context.Background(), "Test.Echo", "ok", &got); err != nil || got != "ok" {
		t.Fatalf("Echo after garbage = %q, %v", got, err)
	}
}

func TestClientRedialsAfterServerRestart(t *testing.T) {
	t.Parallel()
	svc := newTestSvc()
	srv := serveTest(t, svc)
	addr := srv.Addrs()[0]
	c := NewClient(addr, 5*time.Second)
	defer c.Close()
	var got string
	if err := c.Call(context.Background(), "Test.Echo", "1", &got); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(context.Background(), "Test.Echo", "2", &got); err == nil {
		t.Fatal("call to a closed server succeeded")
	} else if !IsTransport(err) {
		t.Errorf("IsTransport(%v) = false for a closed server", err)
	}
	serveTest(t, svc, addr)
	// The broken connection was dropped: at most one more failure, then the
	// client redials.
	var err error
	for range 2 {
		if err = c.Call(context.Background(), "Test.Echo", "3", &got); err == nil {
			break
		}
	}
	if err != nil || got != "3" {
		t.Fatalf("after restart: %q, %v", got, err)
	}
}

// A peer that accepts and never reads nor answers must not hold a call past
// its deadline, even when the request does not fit in the socket buffers.
func TestCallNeverHangsOnSilentPeer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()

	c := NewClient(ln.Addr().String(), 300*time.Millisecond)
	defer c.Close()
	big := strings.Repeat("x", 16<<20)
	for _, args := range []string{"small", big} {
		start := time.Now()
		var got string
		err := c.Call(context.Background(), "Test.Echo", args, &got)
		if err == nil {
			t.Fatal("call to a silent peer succeeded")
		}
		// 300ms timeout; a stalled write may add one more timeout.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("call with %d bytes took %v against a 300ms timeout", len(args), d)
		}
	}
	// The caller's context deadline wins when it is earlier.
	c2 := NewClient(ln.Addr().String(), time.Hour)
	defer c2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	var got string
	if err := c2.Call(ctx, "Test.Echo", "x", &got); !errors.Is(err, ErrTimeout) {
		t.Errorf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("call took %v against a 200ms context", d)
	}
}

func TestTimedOutCallLeavesConnectionUsable(t *testing.T) {
	t.Parallel()
	svc := newTestSvc()
	srv := serveTest(t, svc)
	defer close(svc.release)
	c := NewClient(srv.Addrs()[0], 10*time.Second)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	reply := 7
	err := c.Call(ctx, "Test.Slow", 1, &reply)
	if !errors.Is(err, ErrTimeout) || IsTransport(err) {
		t.Fatalf("Slow: err = %v, want a timeout that is not a transport error", err)
	}
	if reply != 7 {
		t.Errorf("reply written after a timeout: %d", reply)
	}
	var got string
	if err := c.Call(context.Background(), "Test.Echo", "still", &got); err != nil || got != "still" {
		t.Fatalf("Echo after a timed-out call = %q, %v", got, err)
	}
	srv.mu.Lock()
	n := len(srv.conns)
	srv.mu.Unlock()
	if n != 1 {
		t.Errorf("server has %d connections, want 1 (the timed-out call must not force a redial)", n)
	}
}

func TestServerCloseWaitsForInFlightCall(t *testing.T) {
	t.Parallel()
	svc := newTestSvc()
	srv, err := Serve("Test", svc, []string{"127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(srv.Addrs()[0], 30*time.Second)
	defer c.Close()
	callErr := make(chan error, 1)
	var reply int
	go func() { callErr <- c.Call(context.Background(), "Test.Slow", 41, &reply) }()
	<-svc.started

	closed := make(chan error, 1)
	go func() { closed <- srv.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a call was running", err)
	case <-time.After(200 * time.Millisecond):
	}
	// New connections are refused meanwhile.
	if conn, err := net.DialTimeout("tcp", srv.Addrs()[0], time.Second); err == nil {
		conn.Close()
		t.Error("server still accepts connections while closing")
	}
	close(svc.release)
	if err := <-callErr; err != nil || reply != 42 {
		t.Fatalf("in-flight call: %d, %v; want 42, nil", reply, err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestServerCloseGivesUpAtDeadline(t *testing.T) {
	t.Parallel()
	svc := newTestSvc()
	srv, err := Serve("Test", svc, []string{"127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(srv.Addrs()[0], 30*time.Second)
	defer c.Close()
	callErr := make(chan error, 1)
	var reply int
	go func() { callErr <- c.Call(context.Background(), "Test.Slow", 1, &reply) }()
	<-svc.started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want DeadlineExceeded", err)
	}
	close(svc.release) // let the handler (and goroutines) finish
	<-callErr
}

func TestConcurrentCallsShareOneDial(t *testing.T) {
	t.Run("no idle limit", func(t *testing.T) { testConcurrentFirstCalls(t, Options{}) })
	// With rpc.idle set, a call that comes just after the dial must not
	// take the fresh connection for an idle one and close it under the
	// callers that waited for the dial.
	t.Run("idle limit", func(t *testing.T) { testConcurrentFirstCalls(t, Options{Idle: time.Minute}) })
}

func testConcurrentFirstCalls(t *testing.T, o Options) {
	t.Parallel()
	srv := serveTest(t, newTestSvc())
	c := NewClientWith(srv.Addrs()[0], 10*time.Second, o)
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the starts over the dial, so that some calls come
			// while it runs and some just after it.
			time.Sleep(time.Duration(i%10) * 100 * time.Microsecond)
			var got string
			errs <- c.Call(context.Background(), "Test.Echo", "x", &got)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	srv.mu.Lock()
	n := len(srv.conns)
	srv.mu.Unlock()
	if n != 1 {
		t.Errorf("50 concurrent first calls opened %d connections, want 1", n)
	}
}

func TestDialFailureIsTransport(t *testing.T) {
	t.Parallel()
	c := NewClient(testenv.FreeAddr(t), 2*time.Second)
	defer c.Close()
	var got string
	err := c.Call(context.Background(), "Test.Echo", "x", &got)
	if err == nil || !IsTransport(err) {
		t.Errorf("call to a closed port: err = %v, IsTransport = %v; want a transport error", err, IsTransport(err))
	}
}
