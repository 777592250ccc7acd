package bench

import (
	"sync"
	"sync/atomic"
	"time"
)

// SeqStat is what one process saw of one push: how many connections got it
// and the latest arrival (µs after the push call started).
type SeqStat struct {
	N     uint32 `json:"n"`
	MaxUs uint64 `json:"max_us"`
}

// Tracker records deliveries: a latency histogram and, per push sequence
// number, the count and the slowest arrival. It is sharded so that thousands
// of connection readers do not queue on one lock; a connection always uses
// the same shard.
type Tracker struct {
	shards    [16]trackerShard
	delivered atomic.Uint64
	bad       atomic.Uint64 // frames that carried no load-tool payload
}

type trackerShard struct {
	mu   sync.Mutex
	hist Histogram
	seqs map[uint64]*SeqStat
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	t := &Tracker{}
	for i := range t.shards {
		t.shards[i].seqs = make(map[uint64]*SeqStat)
	}
	return t
}

// Deliver records that a connection (conn picks the shard) received payload
// p at time now.
func (t *Tracker) Deliver(conn int, p Payload, now time.Time) {
	lat := now.UnixNano() - p.T
	us := uint64(0)
	if lat > 0 {
		us = uint64(lat / 1000)
	}
	s := &t.shards[uint(conn)%uint(len(t.shards))]
	s.mu.Lock()
	s.hist.RecordUs(us)
	st := s.seqs[p.S]
	if st == nil {
		st = &SeqStat{}
		s.seqs[p.S] = st
	}
	st.N++
	if us > st.MaxUs {
		st.MaxUs = us
	}
	s.mu.Unlock()
	t.delivered.Add(1)
}

// Bad counts a message that carried no load-tool payload.
func (t *Tracker) Bad() { t.bad.Add(1) }

// Delivered returns the number of deliveries so far.
func (t *Tracker) Delivered() uint64 { return t.delivered.Load() }

// Snapshot is a tracker's state, mergeable across processes.
type Snapshot struct {
	Delivered uint64              `json:"delivered"`
	Bad       uint64              `json:"bad"`
	Hist      Histogram           `json:"hist"`
	Seqs      map[uint64]*SeqStat `json:"seqs,omitempty"`
}

// Snapshot copies the current state.
func (t *Tracker) Snapshot() *Snapshot {
	out := &Snapshot{Seqs: make(map[uint64]*SeqStat)}
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		out.Hist.Merge(&s.hist)
		for seq, st := range s.seqs {
			o := out.Seqs[seq]
			if o == nil {
				o = &SeqStat{}
				out.Seqs[seq] = o
			}
			o.N += st.N
			if st.MaxUs > o.MaxUs {
				o.MaxUs = st.MaxUs
			}
		}
		s.mu.Unlock()
	}
	out.Delivered = t.delivered.Load()
	out.Bad = t.bad.Load()
	return out
}

// Reset forgets everything recorded so far (between scenarios).
func (t *Tracker) Reset() {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		s.hist = Histogram{}
		s.seqs = make(map[uint64]*SeqStat)
		s.mu.Unlock()
	}
	t.delivered.Store(0)
	t.bad.Store(0)
}

// Merge adds o to s.
func (s *Snapshot) Merge(o *Snapshot) {
	s.Delivered += o.Delivered
	s.Bad += o.Bad
	s.Hist.Merge(&o.Hist)
	if s.Seqs == nil {
		s.Seqs = make(map[uint64]*SeqStat)
	}
	for seq, st := range o.Seqs {
		x := s.Seqs[seq]
		if x == nil {
			x = &SeqStat{}
			s.Seqs[seq] = x
		}
		x.N += st.N
		if st.MaxUs > x.MaxUs {
			x.MaxUs = st.MaxUs
		}
	}
}
