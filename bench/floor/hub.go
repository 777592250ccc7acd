// Package floor holds the yardsticks of the benchmark (docs/performance.md):
// minimal programs that do the I/O gopush does for a push and nothing else,
// so that gopush's figures can be given as ratios to what this machine
// allows, measured in the same run.
//
//   - Writer, the bare writer: one process that holds the subscribers'
//     TCP connections and writes each pushed frame to all of them (the
//     delivery ceiling of push/all, push/room and push/mprivate).
//   - PushWeb and PushComet, the bare push path: an HTTP handler that checks
//     the body is JSON and makes one gob net/rpc call to a second process,
//     which writes one frame to the subscriber of that key.
//
// Both speak just enough of comet's TCP protocol (docs/protocol.md §2.1:
// the subscribe request, "+h", heartbeats, message frames) and of web's
// admin API (§3.2, §3.3) that gopush-bench drives them unchanged. They keep
// nothing: no mids worth the name, no storage, no cluster.
package floor

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"gopush/api"
)

// Fault makes a Hub misbehave on purpose, so that tests can show the
// benchmark's correctness checks catch it.
type Fault struct {
	DropEvery int // skip every n-th delivery (0: never)
	DupEvery  int // write every n-th delivery twice (0: never)
	// ListAsFailed makes the writer's push/mprivate answer list every key
	// as failed (fk) although it delivered: what web answers when its call
	// to comet times out after comet delivered.
	ListAsFailed bool
}

// Hub holds subscriber connections by key and writes frames to them.
// Close stops every goroutine it started.
type Hub struct {
	ln    net.Listener
	log   *slog.Logger
	fault Fault
	sent  atomic.Uint64 // deliveries so far, for Fault
	mid   atomic.Int64

	mu    sync.RWMutex
	open  map[net.Conn]struct{} // every accepted connection, subscribed or not
	byKey map[string][]*sub
	all   []*sub
	wg    sync.WaitGroup
	done  bool
}

// sub is one subscriber connection.
type sub struct {
	nc  net.Conn
	key string
	old bool // the client sent no version: the old message form
	idx int  // position in Hub.all, under Hub.mu

	wmu sync.Mutex // one writer at a time
}

// NewHub listens for subscribers on addr (TCP host:port).
func NewHub(addr string, fault Fault, log *slog.Logger) (*Hub, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	h := &Hub{ln: ln, log: log, fault: fault, open: make(map[net.Conn]struct{}), byKey: make(map[string][]*sub)}
	h.mid.Store(time.Now().UnixNano() / 100)
	h.wg.Add(1)
	go h.accept()
	return h, nil
}

// Addr is the address subscribers connect to.
func (h *Hub) Addr() string { return h.ln.Addr().String() }

func (h *Hub) accept() {
	defer h.wg.Done()
	for {
		nc, err := h.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				h.log.Error("accept", "err", err)
			}
			return
		}
		h.mu.Lock()
		if h.done {
			h.mu.Unlock()
			nc.Close()
			return
		}
		h.open[nc] = struct{}{}
		h.wg.Add(1)
		h.mu.Unlock()
		go h.serve(nc)
	}
}

// serve subscribes one connection, then answers its heartbeats until it
// closes.
func (h *Hub) serve(nc net.Conn) {
	defer h.wg.Done()
	defer func() {
		nc.Close()
		h.mu.Lock()
		delete(h.open, nc)
		h.mu.Unlock()
	}()
	br := bufio.NewReaderSize(nc, 256)
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	req, err := api.ReadSubscribe(br)
	if err != nil {
		nc.Write([]byte(api.ReplyParam))
		return
	}
	nc.SetDeadline(time.Time{})
	s := &sub{nc: nc, key: req.Key, old: req.Version == ""}
	if !h.add(s) {
		return
	}
	defer h.remove(s)
	s.write([]byte(api.ReplyOK))
	for {
		b, err := br.ReadByte()
		if err != nil {
			return
		}
		if b == api.Heartbeat[0] {
			s.write([]byte(api.ReplyOK))
		}
	}
}

func (h *Hub) add(s *sub) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return false
	}
	s.idx = len(h.all)
	h.all = append(h.all, s)
	h.byKey[s.key] = append(h.byKey[s.key], s)
	return true
}

func (h *Hub) remove(s *sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return
	}
	last := h.all[len(h.all)-1]
	h.all[s.idx], last.idx = last, s.idx
	h.all = h.all[:len(h.all)-1]
	list := h.byKey[s.key]
	for i, x := range list {
		if x == s {
			list[i] = list[len(list)-1]
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(h.byKey, s.key)
	} else {
		h.byKey[s.key] = list
	}
}

// Conns returns the connections of keys (nil: every connection).
func (h *Hub) conns(keys []string) []*sub {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if keys == nil {
		return append([]*sub(nil), h.all...)
	}
	var out []*sub
	for _, k := range keys {
		out = append(out, h.byKey[k]...)
	}
	return out
}

// Count is the number of subscribed connections.
func (h *Hub) Count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.all)
}

func (s *sub) write(b []byte) {
	s.wmu.Lock()
	s.nc.Write(b) // a failed write ends the reader, which removes s
	s.wmu.Unlock()
}

// frames is one message in both forms of §2.1, as TCP bulk strings.
type frames struct{ cur, old []byte }

func (h *Hub) frames(msg json.RawMessage, gid uint) frames {
	mid := h.mid.Add(1)
	return frames{
		cur: api.AppendBulk(nil, api.AppendMessage(nil, msg, mid, gid, false)),
		old: api.AppendBulk(nil, api.AppendMessage(nil, msg, mid, gid, true)),
	}
}

// deliver writes f to s, in the form s asked for.
func (h *Hub) deliver(s *sub, f frames) {
	b := f.cur
	if s.old {
		b = f.old
	}
	if h.fault != (Fault{}) {
		n := h.sent.Add(1)
		if h.fault.DropEvery > 0 && n%uint64(h.fault.DropEvery) == 0 {
			return
		}
		if h.fault.DupEvery > 0 && n%uint64(h.fault.DupEvery) == 0 {
			s.write(b)
		}
	}
	s.write(b)
}

// Push writes msg to the connections of keys (nil: every connection): in
// the calling goroutine when they are few, else split over one goroutine
// per CPU, each writing its share one connection after the other. It
// returns when every write is done.
func (h *Hub) Push(keys []string, msg json.RawMessage, gid uint) {
	subs := h.conns(keys)
	f := h.frames(msg, gid)
	workers := runtime.GOMAXPROCS(0)
	if len(subs) < 64 || workers == 1 {
		for _, s := range subs {
			h.deliver(s, f)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		part := subs[w*len(subs)/workers : (w+1)*len(subs)/workers]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, s := range part {
				h.deliver(s, f)
			}
		}()
	}
	wg.Wait()
}

// Close stops accepting, closes every connection and waits for the
// Hub's goroutines.
func (h *Hub) Close() {
	h.ln.Close()
	h.mu.Lock()
	h.done = true
	open := make([]net.Conn, 0, len(h.open))
	for nc := range h.open {
		open = append(open, nc)
	}
	h.all, h.byKey = nil, nil
	h.mu.Unlock()
	for _, nc := range open {
		nc.Close()
	}
	h.wg.Wait()
}

// readBody reads at most limit bytes of a request body.
func readBody(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = errors.New("body too large")
	}
	return b, err
}
