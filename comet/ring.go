package comet

import (
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"gopush/ketama"
)

// maxRingWeight bounds the sum of node weights a ring may be built from: the
// ring holds 255 points per unit of weight, and a bogus Migrate must not
// make comet allocate gigabytes.
const maxRingWeight = 10000

// ring decides which keys belong to this comet (docs/protocol.md §6): a key is ours when
// the ketama ring over the comet nodes maps it to our node name. Readers load
// the current ring without locking; Migrate swaps in a new one.
type ring struct {
	node string
	cur  atomic.Pointer[ringState] // nil: no ring known yet, every key is accepted
	mu   sync.Mutex                // serialises replacements
}

type ringState struct {
	r       *ketama.Ring
	weights map[string]int
}

func newRing(node string) *ring { return &ring{node: node} }

// owns reports whether key belongs to this node. Before any ring is known
// (ZooKeeper unreadable at start-up) every key is accepted.
func (o *ring) owns(key string) bool {
	s := o.cur.Load()
	if s == nil {
		return true
	}
	return s.r.Get(key) == o.node
}

// weights returns the node→weight map of the current ring (nil if none).
func (o *ring) weights() map[string]int {
	if s := o.cur.Load(); s != nil {
		return maps.Clone(s.weights)
	}
	return nil
}

// checkWeights refuses maps that would build a useless or huge ring. An
// empty map is refused too: no web sends one (it has no comet to send it
// to), and accepting it would close every connection.
func checkWeights(nodes map[string]int) error {
	if len(nodes) == 0 {
		return fmt.Errorf("ring: no node")
	}
	total := 0
	for name, w := range nodes {
		if name == "" {
			return fmt.Errorf("ring: empty node name")
		}
		if w < 1 || w > maxRingWeight {
			return fmt.Errorf("ring: node %q has weight %d, want 1..%d", name, w, maxRingWeight)
		}
		total += w
		if total > maxRingWeight {
			return fmt.Errorf("ring: total weight above %d", maxRingWeight)
		}
	}
	return nil
}

// setInitial installs a ring built from nodes unless one is already set
// (a Migrate that came first is newer than what start-up read).
func (o *ring) setInitial(nodes map[string]int) error {
	if err := checkWeights(nodes); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cur.Load() == nil {
		w := maps.Clone(nodes)
		o.cur.Store(&ringState{r: ketama.FromWeights(ketama.DefaultBase, w), weights: w})
	}
	return nil
}

// replace installs a ring built from nodes unless it has the same nodes and
// weights as the current one. It reports whether the ring changed. A ring
// that does not contain this node owns no key.
func (o *ring) replace(nodes map[string]int) (bool, error) {
	if err := checkWeights(nodes); err != nil {
		return false, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := o.cur.Load(); s != nil && maps.Equal(s.weights, nodes) {
		return false, nil
	}
	w := maps.Clone(nodes)
	if w == nil {
		w = map[string]int{}
	}
	o.cur.Store(&ringState{r: ketama.FromWeights(ketama.DefaultBase, w), weights: w})
	return true, nil
}
