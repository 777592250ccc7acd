package message

import (
	"context"
	"encoding/json"
	"net/rpc"
	"testing"
	"time"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/internal/testenv"
)

// The argument and reply types of MessageRPC exactly as docs/protocol.md §4 writes them,
// declared here rather than taken from myrpc so that a renamed or retyped
// field in myrpc breaks this test: gob matches struct fields by name, and a
// gopush-cluster 1.0.5 comet or web sends these.
type stockSavePrivateArgs struct {
	Key    string
	Msg    json.RawMessage
	MsgId  int64
	Expire uint
}

type stockSavePrivatesArgs struct {
	Keys   []string
	Msg    json.RawMessage
	MsgId  int64
	Expire uint
}

type stockSavePrivatesResp struct {
	FKeys []string
}

type stockGetPrivateArgs struct {
	MsgId int64
	Key   string
}

type stockMessage struct {
	Msg     json.RawMessage
	MsgId   int64
	GroupId uint
}

type stockGetResp struct {
	Msgs []*stockMessage
}

// TestStockNetRPCClientTalksToMessage proves the RPC interop of docs/protocol.md §4: a
// plain net/rpc client (gob, one TCP connection), as a 1.0.5 comet or web
// uses, calls every MessageRPC method by its name with the types of docs/protocol.md §4.
func TestStockNetRPCClientTalksToMessage(t *testing.T) {
	t.Parallel()
	cfg := redisConfig(map[string]string{"node1:1": testenv.Redis(t)}, 20)
	store := openStorage(t, cfg)
	srv, err := gobrpc.Serve(api.MessageService, newRPC(store, cfg, testLogger(t)),
		[]string{"127.0.0.1:0"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	rc, err := rpc.Dial("tcp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	stockCall := func(method string, args, reply any) error {
		t.Helper()
		call := rc.Go(method, args, reply, make(chan *rpc.Call, 1))
		select {
		case <-call.Done:
			return call.Error
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no answer in 20 s", method)
			return nil
		}
	}
	must := func(method string, args, reply any) {
		t.Helper()
		if err := stockCall(method, args, reply); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
	}

	var r int
	must("MessageRPC.Ping", 0, &r)

	a, b := testenv.Unique(t)+"-a", testenv.Unique(t)+"-b"
	base := baseMid()
	must("MessageRPC.SavePrivate", &stockSavePrivateArgs{Key: a, Msg: json.RawMessage(`{"n":1}`), MsgId: base + 1, Expire: 600}, &r)
	var fk stockSavePrivatesResp
	must("MessageRPC.SavePrivates", &stockSavePrivatesArgs{Keys: []string{a, b}, Msg: json.RawMessage(`{"n":2}`), MsgId: base + 2, Expire: 600}, &fk)
	if len(fk.FKeys) != 0 {
		t.Fatalf("SavePrivates: FKeys %v, want none", fk.FKeys)
	}

	var got stockGetResp
	must("MessageRPC.GetPrivate", &stockGetPrivateArgs{Key: a, MsgId: 0}, &got)
	if len(got.Msgs) != 2 || got.Msgs[0].MsgId != base+1 || got.Msgs[1].MsgId != base+2 ||
		string(got.Msgs[0].Msg) != `{"n":1}` || string(got.Msgs[1].Msg) != `{"n":2}` || got.Msgs[0].GroupId != 0 {
		t.Fatalf("GetPrivate(%s, 0) = %s", a, dump(got))
	}
	got = stockGetResp{}
	must("MessageRPC.GetPrivate", &stockGetPrivateArgs{Key: a, MsgId: base + 1}, &got)
	if len(got.Msgs) != 1 || got.Msgs[0].MsgId != base+2 {
		t.Fatalf("GetPrivate(%s, base+1) = %s", a, dump(got))
	}

	must("MessageRPC.DelPrivate", a, &r)
	got = stockGetResp{}
	must("MessageRPC.GetPrivate", &stockGetPrivateArgs{Key: a, MsgId: 0}, &got)
	if len(got.Msgs) != 0 {
		t.Fatalf("GetPrivate after DelPrivate = %s", dump(got))
	}
	got = stockGetResp{}
	must("MessageRPC.GetPrivate", &stockGetPrivateArgs{Key: b, MsgId: 0}, &got)
	if len(got.Msgs) != 1 || got.Msgs[0].MsgId != base+2 {
		t.Fatalf("GetPrivate(%s) = %s", b, dump(got))
	}

	// Bad input reaches a stock caller as an error, and the connection
	// still serves the next call.
	if err := stockCall("MessageRPC.SavePrivate", &stockSavePrivateArgs{Key: "", Msg: json.RawMessage(`1`), MsgId: base, Expire: 60}, &r); err == nil {
		t.Fatal("SavePrivate with an empty key: no error")
	}
	must("MessageRPC.Ping", 0, &r)
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
