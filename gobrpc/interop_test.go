package gobrpc

import (
	"context"
	"encoding/json"
	"gopush/api"
	"net"
	"net/rpc"
	"sync"
	"testing"
	"time"
)

// stockMessageRPC is a message node as gopush-cluster 1.0.5 serves it:
// plain net/rpc, the methods and types of docs/protocol.md §4 only, declared here so
// that a renamed field in this package's types breaks the test (exported:
// net/rpc serves only methods whose argument types are).
type stockMessageRPC struct {
	mu    sync.Mutex
	saved []StockSaveArgs
}

type StockSaveArgs struct {
	Key    string
	Msg    json.RawMessage
	MsgId  int64
	Expire uint
}

type StockSavesArgs struct {
	Keys   []string
	Msg    json.RawMessage
	MsgId  int64
	Expire uint
}

type StockSavesResp struct{ FKeys []string }

type StockGetArgs struct {
	MsgId int64
	Key   string
}

type StockMessage struct {
	Msg     json.RawMessage
	MsgId   int64
	GroupId uint
}

type StockGetResp struct{ Msgs []*StockMessage }

func (s *stockMessageRPC) Ping(_ int, r *int) error { *r = 0; return nil }

func (s *stockMessageRPC) SavePrivate(a *StockSaveArgs, r *int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = append(s.saved, *a)
	return nil
}

func (s *stockMessageRPC) SavePrivates(a *StockSavesArgs, r *StockSavesResp) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range a.Keys {
		if k == "bad" {
			r.FKeys = append(r.FKeys, k)
			continue
		}
		s.saved = append(s.saved, StockSaveArgs{Key: k, Msg: a.Msg, MsgId: a.MsgId, Expire: a.Expire})
	}
	return nil
}

func (s *stockMessageRPC) GetPrivate(a *StockGetArgs, r *StockGetResp) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.saved {
		if m.Key == a.Key && m.MsgId > a.MsgId {
			r.Msgs = append(r.Msgs, &StockMessage{Msg: m.Msg, MsgId: m.MsgId})
		}
	}
	return nil
}

func (s *stockMessageRPC) DelPrivate(key string, r *int) error { return nil }

// TestClientTalksToStockNetRPCServer: this package's client, with this
// package's types, calls a 1.0.5 node (stock net/rpc server) by the docs/protocol.md §4
// names, and recognises the answer to a method that node does not have, so
// that callers can fall back (comet's SavePrivatesEach → SavePrivates).
func TestClientTalksToStockNetRPCServer(t *testing.T) {
	t.Parallel()
	srv := rpc.NewServer()
	rcvr := &stockMessageRPC{}
	if err := srv.RegisterName("MessageRPC", rcvr); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // ends when ln is closed
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(conn)
		}
	}()

	c := NewClient(ln.Addr().String(), 10*time.Second)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var r int
	if err := c.Call(ctx, api.MessagePing, 0, &r); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := c.Call(ctx, api.MessageSavePrivate, &api.MessageSavePrivateArgs{Key: "a", Msg: json.RawMessage(`{"n":1}`), MsgId: 17000000000000001, Expire: 60}, &r); err != nil {
		t.Fatalf("SavePrivate: %v", err)
	}
	var fk api.MessageSavePrivatesResp
	if err := c.Call(ctx, api.MessageSavePrivates, &api.MessageSavePrivatesArgs{Keys: []string{"a", "bad"}, Msg: json.RawMessage(`[2]`), MsgId: 17000000000000002, Expire: 60}, &fk); err != nil {
		t.Fatalf("SavePrivates: %v", err)
	}
	if len(fk.FKeys) != 1 || fk.FKeys[0] != "bad" {
		t.Fatalf("SavePrivates: FKeys %v, want [bad]", fk.FKeys)
	}
	var got api.MessageGetResp
	if err := c.Call(ctx, api.MessageGetPrivate, &api.MessageGetPrivateArgs{Key: "a", MsgId: 17000000000000001}, &got); err != nil {
		t.Fatalf("GetPrivate: %v", err)
	}
	if len(got.Msgs) != 1 || got.Msgs[0].MsgId != 17000000000000002 || string(got.Msgs[0].Msg) != `[2]` {
		t.Fatalf("GetPrivate: %+v", got.Msgs)
	}
	if err := c.Call(ctx, api.MessageDelPrivate, "a", &r); err != nil {
		t.Fatalf("DelPrivate: %v", err)
	}
	rcvr.mu.Lock()
	first := rcvr.saved[0]
	rcvr.mu.Unlock()
	if first.Key != "a" || first.MsgId != 17000000000000001 || first.Expire != 60 || string(first.Msg) != `{"n":1}` {
		t.Fatalf("the stock node received %+v", first)
	}

	// A method 1.0.5 does not have: recognised, and the connection still
	// serves the next call.
	err = c.Call(ctx, api.MessageSavePrivatesEach, &api.MessageSavePrivatesEachArgs{Keys: []string{"a"}, MsgIds: []int64{1}, Msg: json.RawMessage(`1`)}, &fk)
	if err == nil || !IsNoSuchMethod(err) {
		t.Fatalf("SavePrivatesEach on a 1.0.5 node: %v, want a no-such-method error", err)
	}
	if err := c.Call(ctx, api.MessagePing, 0, &r); err != nil {
		t.Fatalf("Ping after the unknown method: %v", err)
	}
}
