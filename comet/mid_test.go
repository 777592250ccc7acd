package comet

import (
	"sync"
	"testing"
	"time"
)

func TestMidIsTimeIn100ns(t *testing.T) {
	g := newMidGen()
	before := time.Now().UnixNano() / 100
	mid := g.Next()
	after := time.Now().UnixNano() / 100
	if mid < before || mid > after {
		t.Fatalf("mid %d not between %d and %d (100 ns units since the epoch)", mid, before, after)
	}
}

func TestMidStrictlyIncreasesWhenClockStandsStillOrStepsBack(t *testing.T) {
	g := newMidGen()
	now := time.Unix(1700000000, 0)
	g.now = func() time.Time { return now }
	a, b := g.Next(), g.Next()
	now = now.Add(-time.Hour) // clock steps back
	c := g.Next()
	if !(a < b && b < c) {
		t.Fatalf("mids not strictly increasing: %d %d %d", a, b, c)
	}
}

func TestMidUniqueAcrossGoroutines(t *testing.T) {
	g := newMidGen()
	const workers, each = 8, 2000
	out := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				out[w] = append(out[w], g.Next())
			}
		}()
	}
	wg.Wait()
	seen := make(map[int64]bool)
	for _, list := range out {
		for i, m := range list {
			if seen[m] {
				t.Fatalf("mid %d handed out twice", m)
			}
			seen[m] = true
			if i > 0 && m <= list[i-1] {
				t.Fatalf("mids of one goroutine not increasing: %d after %d", m, list[i-1])
			}
		}
	}
}
