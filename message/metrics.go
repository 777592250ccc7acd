package message

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gopush/api"
	"gopush/internal/observe"
)

// MessageRPC method names, as the method label of the metrics below.
const (
	mPing             = "Ping"
	mSavePrivate      = "SavePrivate"
	mSavePrivates     = "SavePrivates"
	mSavePrivatesEach = "SavePrivatesEach"
	mSaveBatch        = "SaveBatch"
	mGetPrivate       = "GetPrivate"
	mDelPrivate       = "DelPrivate"
	mSavePublic       = "SavePublic"
	mGetPublic        = "GetPublic"
	mRoomJoin         = "RoomJoin"
	mRoomLeave        = "RoomLeave"
	mRoomKeys         = "RoomKeys"
	mRoomDel          = "RoomDel"
	mHealth           = "Health"
	mSavePrivateId    = "SavePrivateId"
	mSavePublicId     = "SavePublicId"
)

var rpcMethods = []string{mPing, mSavePrivate, mSavePrivates, mSavePrivatesEach, mGetPrivate, mDelPrivate,
	mSavePublic, mGetPublic, mRoomJoin, mRoomLeave, mRoomKeys, mRoomDel, mHealth,
	mSavePrivateId, mSavePublicId, mSaveBatch}

// Storage operations, as the op label.
const (
	opSave     = "save"
	opSaveMany = "save_many"
	opGet      = "get"
	opDel      = "del"
)

// metrics are the message daemon's Prometheus metrics (docs/observability.md).
// A nil *metrics measures nothing, so that metrics.bind = [] costs nothing.
// Labels are method names, results and shard names: never a key.
type metrics struct {
	methods map[string]*methodMetrics // fixed after newMetrics: read without a lock
	shards  sync.Map                  // shard names seen: their series exist from then on

	storageSeconds *prometheus.HistogramVec
	storageErrors  *prometheus.CounterVec
	stored         *prometheus.CounterVec
	read           *prometheus.CounterVec
	expiredMsgs    *prometheus.CounterVec
	trimmedMsgs    *prometheus.CounterVec
}

// methodMetrics are one RPC method's series, resolved once.
type methodMetrics struct {
	ok, refused, failed prometheus.Counter
	seconds             prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: observe.Namespace, Subsystem: "message", Name: "rpc_calls_total",
		Help: "MessageRPC calls answered, by method and result (ok; refused: bad input or a full room; error: storage failure).",
	}, []string{"method", "result"})
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: observe.Namespace, Subsystem: "message", Name: "rpc_duration_seconds",
		Help:    "Time to answer a MessageRPC call, by method.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 100µs .. 6.5s
	}, []string{"method"})
	m := &metrics{
		methods: make(map[string]*methodMetrics, len(rpcMethods)),
		storageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: observe.Namespace, Subsystem: "message", Name: "storage_duration_seconds",
			Help:    "Time of one storage operation, by shard and operation (save, save_many, get, del).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}, []string{"shard", "op"}),
		storageErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: observe.Namespace, Subsystem: "message", Name: "storage_errors_total",
			Help: "Storage operations (or, for save_many, messages) that failed, by shard and operation.",
		}, []string{"shard", "op"}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: observe.Namespace, Subsystem: "message", Name: "messages_stored_total",
			Help: "Private messages stored, by shard.",
		}, []string{"shard"}),
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: observe.Namespace, Subsystem: "message", Name: "messages_read_total",
			Help: "Private messages handed back by GetPrivate, by shard.",
		}, []string{"shard"}),
		expiredMsgs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: observe.Namespace, Subsystem: "message", Name: "messages_expired_total",
			Help: "Expired private messages removed, by shard.",
		}, []string{"shard"}),
		trimmedMsgs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: observe.Namespace, Subsystem: "message", Name: "messages_trimmed_total",
			Help: "Private messages dropped because their key held storage.store newer ones (Redis), by shard.",
		}, []string{"shard"}),
	}
	for _, name := range rpcMethods {
		m.methods[name] = &methodMetrics{
			ok:      calls.WithLabelValues(name, "ok"),
			refused: calls.WithLabelValues(name, "refused"),
			failed:  calls.WithLabelValues(name, "error"),
			seconds: seconds.WithLabelValues(name),
		}
	}
	reg.MustRegister(calls, seconds, m.storageSeconds, m.storageErrors, m.stored, m.read, m.expiredMsgs, m.trimmedMsgs)
	return m
}

// call counts one answered RPC call; deferred by every method with its
// start time and its named error result.
func (m *metrics) call(method string, start time.Time, errp *error) {
	if m == nil {
		return
	}
	mm := m.methods[method]
	mm.seconds.Observe(time.Since(start).Seconds())
	var full *roomFullError
	switch err := *errp; {
	case err == nil:
		mm.ok.Inc()
	case IsParamError(err), errors.As(err, &full):
		mm.refused.Inc()
	default:
		mm.failed.Inc()
	}
}

func (m *metrics) op(shard, op string, start time.Time, failed int) {
	if _, seen := m.shards.LoadOrStore(shard, true); !seen {
		// Every series of a shard exists (at 0) from its first operation,
		// so that dashboards and alerts see zeros rather than nothing.
		for _, o := range []string{opSave, opSaveMany, opGet, opDel} {
			m.storageErrors.WithLabelValues(shard, o)
		}
		for _, v := range []*prometheus.CounterVec{m.stored, m.read, m.expiredMsgs, m.trimmedMsgs} {
			v.WithLabelValues(shard)
		}
	}
	m.storageSeconds.WithLabelValues(shard, op).Observe(time.Since(start).Seconds())
	if failed > 0 {
		m.storageErrors.WithLabelValues(shard, op).Add(float64(failed))
	}
}

func (m *metrics) expired(shard string, n int) {
	if m != nil && n > 0 {
		m.expiredMsgs.WithLabelValues(shard).Add(float64(n))
	}
}

func (m *metrics) trimmed(shard string, n int) {
	if m != nil && n > 0 {
		m.trimmedMsgs.WithLabelValues(shard).Add(float64(n))
	}
}

// measure makes store count what it does itself (expired and trimmed
// messages) on m.
func measure(store Storage, m *metrics) {
	switch s := store.(type) {
	case *RedisStorage:
		s.met.Store(m)
	case *MySQLStorage:
		s.met.Store(m)
	}
}

// measuredStorage times every storage operation and counts its errors
// and messages, by shard.
type measuredStorage struct {
	Storage
	m *metrics
}

func (s measuredStorage) Save(ctx context.Context, e Entry) error {
	shard, start := s.ShardOf(e.Key), time.Now()
	err := s.Storage.Save(ctx, e)
	if err != nil {
		s.m.op(shard, opSave, start, 1)
		return err
	}
	s.m.op(shard, opSave, start, 0)
	s.m.stored.WithLabelValues(shard).Inc()
	return nil
}

func (s measuredStorage) SaveMany(ctx context.Context, es []Entry) []error {
	start := time.Now()
	errs := s.Storage.SaveMany(ctx, es)
	type tally struct{ ok, failed int }
	by := make(map[string]*tally, 1)
	for i, e := range es {
		shard := s.ShardOf(e.Key)
		t := by[shard]
		if t == nil {
			t = &tally{}
			by[shard] = t
		}
		if errs[i] != nil {
			t.failed++
		} else {
			t.ok++
		}
	}
	for shard, t := range by {
		s.m.op(shard, opSaveMany, start, t.failed)
		s.m.stored.WithLabelValues(shard).Add(float64(t.ok))
	}
	return errs
}

func (s measuredStorage) Get(ctx context.Context, key string, after int64) (msgs []*api.Message, err error) {
	shard, start := s.ShardOf(key), time.Now()
	msgs, err = s.Storage.Get(ctx, key, after)
	if err != nil {
		s.m.op(shard, opGet, start, 1)
		return nil, err
	}
	s.m.op(shard, opGet, start, 0)
	s.m.read.WithLabelValues(shard).Add(float64(len(msgs)))
	return msgs, nil
}

func (s measuredStorage) Del(ctx context.Context, key string) error {
	shard, start := s.ShardOf(key), time.Now()
	err := s.Storage.Del(ctx, key)
	failed := 0
	if err != nil {
		failed = 1
	}
	s.m.op(shard, opDel, start, failed)
	return err
}
