package comet

import (
	"testing"

	"gopush/ketama"
)

func TestRingOwnership(t *testing.T) {
	o := newRing("n1")
	if !o.owns("anything") {
		t.Fatal("before any ring every key must be accepted")
	}
	nodes := map[string]int{"n1": 1, "n2": 2}
	changed, err := o.replace(nodes)
	if err != nil || !changed {
		t.Fatalf("replace: %v %v", changed, err)
	}
	r := ketama.FromWeights(ketama.DefaultBase, nodes)
	mine, theirs := 0, 0
	for i := range 200 {
		k := "key" + string(rune('a'+i%26)) + string(rune('0'+i/26))
		if o.owns(k) != (r.Get(k) == "n1") {
			t.Fatalf("owns(%q) disagrees with the ketama ring", k)
		}
		if o.owns(k) {
			mine++
		} else {
			theirs++
		}
	}
	if mine == 0 || theirs == 0 {
		t.Fatalf("keys not spread: %d mine, %d theirs", mine, theirs)
	}
	if changed, _ := o.replace(map[string]int{"n2": 2, "n1": 1}); changed {
		t.Fatal("the same map must not count as a change")
	}
	if changed, _ := o.replace(map[string]int{"n2": 1}); !changed || o.owns("x") {
		t.Fatal("a ring without this node must own no key")
	}
	for _, bad := range []map[string]int{nil, {}, {"": 1}, {"a": 0}, {"a": -1}, {"a": 1 << 40}, {"a": maxRingWeight, "b": 1}} {
		if _, err := o.replace(bad); err == nil {
			t.Errorf("weights %v accepted", bad)
		}
	}
}

func TestRingStartupDoesNotOverrideMigrate(t *testing.T) {
	o := newRing("n1")
	if _, err := o.replace(map[string]int{"n1": 1, "n2": 1}); err != nil {
		t.Fatal(err)
	}
	if err := o.setInitial(map[string]int{"n1": 1}); err != nil {
		t.Fatal(err)
	}
	if w := o.weights(); len(w) != 2 {
		t.Fatalf("start-up view replaced the ring Migrate set: %v", w)
	}
	fresh := newRing("n1")
	if err := fresh.setInitial(map[string]int{"n1": 1}); err != nil || len(fresh.weights()) != 1 {
		t.Fatalf("initial ring not set: %v %v", fresh.weights(), err)
	}
}
