package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"gopush/conf"
	"gopush/internal/observe"
	"gopush/internal/routemux"
	"gopush/ketama"
)

// nopComet answers every call at once.
type nopComet struct{}

func (nopComet) Call(context.Context, string, any, any) error { return nil }

// BenchmarkPushPrivateMetrics measures what metrics add to one
// /1/admin/push/private through the handler (no network; the comet
// answers at once): "off" is metrics.bind = [], "on" counts and times the
// request, the push and the comet call.
func BenchmarkPushPrivateMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			w := New(conf.DefaultWeb(), nil)
			if on {
				w.met = newMetrics(observe.NewRegistry(), w)
			}
			weights := map[string]int{"node-a": 1, "node-b": 1}
			nodes := map[string]*cometNode{}
			for n := range weights {
				nodes[n] = &cometNode{name: n, rpc: w.met.cometCaller(n, nopComet{}, "CometRPC.PushPrivate")}
			}
			w.cluster.cur.Store(&clusterView{ring: ketama.FromWeights(ketama.DefaultBase, weights), weights: weights, nodes: nodes})
			h := w.met.instrument(w.adminMux())
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					r := httptest.NewRequest(http.MethodPost, "/1/admin/push/private?expire=0&key=user-"+strconv.Itoa(i%1024), strings.NewReader(`{"n":1}`))
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					if rec.Code != http.StatusOK || rec.Body.String() != `{"ret":0}` {
						b.Fatal(rec.Code, rec.Body.String())
					}
					i++
				}
			})
		})
	}
}

// BenchmarkMetricsOverhead isolates what metrics add to one push on web:
// the request wrapper, the push counter and the timed comet call, around
// a handler that does nothing else. The difference between "on" and "off"
// is the cost per push (docs/performance.md).
func BenchmarkMetricsOverhead(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			w := New(conf.DefaultWeb(), nil)
			if on {
				w.met = newMetrics(observe.NewRegistry(), w)
			}
			comet := w.met.cometCaller("node-a", nopComet{}, "CometRPC.PushPrivate")
			mux := routemux.New()
			mux.Handle("/1/admin/push/private", endpoint(w.log, []string{http.MethodPost}, "", false,
				w.met.countPush(kindPrivate, func(http.ResponseWriter, *http.Request) (any, error) {
					return nil, comet.Call(context.Background(), "CometRPC.PushPrivate", nil, nil)
				})))
			h := w.met.instrument(mux)
			r := httptest.NewRequest(http.MethodPost, "/1/admin/push/private", nil)
			rw := discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				h.ServeHTTP(rw, r)
			}
		})
	}
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
