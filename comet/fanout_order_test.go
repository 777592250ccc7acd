package comet

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// A push/all reaches every subscribed connection once, and visits them in
// the order they were accepted, on one goroutine or on several.
func TestFanOutVisitsEveryConnectionOnceInAcceptOrder(t *testing.T) {
	for _, n := range []int{100, 3000} { // below and above fanOutMin
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			h := newHub(64, &stats{})
			for i := range n {
				// Several connections per key, keys spread over buckets.
				c := &conn{id: uint64(i + 1), key: fmt.Sprintf("k%d", i%(n/3))}
				if !h.add(c, func(*channel) bool { return true }) {
					t.Fatal("add refused")
				}
			}
			var mu sync.Mutex
			seen := make(map[uint64]int)
			runs := make(map[uint64]int) // last id of a run of consecutive ids → its length
			got := h.fanOut(int64(n), func(c *conn) bool {
				mu.Lock()
				defer mu.Unlock()
				seen[c.id]++
				// Each goroutine's share is a contiguous run of ids, visited
				// in ascending order: an id extends the run ending just
				// before it, or starts a new one.
				l := runs[c.id-1]
				delete(runs, c.id-1)
				runs[c.id] = l + 1
				return c.id%10 != 0 // some connections refuse
			})
			if len(seen) != n {
				t.Fatalf("visited %d connections, want %d", len(seen), n)
			}
			for id, k := range seen {
				if k != 1 {
					t.Fatalf("connection %d visited %d times", id, k)
				}
			}
			if want := n - n/10; got != n-n/10 {
				t.Fatalf("fanOut counted %d sends, want %d", got, want)
			}
			if len(runs) > runtime.GOMAXPROCS(0) { // one run per goroutine at most
				t.Fatalf("connections visited out of accept order: %d separate runs of ascending ids", len(runs))
			}
		})
	}
}
