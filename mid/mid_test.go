package mid

import (
	"sync"
	"testing"
	"time"
)

func TestMidIsTimeIn100ns(t *testing.T) {
	var g Generator
	before := time.Now().UnixNano() / 100
	mid := g.Next()
	after := time.Now().UnixNano() / 100
	if mid < before || mid > after {
		t.Fatalf("mid %d not between %d and %d (100 ns units since the epoch)", mid, before, after)
	}
}

// The same 100 ns twice, then a clock stepped back an hour, then a clock
// that has moved on past the last id: ids go up by one until the clock
// catches up, then follow the clock again.
func TestMidStrictlyIncreasesWhenClockStandsStillOrStepsBack(t *testing.T) {
	now := time.Unix(1800000000, 0)
	g := New(func() time.Time { return now })
	a := g.Next()
	b := g.Next() // same 100 ns
	now = now.Add(-time.Hour)
	c := g.Next() // clock stepped back
	if a != time.Unix(1800000000, 0).UnixNano()/100 || b != a+1 || c != a+2 {
		t.Fatalf("mids %d %d %d, want the clock's then +1 and +2", a, b, c)
	}
	now = now.Add(2 * time.Hour)
	if d := g.Next(); d != now.UnixNano()/100 {
		t.Fatalf("after the clock moved on: %d, want %d", d, now.UnixNano()/100)
	}
}

func TestMidUniqueAcrossGoroutines(t *testing.T) {
	g := New(nil)
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
