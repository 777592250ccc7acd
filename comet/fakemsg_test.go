package comet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"gopush/api"
	"gopush/gobrpc"
	"gopush/membership"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeMessage is a MessageRPC node kept in memory, registered in ZooKeeper
// like a real one. It records what it is asked to store and can be told to
// fail or to stall.
type fakeMessage struct {
	mu    sync.Mutex
	saved []api.Message // Msg, MsgId; GroupId unused
	// deadline is the Deadline of the last SavePrivate.
	deadline int64
	keys     []string      // key of saved[i]
	fail     error         // returned by every save when set
	stall    chan struct{} // when set, saves wait for it to close
	stalls   chan struct{} // receives one value per stalled save
}

func (f *fakeMessage) record(key string, msg json.RawMessage, mid int64) {
	f.saved = append(f.saved, api.Message{Msg: msg, MsgId: mid})
	f.keys = append(f.keys, key)
}

func (f *fakeMessage) gate() error {
	f.mu.Lock()
	stall, stalls, fail := f.stall, f.stalls, f.fail
	f.mu.Unlock()
	if stall != nil {
		if stalls != nil {
			stalls <- struct{}{}
		}
		<-stall
	}
	return fail
}

// Saved returns the (key, mid) pairs stored so far.
func (f *fakeMessage) Saved() (keys []string, mids []int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range f.saved {
		keys = append(keys, f.keys[i])
		mids = append(mids, m.MsgId)
	}
	return
}

// oldMessageRPC is a 1.0.5 message node: no SavePrivatesEach.
type oldMessageRPC struct{ f *fakeMessage }

func (s *oldMessageRPC) Ping(_ int, r *int) error { *r = 0; return nil }

func (s *oldMessageRPC) SavePrivate(a *api.MessageSavePrivateArgs, r *int) error {
	if err := s.f.gate(); err != nil {
		return err
	}
	if a.Key == "refuse-me" {
		return errors.New("refused by the fake")
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.record(a.Key, a.Msg, a.MsgId)
	s.f.deadline = a.Deadline
	return nil
}

func (s *oldMessageRPC) SavePrivates(a *api.MessageSavePrivatesArgs, r *api.MessageSavePrivatesResp) error {
	if err := s.f.gate(); err != nil {
		return err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	for _, k := range a.Keys {
		if k == "refuse-me" {
			r.FKeys = append(r.FKeys, k)
			continue
		}
		s.f.record(k, a.Msg, a.MsgId)
	}
	return nil
}

// newMessageRPC is a gopush message node.
type newMessageRPC struct{ oldMessageRPC }

func (s *newMessageRPC) SavePrivatesEach(a *api.MessageSavePrivatesEachArgs, r *api.MessageSavePrivatesResp) error {
	if err := s.f.gate(); err != nil {
		return err
	}
	if len(a.MsgIds) != len(a.Keys) {
		return errors.New("keys and mids differ in length")
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	for i, k := range a.Keys {
		if k == "refuse-me" {
			r.FKeys = append(r.FKeys, k)
			continue
		}
		s.f.record(k, a.Msg, a.MsgIds[i])
	}
	return nil
}

// runningFake is a fake message node serving RPC and registered under
// messagePath.
type runningFake struct {
	*fakeMessage
	srv *gobrpc.Server
	reg *membership.Registration
	zk  *membership.ZK
}

// stop makes the node vanish: deregistered and its RPC server closed.
func (r *runningFake) stop() {
	if r.reg != nil {
		r.reg.Close()
		r.reg = nil
	}
	if r.zk != nil {
		r.zk.Close()
		r.zk = nil
	}
	if r.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		r.srv.Close(ctx)
		r.srv = nil
	}
}

// startFakeMessage serves a fake message node (old: without
// SavePrivatesEach) and registers it under the comet's message.path.
func startFakeMessage(t testing.TB, zkAddr, messagePath string, old bool) *runningFake {
	t.Helper()
	f := &fakeMessage{}
	var rcvr any = &newMessageRPC{oldMessageRPC{f}}
	if old {
		rcvr = &oldMessageRPC{f}
	}
	return serveFakeMessage(t, zkAddr, messagePath, f, rcvr)
}

// serveFakeMessage serves rcvr, a fake message node over f, and registers
// it under messagePath.
func serveFakeMessage(t testing.TB, zkAddr, messagePath string, f *fakeMessage, rcvr any) *runningFake {
	t.Helper()
	srv, err := gobrpc.Serve(api.MessageService, rcvr, []string{"127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	z, err := membership.DialZK([]string{zkAddr}, 4*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(api.MessageNodeData{RPC: srv.Addrs(), Weight: 1})
	reg, err := membership.Register(context.Background(), z, messagePath, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &runningFake{fakeMessage: f, srv: srv, reg: reg, zk: z}
	t.Cleanup(r.stop)
	return r
}

// GetPrivate returns what was saved for the key after the mid, ascending,
// as a message node does (SPEC §4).
func (s *oldMessageRPC) GetPrivate(a *api.MessageGetPrivateArgs, r *api.MessageGetResp) error {
	if err := s.f.gate(); err != nil {
		return err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	for i, m := range s.f.saved {
		if s.f.keys[i] == a.Key && m.MsgId > a.MsgId {
			r.Msgs = append(r.Msgs, &api.Message{Msg: m.Msg, MsgId: m.MsgId})
		}
	}
	slices.SortFunc(r.Msgs, func(x, y *api.Message) int { return cmp.Compare(x.MsgId, y.MsgId) })
	return nil
}
