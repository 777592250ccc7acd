package comet

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// hub holds the channels of all keys, spread over a power-of-two number of
// buckets by a hash of the key. Each bucket has its own lock, so work on
// different keys rarely contends. No bucket lock is held while writing to a
// socket or calling RPC.
type hub struct {
	buckets []bucket
	mask    uint32
	stats   *stats
}

type bucket struct {
	mu    sync.Mutex
	chans map[string]*channel
}

func newHub(n int, st *stats) *hub {
	h := &hub{buckets: make([]bucket, n), mask: uint32(n - 1), stats: st}
	for i := range h.buckets {
		h.buckets[i].chans = make(map[string]*channel)
	}
	return h
}

// hashKey is 32-bit FNV-1a, written out so that it does not allocate.
func hashKey(key string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return h
}

func (h *hub) bucket(key string) *bucket { return &h.buckets[hashKey(key)&h.mask] }

// add adds c to the channel of c.key if admit, called under the bucket lock
// with the key's channel (nil if none), returns true. It reports whether c
// was added.
func (h *hub) add(c *conn, admit func(ch *channel) bool) bool {
	b := h.bucket(c.key)
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.chans[c.key]
	if ch != nil {
		h.stats.chanAccess.Add(1)
	}
	if !admit(ch) {
		return false
	}
	if ch == nil {
		ch = &channel{}
		b.chans[c.key] = ch
		h.stats.chanCreated.Add(1)
	}
	ch.addConn(c)
	return true
}

// remove takes c out of its channel and frees the channel if nothing needs
// it any more.
func (h *hub) remove(c *conn) {
	b := h.bucket(c.key)
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.chans[c.key]
	if ch == nil || !ch.removeConn(c) {
		return
	}
	if ch.unused(time.Now()) {
		delete(b.chans, c.key)
		h.stats.chanDeleted.Add(1)
	}
}

// conns returns the connections of key. The slice must not be modified.
func (h *hub) conns(key string) []*conn {
	b := h.bucket(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch := b.chans[key]; ch != nil {
		h.stats.chanAccess.Add(1)
		return ch.conns
	}
	return nil
}

// count returns the number of connections of key.
func (h *hub) count(key string) int { return len(h.conns(key)) }

// forget deletes key's channel, tokens included, and returns its
// connections for the caller to close.
func (h *hub) forget(key string) []*conn {
	b := h.bucket(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.chans[key]
	if ch == nil {
		return nil
	}
	delete(b.chans, key)
	h.stats.chanDeleted.Add(1)
	return ch.conns
}

// addToken adds or refreshes a token of key, creating its channel if needed.
func (h *hub) addToken(key, value string, life time.Duration, max int) {
	b := h.bucket(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.chans[key]
	if ch == nil {
		ch = &channel{}
		b.chans[key] = ch
		h.stats.chanCreated.Add(1)
	} else {
		h.stats.chanAccess.Add(1)
	}
	ch.tokens.add(value, life, time.Now(), max)
}

// sweep drops expired tokens and frees the channels left with nothing.
func (h *hub) sweep(now time.Time) {
	for i := range h.buckets {
		b := &h.buckets[i]
		b.mu.Lock()
		for key, ch := range b.chans {
			if ch.unused(now) {
				delete(b.chans, key)
				h.stats.chanDeleted.Add(1)
			}
		}
		b.mu.Unlock()
	}
}

// connsWhere returns the connections of every key for which match is true.
// match is called under a bucket lock and must be quick.
func (h *hub) connsWhere(match func(key string) bool) []*conn {
	var out []*conn
	for i := range h.buckets {
		b := &h.buckets[i]
		b.mu.Lock()
		for key, ch := range b.chans {
			if len(ch.conns) > 0 && match(key) {
				out = append(out, ch.conns...)
			}
		}
		b.mu.Unlock()
	}
	return out
}

// numChannels counts the channels by walking the buckets (tests compare it
// with the counter).
func (h *hub) numChannels() int {
	n := 0
	for i := range h.buckets {
		b := &h.buckets[i]
		b.mu.Lock()
		n += len(b.chans)
		b.mu.Unlock()
	}
	return n
}

// fanOutMin is the number of connections below which a fan-out runs on the
// calling goroutine alone: starting helpers costs more than it saves.
const fanOutMin = 512

// fanOut calls send for every connection of every channel, in the order
// the connections were accepted, and returns how many calls returned true.
// With fanOutMin connections or more, the list is cut into one contiguous
// share per core, each written by its own goroutine; send must then be
// safe for concurrent use on different connections. No bucket lock is held
// while send runs. total (the connections open now) sizes the list.
//
// Why accept order: nearly all of a fan-out's time is write(2), and on
// 18 000 connections the kernel's share of it is cheaper, and the last
// delivery earlier, when the sockets are visited in the order they were
// made (their kernel and runtime structures were allocated in that order)
// than in the buckets' hash order (docs/performance.md, "Fan-out in
// accept order").
func (h *hub) fanOut(total int64, send func(*conn) bool) int {
	all := h.byAccept(int(total))
	return sendShared(all, send)
}

// sendShared calls send for every connection of cs, spread over one goroutine
// per core in contiguous shares when cs is long, and returns how many calls
// returned true.
func sendShared(cs []*conn, send func(*conn) bool) int {
	workers := runtime.GOMAXPROCS(0)
	if len(cs) < fanOutMin || workers < 2 {
		return sendEach(cs, send)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		share := cs[w*len(cs)/workers : (w+1)*len(cs)/workers]
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Add(int64(sendEach(share, send)))
		}()
	}
	n.Add(int64(sendEach(cs[:len(cs)/workers], send)))
	wg.Wait()
	return int(n.Load())
}

func sendEach(cs []*conn, send func(*conn) bool) int {
	n := 0
	for _, c := range cs {
		if send(c) {
			n++
		}
	}
	return n
}

// byAccept returns every subscribed connection, sorted by accept order
// (conn.id). hint is the expected count.
func (h *hub) byAccept(hint int) []*conn {
	ids := make([]connByID, 0, hint+hint/8)
	for i := range h.buckets {
		b := &h.buckets[i]
		b.mu.Lock()
		for _, ch := range b.chans {
			for _, cn := range ch.conns {
				ids = append(ids, connByID{id: cn.id, cn: cn})
			}
		}
		b.mu.Unlock()
	}
	sortByID(ids)
	all := make([]*conn, len(ids))
	for i := range ids {
		all[i] = ids[i].cn
	}
	return all
}

// connByID is a connection with its accept order beside it, so that
// sorting compares integers without reading the connections; m is the
// message it gets, for fan-outs where each connection gets its own.
type connByID struct {
	id uint64
	cn *conn
	m  *message
}

func sortByID(cs []connByID) {
	slices.SortFunc(cs, func(a, b connByID) int { return cmp.Compare(a.id, b.id) })
}
