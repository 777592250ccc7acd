package web

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"gopush/conf"
	"gopush/ketama"
)

// BenchmarkServerGet measures /1/server/get through the handler (no
// network): parse, ring lookup on the snapshot, JSON answer.
func BenchmarkServerGet(b *testing.B) {
	weights := map[string]int{"node-a": 1, "node-b": 2, "node-c": 1}
	w := New(conf.DefaultWeb(), nil)
	nodes := map[string]*cometNode{}
	for name := range weights {
		nodes[name] = &cometNode{name: name, rpc: &fakeRPC{}}
		nodes[name].data.TCP = []string{"tcp-" + name}
	}
	w.cluster.cur.Store(&clusterView{ring: ketama.FromWeights(ketama.DefaultBase, weights), weights: weights, nodes: nodes})
	mux := w.publicMux()
	reqs := make([]*http.Request, 1024)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/1/server/get?p=2&k=user-"+strconv.Itoa(i), nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, reqs[i%len(reqs)])
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Body.String())
			}
			i++
		}
	})
}
