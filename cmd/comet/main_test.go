package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

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
	root := testenv.ZKRoot(t)
	zc := testenv.ZKConn(t)
	t.Cleanup(func() { testenv.ZKDeleteAll(t, zc, root) })
	tcp, ws, rpc, stat := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	d := testenv.StartDaemon(t, testenv.Binary(t, "comet"), fmt.Sprintf(`
tcp.bind = %q
websocket.bind = %q
stat.bind = %q
pprof.bind = []
[rpc]
bind = %q
[zookeeper]
addr = %q
timeout = "4s"
comet.path = %q
comet.node = "node1"
message.path = %q
`, tcp, ws, stat, rpc, testenv.ZK(t), root+"/comet", root+"/message"))
	testenv.WaitListening(t, tcp, 20*time.Second)
	nodePath := root + "/comet/node1"
	testenv.WaitFor(t, 10*time.Second, "registration", func() bool {
		kids, _, _ := zc.Children(nodePath)
		return len(kids) == 1
	})

	nc, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("*3\r\n$3\r\nsub\r\n$1\r\nk\r\n$2\r\n30\r\n")); err != nil {
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
	// ZooKeeper, so web never routes a reconnecting client back to it.
	if kids, _, err := zc.Children(nodePath); err != nil || len(kids) != 0 {
		t.Fatalf("connection closed while still registered: %v %v", kids, err)
	}
	if code := <-codec; code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
}
