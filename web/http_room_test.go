package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/rpc"
	"slices"
	"strings"
	"testing"

	"gopush/api"
	"gopush/conf"
	"gopush/gobrpc"
	"gopush/ketama"
)

// fakeRooms makes tw.msgs answer the room methods from an in-memory map,
// so that the handlers can be tested without a message node.
func fakeRooms(tw *testWeb, rooms map[string][]string) {
	tw.msgs.fn = func(method string, args, reply any) error {
		switch method {
		case api.MessageRoomKeys:
			reply.(*api.MessageRoomKeysResp).Keys = rooms[args.(string)]
		case api.MessageRoomJoin, api.MessageRoomLeave, api.MessageRoomDel:
		default:
			return fmt.Errorf("unexpected %s", method)
		}
		return nil
	}
}

func TestRoomJoinLeaveKeysDel(t *testing.T) {
	tw := newTestWeb(t, nil, nil, nil)
	fakeRooms(tw, map[string][]string{"r1": {"a", "b"}})
	u := tw.admin.URL + "/1/admin/room/"

	expectCode(t, post(t, u+"join?rid=r1", `{"k":"a,b,a"}`), api.CodeOK)
	expectCode(t, post(t, u+"leave?rid=r1", `{"k":"b"}`), api.CodeOK)
	expectCode(t, post(t, u+"del?rid=r1", ``), api.CodeOK)
	if a := get(t, u+"keys?rid=r1"); a.body != `{"ret":0,"data":{"keys":["a","b"]}}` {
		t.Fatalf("keys: %s", a.body)
	}
	if a := get(t, u+"keys?rid=none"); a.body != `{"ret":0,"data":{"keys":[]}}` {
		t.Fatalf("keys of a room that does not exist: %s", a.body)
	}
	calls := tw.msgs.Calls()
	want := []struct {
		method string
		args   any
	}{
		{api.MessageRoomJoin, &api.MessageRoomArgs{Room: "r1", Keys: []string{"a", "b"}}},
		{api.MessageRoomLeave, &api.MessageRoomArgs{Room: "r1", Keys: []string{"b"}}},
		{api.MessageRoomDel, "r1"},
		{api.MessageRoomKeys, "r1"},
		{api.MessageRoomKeys, "none"},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls %v", calls)
	}
	for i, w := range want {
		got, _ := json.Marshal(calls[i].args)
		exp, _ := json.Marshal(w.args)
		if calls[i].method != w.method || string(got) != string(exp) {
			t.Errorf("call %d: %s %s, want %s %s", i, calls[i].method, got, w.method, exp)
		}
	}
}

func TestRoomBadInput(t *testing.T) {
	tw := newTestWeb(t, nil, nil, func(c *conf.Web) { c.Admin.MaxKeys = 5; c.Admin.MaxBody = 1024 })
	fakeRooms(tw, nil)
	u := tw.admin.URL + "/1/admin/"
	long := strings.Repeat("r", 65)
	for _, path := range []string{"room/join", "room/leave", "room/del", "push/room"} {
		for _, q := range []string{"?x=1", "?rid=", "?rid=" + long, "?rid=a%20b", "?rid=a/b", "?rid=%C3%A9", "?rid=a*"} {
			a := post(t, u+path+q+"&expire=0", `{"k":"a"}`)
			expectCode(t, a, api.CodeParamErr)
		}
	}
	for _, q := range []string{"", "?rid=", "?rid=" + long, "?rid=a%00"} {
		expectCode(t, get(t, u+"room/keys"+q), api.CodeParamErr)
	}
	for _, body := range []string{``, `not json`, `{"k":""}`, `{}`, `{"k":",a"}`, `{"k":"a,,b"}`, `{"k":["a"]}`, `{"k":"1,2,3,4,5,6"}`} {
		expectCode(t, post(t, u+"room/join?rid=r", body), api.CodeParamErr)
		expectCode(t, post(t, u+"room/leave?rid=r", body), api.CodeParamErr)
	}
	for _, c := range []struct{ q, body string }{
		{"?rid=r", `{}`},                 // no expire
		{"?rid=r&expire=-1", `{}`},       // bad expire
		{"?rid=r&expire=0", `{"a":`},     // not JSON
		{"?rid=r&expire=0", ``},          // empty
		{"?rid=r&expire=0", `{"a":1} x`}, // trailing garbage
	} {
		expectCode(t, post(t, u+"push/room"+c.q, c.body), api.CodeParamErr)
	}
	if n := len(tw.msgs.Calls()); n != 0 {
		t.Fatalf("%d bad requests reached the message node", n)
	}
	// A 64-byte rid of every allowed character is fine.
	ok := "Az09_.:-" + strings.Repeat("x", 56)
	expectCode(t, post(t, u+"room/join?rid="+ok, `{"k":"a"}`), api.CodeOK)
	// Bounded bodies and methods.
	if a := post(t, u+"room/join?rid=r", `{"k":"`+strings.Repeat("k", 2048)+`"}`); a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("big body: %d %s", a.status, a.body)
	}
	if a := get(t, u+"room/join?rid=r"); a.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET room/join: %d", a.status)
	}
	if a := post(t, u+"room/keys?rid=r", ""); a.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST room/keys: %d", a.status)
	}
}

// TestRoomMessageErrors: what the message node answers maps to web codes.
func TestRoomMessageErrors(t *testing.T) {
	tw := newTestWeb(t, nil, nil, nil)
	u := tw.admin.URL + "/1/admin/room/join?rid=r"
	for _, c := range []struct {
		err  error
		code int
	}{
		{rpc.ServerError(api.RoomFullPrefix + `room "r" holds 5 keys; adding 1 would pass the limit of 5`), api.CodeRoomFull},
		{rpc.ServerError("param: key of 5000 characters is over the limit of 4096"), api.CodeParamErr},
		{rpc.ServerError("redis shard a (tcp@127.0.0.1:1): connection refused"), api.CodeInternalErr},
		{rpc.ServerError("rpc: can't find method MessageRPC.RoomJoin"), api.CodeInternalErr},
		{gobrpc.ErrNoMessageNode, api.CodeInternalErr},
	} {
		tw.msgs.fn = func(string, any, any) error { return c.err }
		expectCode(t, post(t, u, `{"k":"a"}`), c.code)
	}
}

func TestPushRoomGroupsKeysPerComet(t *testing.T) {
	weights := map[string]int{"node-a": 1, "node-b": 1}
	tw := newTestWeb(t, weights, []string{"node-a", "node-b"}, nil)
	ring := ketama.FromWeights(ketama.DefaultBase, weights)
	var keys []string
	want := map[string][]string{}
	for i := range 40 {
		k := fmt.Sprint("room-key-", i)
		keys = append(keys, k)
		want[ring.Get(k)] = append(want[ring.Get(k)], k)
	}
	fakeRooms(tw, map[string][]string{"r1": keys})
	// node-b fails: its keys come back in fk.
	tw.comets["node-b"].fn = func(string, any, any) error { return errors.New("comet died") }

	a := post(t, tw.admin.URL+"/1/admin/push/room?rid=r1&expire=60", `{"hi":1}`)
	var r struct {
		Ret  int
		Data struct{ FK []string }
	}
	if err := json.Unmarshal([]byte(a.body), &r); err != nil || r.Ret != 0 {
		t.Fatalf("answer %s (%v)", a.body, err)
	}
	if !slices.Equal(r.Data.FK, want["node-b"]) {
		t.Fatalf("fk %v, want node-b's keys %v", r.Data.FK, want["node-b"])
	}
	for _, node := range []string{"node-a", "node-b"} {
		calls := tw.comets[node].Calls()
		if len(calls) != 1 || calls[0].method != api.CometPushPrivates {
			t.Fatalf("%s: calls %v", node, calls)
		}
		args := calls[0].args.(*api.CometPushPrivatesArgs)
		if !slices.Equal(args.Keys, want[node]) || string(args.Msg) != `{"hi":1}` || args.Expire != 60 {
			t.Fatalf("%s: args %+v", node, args)
		}
	}
	// A room that does not exist: ret 0, nothing pushed.
	if a := post(t, tw.admin.URL+"/1/admin/push/room?rid=nobody&expire=60", `{"hi":1}`); a.body != `{"ret":0}` {
		t.Fatalf("push to an empty room: %s", a.body)
	}
	if n := len(tw.comets["node-a"].Calls()); n != 1 {
		t.Fatalf("push to an empty room reached a comet (%d calls)", n)
	}
	// The message node failing: 65535, nothing pushed.
	tw.msgs.fn = func(string, any, any) error { return errors.New("down") }
	expectCode(t, post(t, tw.admin.URL+"/1/admin/push/room?rid=r1&expire=0", `{}`), api.CodeInternalErr)
	if n := len(tw.comets["node-a"].Calls()); n != 1 {
		t.Fatalf("a failed room read still pushed (%d calls)", n)
	}
}

type pushAllAnswer struct {
	Ret  int
	Data struct {
		Mid int64
		FN  []string
	}
}

func pushAll(t *testing.T, tw *testWeb, expire, body string) pushAllAnswer {
	t.Helper()
	a := post(t, tw.admin.URL+"/1/admin/push/all?expire="+expire, body)
	var r pushAllAnswer
	if err := json.Unmarshal([]byte(a.body), &r); err != nil {
		t.Fatalf("answer %s: %v", a.body, err)
	}
	return r
}

func TestPushAll(t *testing.T) {
	weights := map[string]int{"node-a": 1, "node-b": 1, "node-c": 1}
	tw := newTestWeb(t, weights, []string{"node-a", "node-b"}, nil) // node-c has no comet
	var saved []*api.MessageSavePublicArgs
	tw.msgs.fn = func(method string, args, _ any) error {
		if method != api.MessageSavePublic {
			return fmt.Errorf("unexpected %s", method)
		}
		saved = append(saved, args.(*api.MessageSavePublicArgs))
		return nil
	}

	// expire 0: not kept, broadcast to both comets under one mid.
	r := pushAll(t, tw, "0", `{ "all" : 1 }`)
	if r.Ret != 0 || r.Data.Mid <= 0 || len(r.Data.FN) != 0 || len(saved) != 0 {
		t.Fatalf("answer %+v, saved %d", r, len(saved))
	}
	for _, node := range []string{"node-a", "node-b"} {
		calls := tw.comets[node].Calls()
		if len(calls) != 1 || calls[0].method != api.CometBroadcast {
			t.Fatalf("%s: calls %v", node, calls)
		}
		args := calls[0].args.(*api.CometBroadcastArgs)
		if args.MsgId != r.Data.Mid || string(args.Msg) != `{ "all" : 1 }` {
			t.Fatalf("%s: args %+v, want mid %d", node, args, r.Data.Mid)
		}
	}

	// expire > 0: kept under the same mid; node-b fails and is named in fn.
	tw.comets["node-b"].fn = func(string, any, any) error { return errors.New("comet died") }
	r2 := pushAll(t, tw, "600", `[2]`)
	if r2.Ret != 0 || !slices.Equal(r2.Data.FN, []string{"node-b"}) {
		t.Fatalf("answer %+v, want ret 0 with fn [node-b]", r2)
	}
	if r2.Data.Mid <= r.Data.Mid {
		t.Fatalf("public mids do not increase: %d then %d", r.Data.Mid, r2.Data.Mid)
	}
	if len(saved) != 1 || saved[0].MsgId != r2.Data.Mid || string(saved[0].Msg) != `[2]` || saved[0].Expire != 600 {
		t.Fatalf("saved %+v", saved)
	}

	// Keeping it fails: 65535 and nothing is broadcast.
	tw.msgs.fn = func(string, any, any) error { return errors.New("redis down") }
	before := len(tw.comets["node-a"].Calls())
	if a := post(t, tw.admin.URL+"/1/admin/push/all?expire=60", `{}`); a.body != `{"ret":65535}` {
		t.Fatalf("got %s", a.body)
	}
	if len(tw.comets["node-a"].Calls()) != before {
		t.Fatalf("a message that could not be kept was broadcast")
	}

	// Bad input.
	for _, c := range []struct{ q, body string }{{"", `{}`}, {"?expire=x", `{}`}, {"?expire=0", `{`}, {"?expire=0", ``}} {
		expectCode(t, post(t, tw.admin.URL+"/1/admin/push/all"+c.q, c.body), api.CodeParamErr)
	}
	if len(tw.comets["node-a"].Calls()) != before {
		t.Fatalf("bad input was broadcast")
	}
	if a := get(t, tw.admin.URL+"/1/admin/push/all?expire=0"); a.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET push/all: %d", a.status)
	}
}

func TestMsgGetPublic(t *testing.T) {
	tw := newTestWeb(t, nil, nil, nil)
	publicDown := false
	tw.msgs.fn = func(method string, args, reply any) error {
		r := reply.(*api.MessageGetResp)
		switch method {
		case api.MessageGetPrivate:
			if args.(*api.MessageGetPrivateArgs).Key == "full" {
				r.Msgs = []*api.Message{{Msg: json.RawMessage(`{"p":1}`), MsgId: 17000000000000005}}
			}
		case api.MessageGetPublic:
			if publicDown {
				return errors.New("rpc: can't find method MessageRPC.GetPublic")
			}
			after := args.(*api.MessageGetPublicArgs).MsgId
			for _, m := range []*api.Message{
				{Msg: json.RawMessage(`{"all":1}`), MsgId: 17000000000000001, GroupId: 1},
				{Msg: json.RawMessage(`{"all":2}`), MsgId: 17000000000000002, GroupId: 1},
			} {
				if m.MsgId > after {
					r.Msgs = append(r.Msgs, m)
				}
			}
		default:
			return fmt.Errorf("unexpected %s", method)
		}
		return nil
	}
	u := tw.public.URL
	cases := []struct{ path, want string }{
		{"/1/msg/get?k=full&m=0&pm=0", `{"ret":0,"data":{"msgs":[{"msg":{"p":1},"mid":17000000000000005,"gid":0}],"pmsgs":[{"msg":{"all":1},"mid":17000000000000001,"gid":1},{"msg":{"all":2},"mid":17000000000000002,"gid":1}]}}`},
		{"/1/msg/get?k=none&m=0&pm=17000000000000001", `{"ret":0,"data":{"pmsgs":[{"msg":{"all":2},"mid":17000000000000002,"gid":1}]}}`},
		{"/1/msg/get?k=none&m=0&pm=17000000000000002", `{"ret":0}`},
		{"/1/msg/get?k=full&m=0", `{"ret":0,"data":{"msgs":[{"msg":{"p":1},"mid":17000000000000005,"gid":0}]}}`},
		{"/msg/get?key=none&mid=0&pmid=17000000000000001", `{"ret":0,"msg":"ok","data":{"msgs":[],"pmsgs":["{\"msg\":\"{\\\"all\\\":2}\",\"mid\":17000000000000002,\"gid\":1}"]}}`},
		{"/msg/get?key=full&mid=0&pmid=17000000000000002", `{"ret":0,"msg":"ok","data":{"msgs":["{\"msg\":\"{\\\"p\\\":1}\",\"mid\":17000000000000005,\"gid\":0}"],"pmsgs":[]}}`},
	}
	for _, c := range cases {
		if a := get(t, u+c.path); a.body != c.want {
			t.Errorf("%s:\ngot  %s\nwant %s", c.path, a.body, c.want)
		}
	}
	// Without pm no public read happens.
	n := len(tw.msgs.Calls())
	get(t, u+"/1/msg/get?k=full&m=0")
	if calls := tw.msgs.Calls()[n:]; len(calls) != 1 || calls[0].method != api.MessageGetPrivate {
		t.Errorf("without pm: calls %v", calls)
	}
	// Bad pm: 65534, nothing read.
	n = len(tw.msgs.Calls())
	for _, q := range []string{"/1/msg/get?k=a&pm=x", "/1/msg/get?k=a&pm=-1", "/msg/get?key=a&pmid=1.5"} {
		expectCode(t, get(t, u+q), api.CodeParamErr)
	}
	if len(tw.msgs.Calls()) != n {
		t.Errorf("bad pm reached the message node")
	}
	// Public messages unreadable (a 1.0.5 message node): the private ones
	// still come back.
	publicDown = true
	if a := get(t, u+"/1/msg/get?k=full&m=0&pm=0"); a.body != `{"ret":0,"data":{"msgs":[{"msg":{"p":1},"mid":17000000000000005,"gid":0}]}}` {
		t.Errorf("public read failing: %s", a.body)
	}
}
