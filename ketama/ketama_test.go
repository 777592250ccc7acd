package ketama

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

type vectorFile struct {
	Cases []struct {
		Base  int               `json:"base"`
		Nodes map[string]int    `json:"nodes"`
		Keys  map[string]string `json:"keys"`
	} `json:"cases"`
}

// vectorsPath is the file of expected answers computed by gopush-cluster
// 1.0.5 (docs/protocol.md §6.1), kept in this package's testdata.
func vectorsPath(t testing.TB) string {
	return filepath.Join("testdata", "ketama_vectors.json")
}

func TestVectorsFrom105(t *testing.T) {
	raw, err := os.ReadFile(vectorsPath(t))
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatalf("decode vectors: %v", err)
	}
	if len(vf.Cases) == 0 {
		t.Fatal("vector file has no cases")
	}
	checked := 0
	for _, c := range vf.Cases {
		ring := FromWeights(c.Base, c.Nodes)
		for key, want := range c.Keys {
			if got := ring.Get(key); got != want {
				t.Errorf("base %d nodes %v: key %q -> %q, want %q", c.Base, c.Nodes, key, got, want)
			}
			checked++
		}
	}
	t.Logf("checked %d keys over %d rings", checked, len(vf.Cases))
}

func TestEmptyRing(t *testing.T) {
	var nilRing *Ring
	if got := nilRing.Get("a"); got != "" {
		t.Fatalf("nil ring returned %q", got)
	}
	if got := New(255).Build().Get("a"); got != "" {
		t.Fatalf("empty ring returned %q", got)
	}
}

func TestRebuildDoesNotMutate(t *testing.T) {
	b := New(255).Add("node1", 1)
	r1 := b.Build()
	b.Add("node2", 5)
	r2 := b.Build()
	if r1.Len() != 1 || r2.Len() != 2 {
		t.Fatalf("lens %d %d", r1.Len(), r2.Len())
	}
	for i := 0; i < 100; i++ {
		if got := r1.Get(fmt.Sprint("k", i)); got != "node1" {
			t.Fatalf("old ring changed: %q", got)
		}
	}
	if w := r2.Weights(); w["node2"] != 5 || w["node1"] != 1 {
		t.Fatalf("weights %v", w)
	}
	if r := New(255).Add("x", 1).Add("x", 0).Build(); r.Len() != 0 {
		t.Fatalf("weight 0 should remove node")
	}
}

func TestGetDoesNotAllocate(t *testing.T) {
	r := FromWeights(255, map[string]int{"a": 1, "b": 2, "c": 3})
	long := string(make([]byte, 300))
	allocs := testing.AllocsPerRun(1000, func() {
		_ = r.Get("Terry-Mao")
		_ = r.Get(long)
	})
	if allocs != 0 {
		t.Fatalf("Get allocates %.1f times per call", allocs)
	}
}

func TestConcurrentReaders(t *testing.T) {
	r := FromWeights(255, map[string]int{"a": 1, "b": 1})
	want := r.Get("key")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				if r.Get("key") != want {
					t.Error("inconsistent answer")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkGet(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		w := make(map[string]int, n)
		for i := 0; i < n; i++ {
			w[fmt.Sprintf("node%d", i)] = 1
		}
		r := FromWeights(255, w)
		keys := make([]string, 1024)
		for i := range keys {
			keys[i] = fmt.Sprintf("user-%d", i)
		}
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = r.Get(keys[i&1023])
			}
		})
	}
}
