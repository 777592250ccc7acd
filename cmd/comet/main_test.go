package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/gorilla/websocket"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
)

// A bad configuration is one line on stderr naming the key, and status 2.
func TestBadConfigExits2(t *testing.T) {
	t.Parallel()
	d := testenv.StartDaemon(t, testenv.Binary(t, "comet"), "[channel]\nbucket = 3\n")
	if code := d.Wait(); code != 2 {
		t.Fatalf("exit status %d, want 2; log:\n%s", code, d.Log())
	}
	log := strings.TrimSpace(d.Log())
	if strings.Contains(log, "\n") || !strings.Contains(log, "channel.bucket") {
		t.Errorf("stderr %q, want one line naming channel.bucket", log)
	}
}

// The binary serves subscribers, and on SIGTERM leaves ZooKeeper before it
// closes their connections, then exits 0.
func TestServeAndStop(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	d := c.StartComet("node1", 1)
	zc, tcp := c.ZKConn, d.TCP
	nodePath := c.CometPath + "/node1"
	testenv.WaitFor(t, 10*time.Second, "registration", func() bool {
		kids, _, _ := zc.Children(nodePath)
		return len(kids) == 1
	})

	nc, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write(api.AppendSubArgs(nil, "sub", "k", "30")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := br.ReadString('\n'); err != nil || line != "+h\r\n" {
		t.Fatalf("subscribe answer %q, %v", line, err)
	}

	codec := make(chan int, 1)
	go func() { codec <- d.Stop() }()
	_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("unexpected bytes from comet while stopping")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection still open 20 s after SIGTERM")
	}
	// The client sees its connection end only after comet has left
	// ZooKeeper, so web never routes a reconnecting client back to it (a
	// clean stop without a standby removes the node itself: §6.4).
	if kids, _, err := zc.Children(nodePath); (err != nil && !errors.Is(err, zk.ErrNoNode)) || len(kids) != 0 {
		t.Fatalf("connection closed while still registered: %v %v", kids, err)
	}
	if code := <-codec; code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
}

// statMemory forces two garbage collections through pprof and returns
// comet's /stat?type=memory.
func statMemory(t *testing.T, stat, pprof string) map[string]float64 {
	t.Helper()
	for range 2 {
		resp, err := http.Get("http://" + pprof + "/debug/pprof/heap?gc=1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := http.Get("http://" + stat + "/stat?type=memory")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct { // two of 1.0.5's memory fields
		StackInuse float64 `json:"stack_inuse"`
		HeapInuse  float64 `json:"heap_inuse"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return map[string]float64{"stack_inuse": out.StackInuse, "heap_inuse": out.HeapInuse}
}

// Idle subscribers must cost little: each one's reader parks on a minimal
// (2 KiB) stack, and the heap it keeps is small, for TCP and WebSocket
// alike. Measured on the real binary (built without the race detector,
// which would double every stack).
func TestIdleConnectionsStayLean(t *testing.T) {
	t.Parallel()
	pprof := testenv.FreeAddr(t)
	d := testenv.NewCluster(t).StartComet("node1", 1, func(cfg *conf.Comet) {
		cfg.Pprof.Bind = conf.AddrList{pprof}
		cfg.Log.Level = "info" // one debug line per connection would blur the heap
	})
	tcp, ws, stat := d.TCP, d.WS, d.Stat
	testenv.WaitListening(t, pprof, testenv.StartTimeout)

	const n = 500
	var keep []io.Closer
	defer func() {
		for _, c := range keep {
			c.Close()
		}
	}()
	measure := func(name string, open func(i int) io.Closer) {
		before := statMemory(t, stat, pprof)
		for i := range n {
			keep = append(keep, open(i))
		}
		time.Sleep(300 * time.Millisecond)
		after := statMemory(t, stat, pprof)
		stack := (after["stack_inuse"] - before["stack_inuse"]) / n
		heap := (after["heap_inuse"] - before["heap_inuse"]) / n
		t.Logf("%s: %.0f bytes of stack and %.0f of heap per idle connection", name, stack, heap)
		if stack > 2600 {
			t.Errorf("%s: %.0f bytes of stack per idle connection, want 2048", name, stack)
		}
		if heap > 4096 {
			t.Errorf("%s: %.0f bytes of heap per idle connection", name, heap)
		}
	}
	measure("tcp", func(i int) io.Closer {
		nc, err := net.Dial("tcp", tcp)
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("tcp-%d", i)
		// The request (three arguments, no version) and a heartbeat in one write.
		nc.Write(append(api.AppendSubArgs(nil, "sub", key, "30"), api.Heartbeat...))
		want := "+h\r\n+h\r\n" // a heartbeat must not grow the stack either
		got := make([]byte, len(want))
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(nc, got); err != nil || string(got) != want {
			t.Fatalf("tcp subscriber %d: %q, %v", i, got, err)
		}
		return nc
	})
	measure("websocket", func(i int) io.Closer {
		c, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://%s/sub?key=ws-%d&heartbeat=30&ver=1", ws, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "+h\r\n" {
			t.Fatalf("websocket subscriber %d: %q, %v", i, p, err)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte("h")); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "+h\r\n" {
			t.Fatalf("websocket subscriber %d heartbeat: %q, %v", i, p, err)
		}
		return c
	})
}
