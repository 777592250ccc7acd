package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// listen returns a loopback listener wrapped by a Limiter with r.
func listen(t *testing.T, r Rules) (*Limiter, net.Listener) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New("test", r, nil)
	ln := l.Wrap(raw)
	t.Cleanup(func() { ln.Close() })
	return l, ln
}

// dialFrom connects to addr from the loopback source address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// acceptOne accepts in the background and returns what Accept handed on.
func acceptLoop(ln net.Listener) <-chan net.Conn {
	out := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(out)
				return
			}
			out <- c
		}
	}()
	return out
}

// closedByPeer reports whether the server side closed c (a read sees EOF
// or a reset within a second).
func closedByPeer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

func TestCapClosesConnectionsBeyondMaxAndFreesOnClose(t *testing.T) {
	l, ln := listen(t, Rules{Max: 2})
	got := acceptLoop(ln)
	a := dialFrom(t, "127.0.0.1", ln.Addr().String())
	b := dialFrom(t, "127.0.0.1", ln.Addr().String())
	sa, sb := <-got, <-got
	c := dialFrom(t, "127.0.0.1", ln.Addr().String())
	if !closedByPeer(c) {
		t.Fatal("third connection over Max 2 was not closed")
	}
	if closedByPeer(a) || closedByPeer(b) {
		t.Fatal("connections under the cap were closed")
	}
	if n := l.Counts(); n.Open != 2 || n.RefusedCap != 1 || n.Accepted != 2 {
		t.Fatalf("counts %+v, want open 2, accepted 2, refused 1", n)
	}
	sa.Close()
	sa.Close() // twice counts out once
	d := dialFrom(t, "127.0.0.1", ln.Addr().String())
	if closedByPeer(d) {
		t.Fatal("after one connection closed, a new one was refused")
	}
	<-got
	sb.Close()
	if n := l.Counts(); n.Open != 1 {
		t.Fatalf("open %d after closing, want 1", n.Open)
	}
}

func TestAllowListRefusesOtherAddresses(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("10.0.0.0/8")}
	l, ln := listen(t, Rules{Allow: nets})
	got := acceptLoop(ln)
	bad := dialFrom(t, "127.0.0.1", ln.Addr().String())
	if !closedByPeer(bad) {
		t.Fatal("connection from 127.0.0.1 was not closed")
	}
	good := dialFrom(t, "127.0.0.2", ln.Addr().String())
	if closedByPeer(good) {
		t.Fatal("connection from 127.0.0.2 was closed")
	}
	<-got
	if n := l.Counts(); n.RefusedAllow != 1 || n.Accepted != 1 {
		t.Fatalf("counts %+v", n)
	}
}

func TestPerAddressLimitCountsEachAddress(t *testing.T) {
	l, ln := listen(t, Rules{PerAddr: 2})
	got := acceptLoop(ln)
	for range 2 {
		dialFrom(t, "127.0.0.1", ln.Addr().String())
		<-got
	}
	third := dialFrom(t, "127.0.0.1", ln.Addr().String())
	if !closedByPeer(third) {
		t.Fatal("third connection from one address was not closed")
	}
	other := dialFrom(t, "127.0.0.3", ln.Addr().String())
	if closedByPeer(other) {
		t.Fatal("a connection from another address was refused")
	}
	if n := l.Counts(); n.RefusedAddr != 1 {
		t.Fatalf("counts %+v", n)
	}
}

func TestRatePerAddressWithDeferMarksInsteadOfClosing(t *testing.T) {
	l, ln := listen(t, Rules{Rate: 0.001, Burst: 2, Defer: true})
	var now atomic.Int64
	now.Store(1000)
	l.now = func() time.Time { return time.Unix(now.Load(), 0) }
	got := acceptLoop(ln)
	var refusals []error
	for range 3 {
		dialFrom(t, "127.0.0.1", ln.Addr().String())
		refusals = append(refusals, RefusalOf(<-got))
	}
	if refusals[0] != nil || refusals[1] != nil || !errors.Is(refusals[2], ErrRate) {
		t.Fatalf("refusals %v, want nil, nil, ErrRate", refusals)
	}
	now.Add(3600) // an hour later the bucket has refilled
	dialFrom(t, "127.0.0.1", ln.Addr().String())
	if err := RefusalOf(<-got); err != nil {
		t.Fatalf("after an hour: %v", err)
	}
	if n := l.Counts(); n.RefusedRate != 1 || n.Accepted != 3 || n.Open != 4 {
		t.Fatalf("counts %+v", n)
	}
}

func TestSharedLimiterOverTwoListeners(t *testing.T) {
	l := New("two", Rules{Max: 1}, nil)
	var lns []net.Listener
	for range 2 {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := l.Wrap(raw)
		t.Cleanup(func() { ln.Close() })
		lns = append(lns, ln)
	}
	got := acceptLoop(lns[0])
	acceptLoop(lns[1])
	dialFrom(t, "127.0.0.1", lns[0].Addr().String())
	<-got
	c := dialFrom(t, "127.0.0.1", lns[1].Addr().String())
	if !closedByPeer(c) {
		t.Fatal("the second listener accepted past the shared cap")
	}
}

func TestBudgetKeepsAReserve(t *testing.T) {
	for _, tc := range []struct {
		limit        uint64
		reserve      int
		clients, res int
	}{
		{20000, 0, 18000, 2000},
		{1024, 0, 922, 102},
		{150, 0, 75, 75},
		{20000, 500, 19500, 500},
		{0, 0, 0, 0},
	} {
		c, r := Budget(tc.limit, tc.reserve)
		if c != tc.clients || r != tc.res {
			t.Errorf("Budget(%d, %d) = %d, %d; want %d, %d", tc.limit, tc.reserve, c, r, tc.clients, tc.res)
		}
	}
}
