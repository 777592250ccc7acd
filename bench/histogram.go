package bench

import (
	"math/bits"
	"sort"
	"time"
)

// Histogram counts latencies in microseconds with about 0.2 % relative
// precision (exact below 1024 µs). Histograms merge by adding counts, so a
// child process can send its own and the parent sums them. The zero value is
// ready to use; it is not safe for concurrent use.
type Histogram struct {
	Counts map[int]uint64 `json:"counts"` // bucket index → count
	N      uint64         `json:"n"`
	SumUs  uint64         `json:"sum_us"`
	MaxUs  uint64         `json:"max_us"`
	MinUs  uint64         `json:"min_us"`
}

const subBuckets = 512 // buckets per power of two above 1024 µs

// bucketOf maps a value in µs to its bucket index.
func bucketOf(v uint64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - 10 // ≥ 1
	m := v >> uint(e)       // in [512, 1024)
	return 2*subBuckets + (e-1)*subBuckets + int(m-subBuckets)
}

// bucketHigh is the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < 2*subBuckets {
		return uint64(i)
	}
	i -= 2 * subBuckets
	e := i/subBuckets + 1
	m := uint64(i%subBuckets + subBuckets)
	return (m+1)<<uint(e) - 1
}

// Record adds one latency. Negative latencies (clock noise between
// processes) count as zero.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.RecordUs(us)
}

// RecordUs adds one latency given in microseconds.
func (h *Histogram) RecordUs(us uint64) {
	if h.Counts == nil {
		h.Counts = make(map[int]uint64)
	}
	h.Counts[bucketOf(us)]++
	if h.N == 0 || us < h.MinUs {
		h.MinUs = us
	}
	if us > h.MaxUs {
		h.MaxUs = us
	}
	h.N++
	h.SumUs += us
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.N == 0 {
		return
	}
	if h.Counts == nil {
		h.Counts = make(map[int]uint64, len(o.Counts))
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	if h.N == 0 || o.MinUs < h.MinUs {
		h.MinUs = o.MinUs
	}
	if o.MaxUs > h.MaxUs {
		h.MaxUs = o.MaxUs
	}
	h.N += o.N
	h.SumUs += o.SumUs
}

// Quantile returns the latency below or at which a fraction q (0..1) of the
// samples fall: the upper edge of the bucket holding the sample of rank
// ceil(q·N), capped by the exact maximum. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(h.MinUs) * time.Microsecond
	}
	if q >= 1 {
		return time.Duration(h.MaxUs) * time.Microsecond
	}
	rank := uint64(q * float64(h.N))
	if float64(rank) < q*float64(h.N) {
		rank++
	}
	if rank == 0 {
		rank = 1
	}
	idx := make([]int, 0, len(h.Counts))
	for i := range h.Counts {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var seen uint64
	for _, i := range idx {
		seen += h.Counts[i]
		if seen >= rank {
			v := bucketHigh(i)
			if v > h.MaxUs {
				v = h.MaxUs
			}
			if v < h.MinUs {
				v = h.MinUs
			}
			return time.Duration(v) * time.Microsecond
		}
	}
	return time.Duration(h.MaxUs) * time.Microsecond
}

// Mean returns the average latency.
func (h *Histogram) Mean() time.Duration {
	if h.N == 0 {
		return 0
	}
	return time.Duration(h.SumUs/h.N) * time.Microsecond
}

// Max returns the largest latency recorded.
func (h *Histogram) Max() time.Duration { return time.Duration(h.MaxUs) * time.Microsecond }
