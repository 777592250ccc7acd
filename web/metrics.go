package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gopush/api"
	"gopush/internal/connlimit"
	"gopush/internal/observe"
	"gopush/internal/routemux"
)

// metrics are web's Prometheus metrics (docs/observability.md). A nil
// *metrics measures nothing (metrics.bind = []). Labels are routes, codes,
// push kinds, results, comet node names and RPC methods: never a key.
type metrics struct {
	reg prometheus.Registerer

	httpRequests *prometheus.CounterVec
	httpSeconds  *prometheus.HistogramVec

	pushes     *prometheus.CounterVec
	failedKeys *prometheus.CounterVec
	failedNode prometheus.Counter

	cometSeconds *prometheus.HistogramVec
	cometErrors  *prometheus.CounterVec
	msgSeconds   *prometheus.HistogramVec
	msgErrors    *prometheus.CounterVec

	prunes           prometheus.Counter
	migrations       prometheus.Counter
	migrationsFailed prometheus.Counter
}

// routeMetrics are one route's series, resolved once.
type routeMetrics struct {
	seconds prometheus.Observer
	ok      prometheus.Counter // code 200, by far the most common
	route   string
}

// Push kinds, as the kind label.
const (
	kindPrivate  = "private"
	kindMPrivate = "mprivate"
	kindRoom     = "room"
	kindAll      = "all"
	kindBatch    = "batch"
)

// rpcBuckets suit calls between nodes of one site: 100 µs to about 6.5 s.
var rpcBuckets = prometheus.ExponentialBuckets(0.0001, 4, 9)

func newMetrics(reg prometheus.Registerer, w *Web) *metrics {
	ns := observe.Namespace
	m := &metrics{
		reg: reg,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "web", Name: "http_requests_total",
			Help: "HTTP requests answered on the public and admin listeners, by route (the path pattern; \"other\" for unknown paths) and HTTP status code.",
		}, []string{"route", "code"}),
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "web", Name: "http_request_duration_seconds",
			Help: "Time to answer an HTTP request, by route.", Buckets: rpcBuckets,
		}, []string{"route"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "web", Name: "pushes_total",
			Help: "Push requests answered, by kind (private, mprivate, room, all, batch) and result (ok, param, no_node, room_full, error: the ret code).",
		}, []string{"kind", "result"}),
		failedKeys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "web", Name: "push_failed_keys_total",
			Help: "Keys a push could not reach (the fk of mprivate and room; the key of a failed private push; the failed pushes of a batch), by kind.",
		}, []string{"kind"}),
		failedNode: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "web", Name: "broadcast_failed_nodes_total",
			Help: "Comet nodes whose Broadcast failed during push/all (the fn of its answer).",
		}),
		cometSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "web", Name: "comet_rpc_duration_seconds",
			Help: "Time of a CometRPC call, by comet node and method.", Buckets: rpcBuckets,
		}, []string{"node", "method"}),
		cometErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "web", Name: "comet_rpc_errors_total",
			Help: "CometRPC calls that failed (unreachable, timed out, or an error answer), by comet node and method.",
		}, []string{"node", "method"}),
		msgSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "web", Name: "message_rpc_duration_seconds",
			Help: "Time of a MessageRPC call, by method.", Buckets: rpcBuckets,
		}, []string{"method"}),
		msgErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "web", Name: "message_rpc_errors_total",
			Help: "MessageRPC calls that failed, by method.",
		}, []string{"method"}),
		prunes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "web", Name: "prunes_total",
			Help: "Dead comet nodes this web deleted from ZooKeeper.",
		}),
		migrations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "web", Name: "migrations_total",
			Help: "Ring changes this web told the comets about (holding the migration lock).",
		}),
		migrationsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "web", Name: "migration_notify_errors_total",
			Help: "Migrate calls to a comet that failed (retried later).",
		}),
	}
	reg.MustRegister(m.httpRequests, m.httpSeconds, m.pushes, m.failedKeys, m.failedNode,
		m.cometSeconds, m.cometErrors, m.msgSeconds, m.msgErrors, m.prunes, m.migrations, m.migrationsFailed,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "web", Name: "admin_denied_total",
			Help: "Admin requests refused for a missing or wrong bearer token (admin.token).",
		}, func() float64 { return float64(w.AdminDenied()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "web", Name: "ring_nodes",
			Help: "Comet nodes on the ring (registered in ZooKeeper, with or without a live instance).",
		}, func() float64 { return float64(len(w.cluster.load().weights)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "web", Name: "serving_comets",
			Help: "Comet nodes with a serving instance.",
		}, func() float64 { return float64(len(w.cluster.load().nodes)) }),
	)
	// The series of every kind and result exist (at 0) from the start.
	for _, kind := range []string{kindPrivate, kindMPrivate, kindRoom, kindAll, kindBatch} {
		m.failedKeys.WithLabelValues(kind)
		for _, code := range []int{api.CodeOK, api.CodeNoNode, api.CodeRoomFull, api.CodeParamErr, api.CodeInternalErr} {
			m.pushes.WithLabelValues(kind, resultOf(code))
		}
	}
	w.zkObs().Register(reg)
	return m
}

// routeFor resolves the series of one route ("" is an unknown path).
func (m *metrics) routeFor(pattern string) *routeMetrics {
	route := pattern
	if route == "" {
		route = "other"
	}
	return &routeMetrics{
		seconds: m.httpSeconds.WithLabelValues(route),
		ok:      m.httpRequests.WithLabelValues(route, "200"),
		route:   route,
	}
}

// statusWriter remembers the status code written through it. They are
// pooled: one per request in flight.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

// instrument counts and times every request mux answers, by the pattern
// that matched (http.ServeMux, which routemux.Mux is, sets r.Pattern). The
// series of every route are resolved here, so a request only reads a map
// that no one writes.
func (m *metrics) instrument(mux *routemux.Mux) http.Handler {
	if m == nil {
		return mux
	}
	routes := map[string]*routeMetrics{"": m.routeFor("")}
	for _, p := range mux.Patterns() {
		routes[p] = m.routeFor(p)
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := statusWriters.Get().(*statusWriter)
		sw.ResponseWriter, sw.code = rw, 0
		mux.ServeHTTP(sw, r)
		code := sw.code
		sw.ResponseWriter = nil
		statusWriters.Put(sw)
		rm := routes[r.Pattern]
		if rm == nil {
			rm = routes[""]
		}
		rm.seconds.Observe(time.Since(start).Seconds())
		if code == 0 || code == http.StatusOK {
			rm.ok.Inc()
			return
		}
		m.httpRequests.WithLabelValues(rm.route, strconv.Itoa(code)).Inc()
	})
}

// resultOf names a SPEC code for the result label.
func resultOf(code int) string {
	switch code {
	case api.CodeOK:
		return "ok"
	case api.CodeNoNode:
		return "no_node"
	case api.CodeRoomFull:
		return "room_full"
	case api.CodeParamErr:
		return "param"
	}
	return "error"
}

// countPush wraps a push endpoint's work: it counts the request by kind and
// result, and the keys (fk) or nodes (fn) it failed.
func (m *metrics) countPush(kind string, fn handlerFunc) handlerFunc {
	if m == nil {
		return fn
	}
	results := map[int]prometheus.Counter{}
	for _, code := range []int{api.CodeOK, api.CodeNoNode, api.CodeRoomFull, api.CodeParamErr, api.CodeInternalErr} {
		results[code] = m.pushes.WithLabelValues(kind, resultOf(code))
	}
	failed := m.failedKeys.WithLabelValues(kind)
	return func(rw http.ResponseWriter, r *http.Request) (any, error) {
		data, err := fn(rw, r)
		code := api.CodeOK
		if err != nil {
			code = codeOf(err) // (it allocates: only on errors)
		}
		c := results[code]
		if c == nil {
			c = m.pushes.WithLabelValues(kind, resultOf(code))
		}
		c.Inc()
		if err != nil && kind == kindPrivate && code != api.CodeParamErr {
			failed.Inc()
		}
		if d, ok := data.(api.BatchAnswer); ok {
			failed.Add(float64(len(d.Failed)))
		}
		if d, ok := data.(map[string]any); ok {
			if fk, ok := d["fk"].([]string); ok {
				failed.Add(float64(len(fk)))
			}
			if fn, ok := d["fn"].([]string); ok {
				m.failedNode.Add(float64(len(fn)))
			}
		}
		return data, err
	}
}

// methodOf strips the service from "CometRPC.PushPrivate".
func methodOf(serviceMethod string) string {
	_, m, ok := strings.Cut(serviceMethod, ".")
	if !ok {
		return serviceMethod
	}
	return m
}

// measuredCaller times the calls of an RPC peer and counts its errors.
type measuredCaller struct {
	caller
	node     string // comet node
	withNode bool   // false for the message pool, whose metrics have no node label
	seconds  *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	// per method, resolved at construction for the methods web calls
	byMethod map[string]callMetrics
}

type callMetrics struct {
	seconds prometheus.Observer
	errors  prometheus.Counter
}

func (mc *measuredCaller) Call(ctx context.Context, method string, args, reply any) error {
	start := time.Now()
	err := mc.caller.Call(ctx, method, args, reply)
	cm, ok := mc.byMethod[method]
	if !ok {
		cm = mc.resolve(method)
	}
	cm.seconds.Observe(time.Since(start).Seconds())
	if err != nil {
		cm.errors.Inc()
	}
	return err
}

func (mc *measuredCaller) resolve(method string) callMetrics {
	labels := []string{methodOf(method)}
	if mc.withNode {
		labels = []string{mc.node, methodOf(method)}
	}
	return callMetrics{seconds: mc.seconds.WithLabelValues(labels...), errors: mc.errors.WithLabelValues(labels...)}
}

// cometCaller wraps the client of a comet node.
func (m *metrics) cometCaller(node string, c caller, methods ...string) caller {
	if m == nil {
		return c
	}
	mc := &measuredCaller{caller: c, node: node, withNode: true, seconds: m.cometSeconds, errors: m.cometErrors, byMethod: map[string]callMetrics{}}
	for _, meth := range methods {
		mc.byMethod[meth] = mc.resolve(meth)
	}
	return mc
}

// messageCaller wraps the message-node pool.
func (m *metrics) messageCaller(c caller, methods ...string) caller {
	if m == nil {
		return c
	}
	mc := &measuredCaller{caller: c, seconds: m.msgSeconds, errors: m.msgErrors, byMethod: map[string]callMetrics{}}
	for _, meth := range methods {
		mc.byMethod[meth] = mc.resolve(meth)
	}
	return mc
}

// connLimits adds the public listener's limiter counters, once it exists.
func (m *metrics) connLimits(counts func() connlimit.Counts) {
	if m != nil {
		observe.ConnLimits(m.reg, "web", "public", counts)
	}
}

func (m *metrics) pruned() {
	if m != nil {
		m.prunes.Inc()
	}
}

func (m *metrics) migrated() {
	if m != nil {
		m.migrations.Inc()
	}
}

func (m *metrics) notifyFailed() {
	if m != nil {
		m.migrationsFailed.Inc()
	}
}
