package gobrpc

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"io"
	"net"
	"net/netip"
	"net/rpc"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveWith serves the stock test service with o on a loopback port.
func serveWith(t *testing.T, o Options) *Server {
	t.Helper()
	svc := &stockSvc{started: make(chan struct{}, 64), release: make(chan struct{})}
	srv, err := ServeWith("Stock", svc, []string{"127.0.0.1:0"}, o, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	return srv
}

// addWorks calls Stock.Add through a Client with o and reports the error.
func addWith(t *testing.T, addr string, o Options) error {
	t.Helper()
	c := NewClientWith(addr, 2*time.Second, o)
	defer c.Close()
	var sum int
	if err := c.Call(context.Background(), "Stock.Add", Pair{A: 2, B: 3}, &sum); err != nil {
		return err
	}
	if sum != 5 {
		t.Fatalf("Stock.Add answered %d", sum)
	}
	return nil
}

// closedWithin reports whether the server closes c within d (a read
// returns EOF or a reset rather than timing out).
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// A peer that announces a 1.5 GB gob message and streams it is cut off at
// the length prefix: the server never allocates the buffer, logs and
// counts the event, and serves other peers.
func TestOversizedMessageIsRefusedWithoutAllocating(t *testing.T) {
	srv := serveWith(t, Options{MaxMsg: 1 << 20})
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	c, err := net.Dial("tcp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 1.5 GB as a gob count: 4 bytes follow (0xFC = -4).
	prefix := []byte{0xFC, 0x59, 0x68, 0x2F, 0x00}
	done := make(chan error, 1)
	go func() {
		if _, err := c.Write(prefix); err != nil {
			done <- err
			return
		}
		junk := bytes.Repeat([]byte{0x41}, 64<<10)
		for range 1000 { // up to 64 MB, until the server hangs up
			if _, err := c.Write(junk); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the server read 64 MB of a message announced as 1.5 GB")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server kept reading")
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapSys) - int64(before.HeapSys); grown > 64<<20 {
		t.Fatalf("heap grew by %d MB", grown>>20)
	}
	waitFor(t, "the oversized count", func() bool { return srv.Counts().Oversized == 1 })
	if err := addWith(t, srv.Addrs()[0], Options{}); err != nil {
		t.Fatalf("another peer after the oversized message: %v", err)
	}
}

// The default limit passes a 100 000-key batch of 64-byte keys (the
// largest push/mprivate web sends) and stops one over it, on the server and
// on the client that reads the answer.
func TestMaxMsgFitsTheLargestBatch(t *testing.T) {
	srv, err := ServeWith("Batch", batchSvc{}, []string{"127.0.0.1:0"}, Options{}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	keys := make([]string, 100000)
	for i := range keys {
		keys[i] = strings.Repeat("k", 58) + strings.Repeat("0", 6-len(itoa(i))) + itoa(i)
	}
	c := NewClient(srv.Addrs()[0], 10*time.Second)
	defer c.Close()
	var n int
	if err := c.Call(context.Background(), "Batch.Len", keys, &n); err != nil {
		t.Fatalf("100 000 keys: %v", err)
	}
	if n != len(keys) {
		t.Fatalf("the server got %d keys", n)
	}
	small := NewClientWith(srv.Addrs()[0], 10*time.Second, Options{MaxMsg: 1 << 20})
	defer small.Close()
	var back []string
	err = small.Call(context.Background(), "Batch.Echo", keys, &back)
	if !errors.Is(err, ErrTooLarge) && !IsTransport(err) {
		t.Fatalf("a 6.5 MB answer through a 1 MB client limit: %v", err)
	}
}

type batchSvc struct{}

func (batchSvc) Len(keys []string, n *int) error { *n = len(keys); return nil }

func (batchSvc) Echo(keys []string, back *[]string) error { *back = keys; return nil }

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// A peer that sends a valid request header and then nothing, or nothing at
// all, is disconnected after the idle time; its calls are not waited for.
func TestSilentPeersAreDisconnected(t *testing.T) {
	srv := serveWith(t, Options{Idle: 300 * time.Millisecond})
	silent, err := net.Dial("tcp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	half, err := net.Dial("tcp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if err := gob.NewEncoder(half).Encode(&rpc.Request{ServiceMethod: "Stock.Add", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]net.Conn{"silent": silent, "header only": half} {
		if !closedWithin(c, 3*time.Second) {
			t.Errorf("%s connection still open after 3 s (idle 300 ms)", name)
		}
	}
	if n := srv.Counts().IdleClosed; n != 2 {
		t.Errorf("IdleClosed = %d, want 2", n)
	}
	// A client that keeps calling is not cut off, and one that was idle
	// for longer than half the idle time redials instead of failing.
	c := NewClientWith(srv.Addrs()[0], 2*time.Second, Options{Idle: 300 * time.Millisecond})
	defer c.Close()
	for range 3 {
		var sum int
		if err := c.Call(context.Background(), "Stock.Add", Pair{A: 1, B: 1}, &sum); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
	}
}

// 10 000 connections from an address outside the allow-list are each
// closed at once; an allowed peer is served throughout.
func TestAllowListRefusesTenThousandConnections(t *testing.T) {
	srv := serveWith(t, Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	addr := srv.Addrs()[0]
	allowed := Options{}
	dialer := func(src string) *net.Dialer {
		return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	}
	const n, workers = 10000, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open int
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / workers {
				c, err := dialer("127.0.0.1").Dial("tcp", addr)
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				if !closedWithin(c, 2*time.Second) {
					mu.Lock()
					open++
					mu.Unlock()
				}
				c.Close()
			}
			_ = w
		}()
	}
	// An allowed peer calls while the refused ones pour in.
	nc, err := dialer("127.0.0.2").Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := rpc.NewClient(nc)
	defer rc.Close()
	var sum int
	if err := rc.Call("Stock.Add", Pair{A: 1, B: 2}, &sum); err != nil || sum != 3 {
		t.Fatalf("allowed peer: %d, %v", sum, err)
	}
	wg.Wait()
	if open > 0 {
		t.Fatalf("%d connections from a disallowed address stayed open", open)
	}
	if got := srv.Counts().RefusedAllow; got != n {
		t.Fatalf("RefusedAllow = %d, want %d", got, n)
	}
	_ = allowed
}

// With a secret, only clients that know it are served; 1.0.5 peers (stock
// net/rpc, no handshake) are served only from rpc.legacy addresses, and a
// client calls a 1.0.5 server in rpc.legacy without the handshake.
func TestNodeHandshake(t *testing.T) {
	secret := []byte("0123456789abcdef-cluster")
	srv := serveWith(t, Options{Secret: secret})
	addr := srv.Addrs()[0]
	if err := addWith(t, addr, Options{Secret: secret}); err != nil {
		t.Fatalf("client with the secret: %v", err)
	}
	if err := addWith(t, addr, Options{Secret: []byte("another secret, as long")}); err == nil {
		t.Fatal("a client with another secret was served")
	}
	if err := addWith(t, addr, Options{}); err == nil {
		t.Fatal("a client without the handshake was served")
	}
	// A stock net/rpc client (what a 1.0.5 node is) is dropped.
	if rc, err := rpc.Dial("tcp", addr); err == nil {
		var sum int
		if err := rc.Call("Stock.Add", Pair{A: 1, B: 1}, &sum); err == nil {
			t.Fatal("a stock net/rpc client was served without the handshake")
		}
		rc.Close()
	}
	waitFor(t, "handshake failures counted", func() bool { return srv.Counts().BadHandshake >= 3 })

	// The same stock client from a legacy address is served.
	legacy := serveWith(t, Options{Secret: secret, Legacy: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	rc, err := rpc.Dial("tcp", legacy.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := rc.Call("Stock.Add", Pair{A: 1, B: 1}, &sum); err != nil || sum != 2 {
		t.Fatalf("stock client from a legacy address: %d, %v", sum, err)
	}
	rc.Close()

	// A client with a secret calls a plain server (a 1.0.5 node) only when
	// the server's address is legacy.
	plain := serveWith(t, Options{})
	if err := addWith(t, plain.Addrs()[0], Options{Secret: secret}); err == nil {
		t.Fatal("a client with a secret talked to a server without one")
	}
	if err := addWith(t, plain.Addrs()[0], Options{Secret: secret, Legacy: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}); err != nil {
		t.Fatalf("client to a legacy server: %v", err)
	}
}

// Garbage in place of the handshake never crashes or blocks the server.
func TestHandshakeBadInput(t *testing.T) {
	secret := []byte("0123456789abcdef-cluster")
	srv := serveWith(t, Options{Secret: secret, HandshakeTimeout: 300 * time.Millisecond})
	for _, in := range []string{
		"",            // silence
		"GPRPC1 zz\n", // short
		"GPRPC1 " + strings.Repeat("g", 32) + "\n", // not hex
		strings.Repeat("A", 1<<16),                 // a flood
	} {
		c, err := net.Dial("tcp", srv.Addrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(in))
		if !closedWithin(c, 3*time.Second) {
			t.Errorf("input %.20q: connection still open", in)
		}
		c.Close()
	}
	if err := addWith(t, srv.Addrs()[0], Options{Secret: secret}); err != nil {
		t.Fatalf("after the bad input: %v", err)
	}
}

func TestMsgLimiterFraming(t *testing.T) {
	// Three messages of 3, 200 and 70 000 bytes, then one of 2^40.
	var stream []byte
	stream = append(stream, 3, 'a', 'b', 'c')
	stream = append(stream, 0xFF, 200)
	stream = append(stream, make([]byte, 200)...)
	stream = append(stream, 0xFD, 0x01, 0x11, 0x70)
	stream = append(stream, make([]byte, 70000)...)
	good := len(stream)
	stream = append(stream, 0xFB, 0x01, 0, 0, 0, 0)
	m := newMsgLimiter(bytes.NewReader(stream), 1<<20)
	got, err := io.ReadAll(m)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if len(got) != good {
		t.Fatalf("passed %d bytes, want the %d before the bad prefix", len(got), good)
	}
}
