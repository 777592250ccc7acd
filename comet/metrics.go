package comet

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"gopush/api"
	"gopush/internal/observe"
)

// comet's Prometheus metrics (docs/observability.md) read the atomic
// counters of stats, which /stat shows too: a scrape loads them, and the
// connection and push paths pay nothing for being measured beyond the
// atomic additions they already make. Labels are protocols, replies and
// methods; never a key or a token.

// registerMetrics adds comet's metrics to reg.
func (c *Comet) registerMetrics(reg prometheus.Registerer) {
	st := c.stats
	counter := func(name, help string, labels prometheus.Labels, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: observe.Namespace, Subsystem: "comet", Name: name, Help: help, ConstLabels: labels,
		}, func() float64 { return float64(v.Load()) })
	}
	gaugeOf := func(name, help string, labels prometheus.Labels, f func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: observe.Namespace, Subsystem: "comet", Name: name, Help: help, ConstLabels: labels,
		}, func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, labels prometheus.Labels, v *atomic.Int64) prometheus.Collector {
		return gaugeOf(name, help, labels, v.Load)
	}
	proto := func(name string) prometheus.Labels { return prometheus.Labels{"proto": name} }
	reply := func(r string) prometheus.Labels { return prometheus.Labels{"reply": r} }
	method := func(m string) prometheus.Labels { return prometheus.Labels{"method": m} }
	const (
		hConns    = "Client connections open (subscribed or in their handshake), by protocol."
		hAccepted = "Client connections accepted since start, by protocol."
		hSubs     = "Subscribe requests answered, by reply: +h subscribed, -p bad parameters, -a token refused, -c too many connections for the key, -n the key belongs to another comet."
		hPushes   = "CometRPC push calls received, by method."
	)
	for p := range numProtos {
		all, overTLS := st.open(p), &st.tlsOpen[p]
		reg.MustRegister(
			gaugeOf("connections", hConns, proto(p.String()), func() int64 { return all.Load() - overTLS.Load() }),
			gauge("connections", hConns, proto(p.String()+"+tls"), overTLS),
		)
	}
	reg.MustRegister(
		counter("connections_accepted_total", hAccepted, proto("tcp"), &st.tcpAccepted),
		counter("connections_accepted_total", hAccepted, proto("websocket"), &st.wsAccepted),
		counter("connections_accepted_total", hAccepted, proto("sse"), &st.sseAccepted),
		gaugeOf("subscribed_connections", "Connections subscribed to a key.", nil, st.subscribed),
		gaugeOf("channels", "Keys held in memory (with a connection or a live token).", nil, st.channels),
		counter("subscribes_total", hSubs, reply("+h"), &st.subscribes),
		counter("subscribes_total", hSubs, reply("-p"), &st.refusedParam),
		counter("subscribes_total", hSubs, reply("-a"), &st.refusedAuth),
		counter("subscribes_total", hSubs, reply("-c"), &st.refusedChannel),
		counter("subscribes_total", hSubs, reply("-n"), &st.refusedNotOwner),
		counter("handshake_timeouts_total", "TCP connections closed for sending no subscribe request within channel.handshake.timeout.", nil, &st.handshakeTimeouts),
		counter("heartbeats_total", "Client heartbeats answered.", nil, &st.heartbeats),
		counter("rpc_pushes_total", hPushes, method("PushPrivate"), &st.rpcPushPrivate),
		counter("rpc_pushes_total", hPushes, method("PushPrivates"), &st.rpcPushPrivates),
		counter("rpc_pushes_total", hPushes, method("PushBatch"), &st.rpcPushBatch),
		counter("rpc_pushes_total", hPushes, method("Broadcast"), &st.rpcBroadcast),
		counter("broadcasts_total", "Public broadcasts (web's push/all) received.", nil, &st.rpcBroadcast),
		counter("pushed_keys_total", "Private messages given a mid for one key (a PushPrivates call counts each of its keys).", nil, &st.pushed),
		counter("push_failures_total", "Private messages not delivered because storing them failed.", nil, &st.pushFailed),
		counter("stored_total", "Private messages stored through MessageRPC before delivery (expire > 0).", nil, &st.stored),
		counter("deliveries_total", "Message frames (private and public) queued to client connections.", nil, &st.framesQueued),
		counter("frames_written_total", "Frames (messages and replies) written to client connections.", nil, &st.framesWritten),
		counter("written_bytes_total", "Bytes written to client connections.", nil, &st.bytesWritten),
		gauge("send_queue_frames", "Frames waiting in the connections' send queues.", nil, &st.queued),
		counter("slow_closed_total", "Connections closed because their send queue (channel.msgbuf.num) was full.", nil, &st.slowClosed),
		counter("migrations_total", "Ring changes applied (CometRPC.Migrate with a new node map).", nil, &st.migrations),
		counter("migration_closed_connections_total", "Connections closed because a ring change gave their key to another node.", nil, &st.migrationClosed),
	)
	c.zkObs().Register(reg)
	observe.ConnLimits(reg, "comet", "clients", c.ClientCounts)
}

// zkObs is what the ZooKeeper metrics and readiness check read.
func (c *Comet) zkObs() observe.ZooKeeper {
	return observe.ZooKeeper{
		Conn: func() *zk.Conn {
			if z := c.zkp.Load(); z != nil {
				return z.Conn()
			}
			return nil
		},
		Registered: func() (string, bool) {
			if r := c.regp.Load(); r != nil {
				return r.Path(), r.Registered()
			}
			return "", false
		},
		Registrations: func() int64 {
			if r := c.regp.Load(); r != nil {
				return r.Registrations()
			}
			return 0
		},
	}
}

// ready is comet's /readyz: the ZooKeeper session is up with this
// instance registered, and the client listeners are open.
func (c *Comet) ready(context.Context) []observe.Check {
	checks := []observe.Check{c.zkObs().Check()}
	lis := observe.Check{Name: "listeners", OK: c.accepting.Load()}
	if lis.OK {
		lis.Detail = fmt.Sprintf("tcp %v, websocket %v", addrsOf(c.tcpLns), addrsOf(c.wsLns))
	} else {
		lis.Detail = "client listeners not open"
	}
	return append(checks, lis)
}

// Stats answers this comet's counters (web's cluster dashboard polls it).
// It is new in gopush.
func (r *RPC) Stats(_ int, reply *api.CometStatsResp) error {
	st := r.c.stats
	*reply = api.CometStatsResp{
		Node:        r.c.cfg.ZooKeeper.Comet.Node,
		Start:       st.start.Unix(),
		Connections: st.tcpConns.Load() + st.wsConns.Load() + st.sseConns.Load(),
		Subscribed:  st.subscribed(),
		Channels:    st.channels(),
		Pushes:      st.pushed.Load(),
		Deliveries:  st.framesQueued.Load(),
		Broadcasts:  st.rpcBroadcast.Load(),
	}
	return nil
}
