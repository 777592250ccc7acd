package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

// The tests of docs/security.md against the real daemons.

// rssMB reads a process's resident memory from /proc, in MB.
func rssMB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// A gob message announced as 1.5 GB and streamed at comet's RPC port is
// cut off at its length prefix: comet's RSS stays under 100 MB, the event
// is logged, and comet answers RPC afterwards.
func TestCometRSSStaysLowUnderOversizedGob(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	cm := c.StartComet("node1", 1)
	before := rssMB(t, cm.Pid())
	conn, err := net.Dial("tcp", cm.RPC)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peak := 0
	var sent atomic.Int64
	done := make(chan error, 1)
	go func() {
		// 1.5 GB as a gob count (0xFC: four bytes follow), then data.
		if _, err := conn.Write([]byte{0xFC, 0x59, 0x68, 0x2F, 0x00}); err != nil {
			done <- err
			return
		}
		chunk := make([]byte, 1<<20)
		for range 1536 {
			n, err := conn.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("comet read the whole 1.5 GB message")
			}
			waiting = false
		case <-time.After(20 * time.Millisecond):
			peak = max(peak, rssMB(t, cm.Pid()))
		}
	}
	peak = max(peak, rssMB(t, cm.Pid()))
	t.Logf("comet RSS %d MB before, peak %d MB while %d MB were streamed", before, peak, sent.Load()>>20)
	if peak >= 100 {
		t.Fatalf("comet RSS reached %d MB", peak)
	}
	rc := gobrpc.NewClient(cm.RPC, 5*time.Second)
	defer rc.Close()
	var r int
	if err := rc.Call(t.Context(), api.CometPing, 0, &r); err != nil {
		t.Fatalf("Ping after the oversized message: %v", err)
	}
	waitFor(t, "the oversized message logged", func() bool { return strings.Contains(cm.Log(), "message over rpc.maxmsg") })
}

// With rpc.secret on every node, the cluster works (web → comet → message
// through the handshake), while a process without the secret can neither
// add a token (New) nor migrate; comet keeps serving.
func TestForgedRPCRefusedInASecretCluster(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	const secret = "e2e-cluster-secret-0123456789"
	c.StartMessage(func(m *conf.Message) { m.RPC.Secret = secret })
	cm := c.StartComet("node1", 1, func(cc *conf.Comet) {
		cc.RPC.Secret = secret
		cc.Channel.Auth = true
	})
	w := c.StartWeb(func(wc *conf.Web) { wc.RPC.Secret = secret })
	key := "e2e-secret-" + c.Name
	waitFor(t, "web routes the key", func() bool { _, ret := serverGet(t, w, key, 2); return ret == 0 })
	// A token through web (CometRPC.New with the handshake) works.
	if a := httpGet(t, "http://"+w.Admin+"/1/token/add?k="+key+"&t=good-token"); a.ret(t) != 0 {
		t.Fatalf("token/add: %s", a.Body)
	}
	sub, reply := subscribeTCP(t, cm.TCP, key, "good-token")
	if sub == nil {
		t.Fatalf("subscribe with the real token: %s", reply)
	}
	defer sub.close()
	// A local process without the secret.
	forger := gobrpc.NewClient(cm.RPC, 2*time.Second)
	defer forger.Close()
	var r int
	if err := forger.Call(t.Context(), api.CometNew, &api.CometNewArgs{Key: key, Token: "forged", Expire: 600}, &r); err == nil {
		t.Fatal("New without the secret was served")
	}
	if err := forger.Call(t.Context(), api.CometMigrate, &api.CometMigrateArgs{Nodes: map[string]int{"evil": 1}}, &r); err == nil {
		t.Fatal("Migrate without the secret was served")
	}
	if _, reply := subscribeTCP(t, cm.TCP, key, "forged"); reply != "-a" {
		t.Fatalf("subscribe with the forged token: %q, want -a", reply)
	}
	// Stored push through web → comet → message, all with the handshake.
	if a := push(t, w, key, 600, `{"n":1}`); a.ret(t) != 0 {
		t.Fatalf("push: %s", a.Body)
	}
	if m := sub.next(t); !strings.Contains(string(m.Msg), `"n":1`) {
		t.Fatalf("pushed message: %s", m.Msg)
	}
	if msgs, a := offline(t, w, key, 0); len(msgs) != 1 {
		t.Fatalf("offline messages: %s", a.Body)
	}
}

// adminRoutes are every admin path (and one that is not routed).
var adminRoutes = []string{
	"/1/admin/push/private?key=%s&expire=600",
	"/1/admin/push/mprivate?expire=600&k=%s",
	"/1/admin/msg/del?key=%s",
	"/admin/push?key=%s&expire=600",
	"/admin/msg/clean?key=%s",
	"/1/token/add?k=%s&t=tok",
	"/1/admin/room/join?rid=r-%s",
	"/1/admin/room/leave?rid=r-%s",
	"/1/admin/room/keys?rid=r-%s",
	"/1/admin/room/del?rid=r-%s",
	"/1/admin/push/room?rid=r-%s&expire=600",
	"/1/admin/push/all?expire=600&k=%s",
	"/1/admin/unknown?k=%s",
}

// With admin.token, every admin request without it is 401 and changes
// nothing: the subscriber receives nothing, nothing is stored.
func TestAdminWithoutTokenPushesAndStoresNothing(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	c.StartMessage()
	cm := c.StartComet("node1", 1)
	const token = "e2e-admin-token-0123456789"
	w := c.StartWeb(func(wc *conf.Web) { wc.Admin.Token = token })
	key := "e2e-admin-" + c.Name
	waitFor(t, "web routes the key", func() bool { _, ret := serverGet(t, w, key, 2); return ret == 0 })
	sub, reply := subscribeTCP(t, cm.TCP, key, "")
	if sub == nil {
		t.Fatal(reply)
	}
	defer sub.close()
	body := fmt.Sprintf(`{"m":"{\"forged\":1}","k":%q}`, key)
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Bearer " + strings.ToUpper(token)} {
		for _, route := range adminRoutes {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				req, _ := http.NewRequest(method, "http://"+w.Admin+fmt.Sprintf(route, key), strings.NewReader(body))
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := httpClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), `"ret":1003`) {
					t.Errorf("%q %s %s: %d %s, want 401", auth, method, route, resp.StatusCode, b)
				}
			}
		}
	}
	sub.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if line, err := sub.r.ReadString('\n'); err == nil {
		t.Fatalf("the subscriber received %q from refused requests", line)
	}
	if msgs, a := offline(t, w, key, 0); len(msgs) != 0 {
		t.Fatalf("refused requests stored messages: %s", a.Body)
	}
	// The same push with the token works.
	req, _ := http.NewRequest(http.MethodPost, "http://"+w.Admin+"/1/admin/push/private?expire=0&key="+key, strings.NewReader(`{"real":1}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("push with the token: %d", resp.StatusCode)
	}
}

// push/private?key=<the public set's name> stays a private message, and
// msg/del key=<a room's storage name> leaves the room: subscriber keys
// cannot reach room or public storage (redis.roomdb).
func TestForgedPublicAndRoomKeysTouchNothing(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	// The default prefix, so that a room's storage name is a valid key
	// (64 bytes at most); the room id is this test's own.
	c.StartMessage(func(m *conf.Message) { m.Room.Prefix = "gopush:room:" })
	c.StartComet("node1", 1)
	w := c.StartWeb()
	pubKey := c.PublicKey
	waitFor(t, "web routes keys", func() bool { _, ret := serverGet(t, w, pubKey, 2); return ret == 0 })
	rid := fmt.Sprintf("lobby-%x", time.Now().UnixNano())
	if a := adminPost(t, w, "/1/admin/room/join?rid="+rid, `{"k":"alice,bob"}`); a.ret(t) != 0 {
		t.Fatal(a.Body)
	}
	if a := adminPost(t, w, "/1/admin/push/all?expire=600", `{"real":"public"}`); a.ret(t) != 0 {
		t.Fatal(a.Body)
	}
	if a := push(t, w, pubKey, 600, `{"forged":"broadcast"}`); a.ret(t) != 0 {
		t.Fatal(a.Body)
	}
	a := httpGet(t, "http://"+w.HTTP+"/1/msg/get?k=someone-"+c.Name+"&m=0&pm=0")
	if strings.Contains(a.Body, "forged") || !strings.Contains(a.Body, "real") {
		t.Fatalf("public messages after a private push to %q: %s", pubKey, a.Body)
	}
	roomKey := "gopush:room:" + rid
	if a := adminPost(t, w, "/1/admin/msg/del", "key="+roomKey); a.ret(t) != 0 {
		t.Fatal(a.Body)
	}
	if keys := roomKeys(t, w, rid); !slices.Equal(keys, []string{"alice", "bob"}) {
		t.Fatalf("room after msg/del key=%s: %v", roomKey, keys)
	}
	if a := httpGet(t, "http://"+w.HTTP+"/1/msg/get?k="+roomKey+"&m=0"); a.ret(t) != 0 {
		t.Fatalf("msg/get k=%s: %s, want ret 0", roomKey, a.Body)
	}
	adminPost(t, w, "/1/admin/room/del?rid="+rid, "")
	adminPost(t, w, "/1/admin/msg/del", "key="+pubKey)
}

// ---- many connections, held by child processes ----

// The connection holder: the test binary run again with
// GOPUSH_E2E_HOLD=addr,src,n holds n connections to addr from source IP
// src, prints "open=<n> closed=<m>" once they are open and the peer had a
// second to close some, and keeps them until its stdin closes.
func TestHoldConnectionsChild(t *testing.T) {
	spec := os.Getenv("GOPUSH_E2E_HOLD")
	if spec == "" {
		t.Skip("only run as a child of the many-connections tests")
	}
	f := strings.Split(spec, ",")
	addr, src := f[0], f[1]
	n, _ := strconv.Atoi(f[2])
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	var failed atomic.Int64
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				nc, err := d.Dial("tcp", addr)
				if err != nil {
					failed.Add(1)
					continue
				}
				conns[i] = nc
			}
		}()
	}
	wg.Wait()
	time.Sleep(time.Second)
	var closed atomic.Int64
	for _, nc := range conns {
		if nc == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, err := nc.Read(make([]byte, 1))
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) {
				closed.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("\nHOLD open=%d closed=%d failed=%d\n", int64(n)-failed.Load(), closed.Load(), failed.Load())
	io.Copy(io.Discard, os.Stdin)
	for _, nc := range conns {
		if nc != nil {
			nc.Close()
		}
	}
}

// holdConnections opens total connections to addr from children (each
// under the 20 000 open files a process may have), spread over source
// addresses 127.0.0.2.., and returns how many the server closed at once.
// The connections are held until the test ends.
func holdConnections(t *testing.T, addr string, total, children int) (closed int) {
	t.Helper()
	per := total / children
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
	}
	var kids []*child
	for i := range children {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHoldConnectionsChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), fmt.Sprintf("GOPUSH_E2E_HOLD=%s,127.0.0.%d,%d", addr, 2+i, per))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		k := &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(out)}
		kids = append(kids, k)
		t.Cleanup(func() { k.stdin.Close(); k.cmd.Wait() })
	}
	for _, k := range kids {
		for {
			line, err := k.out.ReadString('\n')
			if err != nil {
				t.Fatalf("holder: %v", err)
			}
			if strings.HasPrefix(line, "HOLD ") {
				var open, cl, failed int
				fmt.Sscanf(line, "HOLD open=%d closed=%d failed=%d", &open, &cl, &failed)
				t.Logf("holder: %s", strings.TrimSpace(line))
				closed += cl + failed
				break
			}
		}
	}
	return closed
}

// checkRefusalLogBounded checks that refusing n connections wrote a few
// log lines (log.repeat per log.window), not one per connection.
func checkRefusalLogBounded(t *testing.T, log string, n int) {
	t.Helper()
	lines := strings.Count(log, `msg="connection refused"`)
	t.Logf("%d connections refused, %d log lines about it", n, lines)
	if lines == 0 || lines > 40 {
		t.Fatalf("%d log lines for %d refused connections, want a few", lines, n)
	}
}

// medianLatency runs f n times and returns the median duration, failing
// when one run takes over a second or fails.
func medianLatency(t *testing.T, n int, f func() error) time.Duration {
	t.Helper()
	var ds []time.Duration
	for range n {
		start := time.Now()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		if d > time.Second {
			t.Fatalf("a call took %v", d)
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds[n/2]
}

// 21 000 idle connections to web's public port, from three source
// addresses, against web's 20 000-file limit: the public port is capped
// below the limit (the excess is closed at once), and the admin API
// answers within 100 ms throughout.
func TestWebPublicFloodLeavesAdminAnswering(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 21 000 connections")
	}
	c := testenv.NewCluster(t)
	w := c.StartWeb()
	closed := holdConnections(t, w.HTTP, 21000, 3)
	if closed < 21000-20000 {
		t.Fatalf("web closed only %d of 21 000 connections (limit 20 000)", closed)
	}
	admin := &http.Client{Timeout: 5 * time.Second}
	med := medianLatency(t, 9, func() error {
		resp, err := admin.Post("http://"+w.Admin+"/1/admin/push/private?key=k&expire=x", "application/json", strings.NewReader(`{}`))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	})
	t.Logf("%d connections closed by web; admin median %v", closed, med)
	if med > 100*time.Millisecond {
		t.Fatalf("admin answered in %v (median) during the flood", med)
	}
	if strings.Contains(w.Log(), "too many open files") {
		t.Fatal("web ran out of file descriptors")
	}
	checkRefusalLogBounded(t, w.Log(), closed)
}

// 21 000 idle connections to comet's TCP port: comet caps its client
// listeners below its 20 000-file limit, and its RPC and stat ports answer.
func TestCometFloodLeavesRPCAndStatAnswering(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 21 000 connections")
	}
	c := testenv.NewCluster(t)
	cm := c.StartComet("node1", 1, func(cc *conf.Comet) { cc.Channel.Handshake.Timeout = conf.Duration(2 * time.Minute) })
	stat := cm.Stat
	sub, reply := subscribeTCP(t, cm.TCP, "e2e-flood-key", "")
	if sub == nil {
		t.Fatal(reply)
	}
	defer sub.close()
	closed := holdConnections(t, cm.TCP, 21000, 3)
	if closed < 21000-20000 {
		t.Fatalf("comet closed only %d of 21 000 connections (limit 20 000)", closed)
	}
	rc := gobrpc.NewClient(cm.RPC, 5*time.Second)
	defer rc.Close()
	statClient := &http.Client{Timeout: 5 * time.Second}
	med := medianLatency(t, 5, func() error {
		var r int
		if err := rc.Call(t.Context(), api.CometPing, 0, &r); err != nil {
			return err
		}
		resp, err := statClient.Get("http://" + stat + "/stat?type=server")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	})
	// A new RPC connection too (web reconnecting), and the subscriber is
	// still served.
	fresh := gobrpc.NewClient(cm.RPC, 5*time.Second)
	defer fresh.Close()
	var r int
	if err := fresh.Call(t.Context(), api.CometPushPrivate, &api.CometPushPrivateArgs{Key: "e2e-flood-key", Msg: []byte(`{"x":1}`)}, &r); err != nil {
		t.Fatalf("a new RPC connection during the flood: %v", err)
	}
	if m := sub.next(t); !strings.Contains(string(m.Msg), `"x":1`) {
		t.Fatalf("subscriber got %s", m.Msg)
	}
	t.Logf("%d connections closed by comet; RPC+stat median %v", closed, med)
	if strings.Contains(cm.Log(), "too many open files") {
		t.Fatal("comet ran out of file descriptors")
	}
	checkRefusalLogBounded(t, cm.Log(), closed)
}
