package comet

import (
	"context"
	"encoding/json"
	"testing"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

// The real message daemon (cmd/message, storing in the test Redis) keeps
// what comet pushes with expire > 0, under the mid the client received,
// and nothing pushed with expire 0.
func TestPushStoredByTheRealMessageDaemon(t *testing.T) {
	t.Parallel()
	cluster := testenv.NewCluster(t)
	node := cluster.StartMessage()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.ZooKeeper.Comet.Path = cluster.CometPath
	cfg.ZooKeeper.Message.Path = cluster.MessagePath
	c := startComet(t, cfg)
	rc := rpcClient(t, c)
	waitStorage(t, rc)

	mc := gobrpc.NewClient(node.RPC, 5e9)
	t.Cleanup(func() { mc.Close() })
	key, key2 := testenv.Unique(t), testenv.Unique(t)
	t.Cleanup(func() {
		var r int
		for _, k := range []string{key, key2, "warmup"} {
			_ = mc.Call(context.Background(), api.MessageDelPrivate, k, &r)
		}
	})
	stored := func(k string) []*api.Message {
		t.Helper()
		var resp api.MessageGetResp
		call(t, mc, api.MessageGetPrivate, &api.MessageGetPrivateArgs{Key: k, MsgId: 0}, &resp)
		return resp.Msgs
	}
	tcp := subscribeTCP(t, c, key, "", "1")
	ws := subscribeWS(t, c, key2, "", "1")

	push(t, rc, key, `{"n":0}`, 0)
	decode(t, tcp.readFrame())
	if got := stored(key); len(got) != 0 {
		t.Fatalf("expire 0 stored %d messages", len(got))
	}

	push(t, rc, key, `{"n":1}`, 60)
	d := decode(t, tcp.readFrame())
	got := stored(key)
	if len(got) != 1 || got[0].MsgId != d.Mid || string(got[0].Msg) != `{"n":1}` {
		t.Fatalf("stored %+v, delivered mid %d", got, d.Mid)
	}

	var resp api.CometPushPrivatesResp
	call(t, rc, api.CometPushPrivates, &api.CometPushPrivatesArgs{Keys: []string{key, key2}, Msg: json.RawMessage(`{"n":2}`), Expire: 60}, &resp)
	if len(resp.FKeys) != 0 {
		t.Fatalf("FKeys %v", resp.FKeys)
	}
	d1, d2 := decode(t, tcp.readFrame()), decode(t, ws.read())
	if d1.Mid == d2.Mid {
		t.Fatalf("two keys pushed together share mid %d", d1.Mid)
	}
	g1, g2 := stored(key), stored(key2)
	if len(g1) != 2 || g1[1].MsgId != d1.Mid || len(g2) != 1 || g2[0].MsgId != d2.Mid {
		t.Fatalf("stored %+v and %+v; delivered %d and %d", g1, g2, d1.Mid, d2.Mid)
	}
}
