package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

// TestBadConfigExits2: a bad configuration is one line on stderr naming
// the key, and exit status 2.
func TestBadConfigExits2(t *testing.T) {
	t.Parallel()
	bin := testenv.Binary(t, "message")
	d := testenv.StartDaemon(t, bin, "[storage]\ntype = \"cassandra\"\n")
	if code := d.Wait(); code != 2 {
		t.Fatalf("exit status %d, want 2; log:\n%s", code, d.Log())
	}
	log := strings.TrimSpace(d.Log())
	if strings.Count(log, "\n") != 0 || !strings.Contains(log, "storage.type") {
		t.Errorf("stderr %q, want one line naming storage.type", log)
	}
}

// TestServeAndStop runs the binary: it registers in ZooKeeper, stores and
// returns messages over RPC, and on SIGTERM removes its node and exits 0.
func TestServeAndStop(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	d := c.StartMessage(func(cfg *conf.Message) { cfg.Node.Weight = 2 })
	rpcAddr, conn, parent := d.RPC, c.ZKConn, c.MessagePath

	var child string
	testenv.WaitFor(t, 30*time.Second, "the message node in ZooKeeper", func() bool {
		children, _, err := conn.Children(parent)
		if err != nil || len(children) != 1 {
			return false
		}
		child = parent + "/" + children[0]
		return true
	})
	raw, _, err := conn.Get(child)
	if err != nil {
		t.Fatal(err)
	}
	var data api.MessageNodeData
	if err := json.Unmarshal(raw, &data); err != nil || len(data.RPC) != 1 || data.RPC[0] != rpcAddr || data.Weight != 2 {
		t.Errorf("node data %s (%v), want rpc [%s] weight 2", raw, err, rpcAddr)
	}

	rc := gobrpc.NewClient(rpcAddr, 10*time.Second)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	key := testenv.Unique(t)
	mid := time.Now().UnixNano() / 100
	var ok int
	if err := rc.Call(ctx, api.MessageSavePrivate, &api.MessageSavePrivateArgs{
		Key: key, Msg: json.RawMessage(`{"hi":1}`), MsgId: mid, Expire: 60}, &ok); err != nil {
		t.Fatal(err)
	}
	var resp api.MessageGetResp
	if err := rc.Call(ctx, api.MessageGetPrivate, &api.MessageGetPrivateArgs{Key: key}, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Msgs) != 1 || resp.Msgs[0].MsgId != mid || string(resp.Msgs[0].Msg) != `{"hi":1}` {
		t.Errorf("GetPrivate: %+v, want the saved message", resp.Msgs)
	}
	if err := rc.Call(ctx, api.MessageDelPrivate, key, &ok); err != nil {
		t.Fatal(err)
	}

	if code := d.Stop(); code != 0 {
		t.Fatalf("exit status after SIGTERM %d, want 0; log:\n%s", code, d.Log())
	}
	if ok, _, err := conn.Exists(child); err != nil || ok {
		t.Errorf("node %s after SIGTERM: exists=%v err=%v, want gone", child, ok, err)
	}
}
