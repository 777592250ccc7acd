package comet

import (
	"encoding/json"
	"net/rpc"
	"strings"
	"testing"
	"time"
)

// The argument and reply types of CometRPC exactly as docs/protocol.md §4 writes them,
// declared here rather than taken from myrpc so that a renamed or retyped
// field in myrpc breaks this test: gob matches struct fields by name, and a
// gopush-cluster 1.0.5 web sends these.
type stockCometNewArgs struct {
	Expire int64
	Token  string
	Key    string
}

type stockCometPushPrivateArgs struct {
	Key    string
	Msg    json.RawMessage
	Expire uint
}

type stockCometPushPrivatesArgs struct {
	Keys   []string
	Msg    json.RawMessage
	Expire uint
}

type stockCometPushPrivatesResp struct {
	FKeys []string
}

type stockCometMigrateArgs struct {
	Nodes map[string]int
}

// TestStockNetRPCClientTalksToComet proves the RPC interop of docs/protocol.md §4: a
// plain net/rpc client (gob, one TCP connection), as a 1.0.5 web uses,
// calls every CometRPC method by its name with the types of docs/protocol.md §4.
func TestStockNetRPCClientTalksToComet(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Auth = true
	c := startComet(t, cfg)
	rc, err := rpc.Dial("tcp", c.RPCAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	stockCall := func(method string, args, reply any) {
		t.Helper()
		call := rc.Go(method, args, reply, make(chan *rpc.Call, 1))
		select {
		case <-call.Done:
			if call.Error != nil {
				t.Fatalf("%s: %v", method, call.Error)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no answer in 20 s", method)
		}
	}

	var r int
	stockCall("CometRPC.Ping", 0, &r)

	// New: the token is accepted afterwards (auth is on).
	stockCall("CometRPC.New", &stockCometNewArgs{Key: "Terry-Mao", Token: "tk", Expire: 0}, &r)
	tcpOld := subscribeTCP(t, c, "Terry-Mao", "tk", "")
	stockCall("CometRPC.New", &stockCometNewArgs{Key: "b", Token: "tb", Expire: 0}, &r)
	ws := subscribeWS(t, c, "b", "tb", "1.0.5")

	// PushPrivate reaches the key, in the old form for an empty version.
	stockCall("CometRPC.PushPrivate", &stockCometPushPrivateArgs{Key: "Terry-Mao", Msg: json.RawMessage(`{"test":1}`), Expire: 0}, &r)
	got := tcpOld.readFrame()
	if !strings.HasPrefix(got, `{"msg":"{\"test\":1}","mid":`) || !strings.HasSuffix(got, `,"gid":0}`) {
		t.Fatalf("PushPrivate from a stock client delivered %q", got)
	}

	// PushPrivates reaches both keys; nothing failed.
	var resp stockCometPushPrivatesResp
	stockCall("CometRPC.PushPrivates", &stockCometPushPrivatesArgs{Keys: []string{"Terry-Mao", "b"}, Msg: json.RawMessage(`[2]`), Expire: 0}, &resp)
	if len(resp.FKeys) != 0 {
		t.Fatalf("PushPrivates: FKeys %v, want none", resp.FKeys)
	}
	if got := tcpOld.readFrame(); !strings.HasPrefix(got, `{"msg":"[2]","mid":`) {
		t.Fatalf("PushPrivates, TCP old form: %q", got)
	}
	if got := ws.read(); !strings.HasPrefix(got, `{"msg":[2],"mid":`) || !strings.HasSuffix(got, `,"gid":0}`) {
		t.Fatalf("PushPrivates, WebSocket new form: %q", got)
	}

	// Close closes the key's connections.
	stockCall("CometRPC.Close", "b", &r)
	ws.expectClosed(10 * time.Second)

	// Migrate with a second node: keys of that node are refused with -n.
	registerComet(t, c, "other", 1)
	stockCall("CometRPC.Migrate", &stockCometMigrateArgs{Nodes: map[string]int{"node1": 1, "other": 1}}, &r)
	var foreign string
	for i := 0; foreign == ""; i++ {
		if k := "key-" + strings.Repeat("x", i); !c.ring.owns(k) {
			foreign = k
		}
	}
	stockCall("CometRPC.New", &stockCometNewArgs{Key: foreign, Token: "tf", Expire: 0}, &r)
	cl := dialTCP(t, c.TCPAddrs()[0])
	cl.write(subBytes("sub", foreign, "30", "tf", "1"))
	cl.expect("-n\r\n")
}
