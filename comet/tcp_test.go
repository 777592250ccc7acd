package comet

import (
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
)

func TestTCPSubscribeAndHeartbeat(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	cl := dialTCP(t, c.TCPAddrs()[0])
	// The first heartbeat arrives in the same write as the request
	// (docs/protocol.md §9.1): it must be answered, not lost.
	cl.write(append(subBytes("sub", "Terry-Mao", "30", "", "1.0.5"), 'h'))
	cl.expect("+h\r\n+h\r\n")
	cl.write([]byte("h"))
	cl.expect("+h\r\n")
	cl.write([]byte("hh"))
	cl.expect("+h\r\n+h\r\n")
	if n := keyConns(t, c, "Terry-Mao"); n != 1 {
		t.Fatalf("stat: %d connections of the key, want 1", n)
	}
	// Any other byte closes the connection.
	cl.write([]byte("x"))
	cl.expectClosed(5 * time.Second)
	waitIdle(t, c)
}

func TestTCPErrorReplies(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.MaxSubscriber = 1
	c := startComet(t, cfg)
	addr := c.TCPAddrs()[0]
	paramErrors := map[string][]byte{
		"unknown command": subBytes("pub", "k", "30"),
		"empty key":       subBytes("sub", "", "30"),
		"heartbeat < 30":  subBytes("sub", "k", "29"),
		"heartbeat text":  subBytes("sub", "k", "soon"),
		"missing args":    subBytes("sub", "k"),
		"garbage":         []byte("GET / HTTP/1.1\r\n\r\n"),
		"*9":              []byte("*9\r\n"),
		"*9 no CRLF":      []byte("*9"),
		"negative $":      []byte("*3\r\n$-1\r\n"),
		"huge $":          []byte("*3\r\n$2147483648\r\n"),
		"no CRLF":         []byte("*3\n$3\nsub\n"),
		// Much more than comet reads: it still answers and closes.
		"garbage flood": []byte(strings.Repeat("garbage ", 8<<10)),
	}
	for name, req := range paramErrors {
		cl := dialTCP(t, addr)
		cl.write(req)
		if got := cl.readN(4); got != "-p\r\n" {
			t.Errorf("%s: got %q, want -p", name, got)
		}
		cl.expectClosed(5 * time.Second)
	}

	// -c: the key already has maxsubscriber (1) connections.
	first := subscribeTCP(t, c, "full", "", "1")
	cl := dialTCP(t, addr)
	cl.write(subBytes("sub", "full", "30"))
	cl.expect("-c\r\n")
	cl.expectClosed(5 * time.Second)
	first.write([]byte("h"))
	first.expect("+h\r\n") // the one already there is kept

	// -n: the ring gives the key to another node.
	rc := rpcClient(t, c)
	var r int
	registerComet(t, c, "other", 1)
	call(t, rc, api.CometMigrate, &api.CometMigrateArgs{Nodes: map[string]int{"node1": 1, "other": 1}}, &r)
	var foreign string
	for i := 0; foreign == ""; i++ {
		k := "k" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
		if !c.ring.owns(k) {
			foreign = k
		}
	}
	cl = dialTCP(t, addr)
	cl.write(subBytes("sub", foreign, "30"))
	cl.expect("-n\r\n")
	cl.expectClosed(5 * time.Second)
}

func TestTCPHandshakeTimeoutAndSlowloris(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Handshake.Timeout = conf.Duration(time.Second)
	c := startComet(t, cfg)
	addr := c.TCPAddrs()[0]

	silent := dialTCP(t, addr)
	slow := dialTCP(t, addr)
	req := subBytes("sub", "slow", "30")
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range req {
			if _, err := slow.nc.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	silent.expectClosed(10 * time.Second)
	slow.expectClosed(10 * time.Second)
	if time.Since(start) > 8*time.Second {
		t.Errorf("slowloris connection lived %v with a 1 s handshake timeout", time.Since(start))
	}
	<-done
	waitIdle(t, c)
}

// The heartbeat timeout is heartbeat + 5 s, so this test lasts ~35 s; it
// runs in parallel with the others.
func TestTCPSilentSubscriberClosedAfterHeartbeatPlus5s(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	cl := subscribeTCP(t, c, "quiet", "", "1")
	start := time.Now()
	cl.expectClosed(60 * time.Second)
	if d := time.Since(start); d < 30*time.Second {
		t.Fatalf("closed after %v, before heartbeat + 5 s", d)
	}
	waitIdle(t, c)
}
