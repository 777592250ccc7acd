package observe

import (
	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
)

// ZooKeeper is what the ZooKeeper metrics and check read of a daemon's
// session: its state and, for comet and message, whether the daemon's own
// node is registered.
type ZooKeeper struct {
	// State returns the session's state; nil or a nil connection reads as
	// disconnected.
	Conn func() *zk.Conn
	// Registered returns the daemon's own ephemeral node and whether it is
	// in place (nil for web, which registers nothing).
	Registered func() (path string, ok bool)
	// Registrations counts the registrations made since start (the first
	// one included; nil for web).
	Registrations func() int64
}

func (z ZooKeeper) up() bool {
	if z.Conn == nil {
		return false
	}
	c := z.Conn()
	return c != nil && c.State() == zk.StateHasSession
}

// Register adds gopush_zookeeper_session_up and, for daemons that
// register, gopush_zookeeper_registered and
// gopush_zookeeper_registrations_total to reg.
func (z ZooKeeper) Register(reg prometheus.Registerer) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: "zookeeper", Name: "session_up",
		Help: "1 while the ZooKeeper session is established, else 0.",
	}, func() float64 { return b2f(z.up()) }))
	if z.Registered != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "zookeeper", Name: "registered",
			Help: "1 while this daemon's own ephemeral node is in place, else 0.",
		}, func() float64 { _, ok := z.Registered(); return b2f(ok && z.up()) }))
	}
	if z.Registrations != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "zookeeper", Name: "registrations_total",
			Help: "Ephemeral nodes this daemon created for itself: 1 at start, one more after each session expiry or deletion.",
		}, func() float64 { return float64(z.Registrations()) }))
	}
}

// Check is the readiness check of the session (and registration).
func (z ZooKeeper) Check() Check {
	if !z.up() {
		state := "no connection"
		if z.Conn != nil {
			if c := z.Conn(); c != nil {
				state = c.State().String()
			}
		}
		return Check{Name: "zookeeper", Detail: "no ZooKeeper session (state " + state + ")"}
	}
	if z.Registered != nil {
		path, ok := z.Registered()
		if !ok {
			return Check{Name: "zookeeper", Detail: "session up but this daemon's node is not registered"}
		}
		return Check{Name: "zookeeper", OK: true, Detail: "session up, registered as " + path}
	}
	return Check{Name: "zookeeper", OK: true, Detail: "session up"}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
