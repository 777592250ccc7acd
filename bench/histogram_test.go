package bench

import (
	"encoding/json"
	"math/rand"
	"sort"
	"testing"
	"time"
)

func TestHistogramQuantilesMatchSortedSamples(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var h Histogram
	var samples []uint64
	for i := 0; i < 20000; i++ {
		// Latencies from 50 µs to about 2 s, skewed toward small ones.
		v := uint64(50 + rng.ExpFloat64()*3000)
		if i%100 == 0 {
			v = uint64(100000 + rng.Intn(2000000))
		}
		samples = append(samples, v)
		h.RecordUs(v)
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := samples[int(q*float64(len(samples)))-1]
		got := uint64(h.Quantile(q) / time.Microsecond)
		// The bucket's upper edge is within 0.2 % above the true value.
		if got < want || float64(got) > float64(want)*1.002+1 {
			t.Errorf("q%.3f = %d µs, want %d µs (+0.2%%)", q, got, want)
		}
	}
	if h.Max() != time.Duration(samples[len(samples)-1])*time.Microsecond {
		t.Errorf("max %v, want %d µs", h.Max(), samples[len(samples)-1])
	}
	if h.Quantile(0) != time.Duration(samples[0])*time.Microsecond {
		t.Errorf("min %v, want %d µs", h.Quantile(0), samples[0])
	}
}

func TestHistogramSmallValuesAreExact(t *testing.T) {
	var h Histogram
	for _, v := range []uint64{3, 1, 2, 4, 1000} {
		h.RecordUs(v)
	}
	if got := h.Quantile(0.5); got != 3*time.Microsecond {
		t.Errorf("p50 = %v, want 3µs", got)
	}
	if got := h.Quantile(0.8); got != 4*time.Microsecond {
		t.Errorf("p80 = %v, want 4µs", got)
	}
	if got := h.Mean(); got != 202*time.Microsecond {
		t.Errorf("mean = %v, want 202µs", got)
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 || empty.Max() != 0 {
		t.Error("empty histogram should report zero")
	}
}

func TestHistogramMergeAcrossJSONEqualsOneHistogram(t *testing.T) {
	var all, a, b Histogram
	for i := uint64(0); i < 5000; i++ {
		v := i * 37 % 90000
		all.RecordUs(v)
		if i%2 == 0 {
			a.RecordUs(v)
		} else {
			b.RecordUs(v)
		}
	}
	// A child process sends its histogram as JSON.
	raw, err := json.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	var b2 Histogram
	if err := json.Unmarshal(raw, &b2); err != nil {
		t.Fatal(err)
	}
	a.Merge(&b2)
	for _, q := range []float64{0, 0.5, 0.99, 1} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v merged %v, single %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.N != all.N || a.SumUs != all.SumUs {
		t.Errorf("merged n=%d sum=%d, want n=%d sum=%d", a.N, a.SumUs, all.N, all.SumUs)
	}
}

func TestBucketEdgesCoverEveryValue(t *testing.T) {
	for _, v := range []uint64{0, 1, 1023, 1024, 1025, 2047, 2048, 123456789, 1 << 40} {
		i := bucketOf(v)
		if hi := bucketHigh(i); hi < v {
			t.Errorf("value %d in bucket %d whose top is %d", v, i, hi)
		}
		if i > 0 && bucketHigh(i-1) >= v {
			t.Errorf("value %d should be in an earlier bucket than %d", v, i)
		}
	}
}
