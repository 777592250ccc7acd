package observe

import (
	"github.com/prometheus/client_golang/prometheus"

	"gopush/internal/connlimit"
)

// ConnLimits adds the counters of a listener's connection limiter
// (docs/security.md) to reg: gopush_<subsystem>_listener_connections
// (open now) and gopush_<subsystem>_listener_refused_total by reason (cap:
// the listener's cap; allow: an address not allowed; peraddr: too many
// from one address; rate: too fast from one address). listener names the
// listener in the listener label. Register it once the limiter exists:
// counts is read at every scrape.
func ConnLimits(reg prometheus.Registerer, subsystem, listener string, counts func() connlimit.Counts) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: subsystem, Name: "listener_connections",
		Help:        "Connections open on a limited listener.",
		ConstLabels: prometheus.Labels{"listener": listener},
	}, func() float64 { return float64(counts().Open) }))
	for reason, get := range map[string]func(connlimit.Counts) int64{
		"cap":     func(c connlimit.Counts) int64 { return c.RefusedCap },
		"allow":   func(c connlimit.Counts) int64 { return c.RefusedAllow },
		"peraddr": func(c connlimit.Counts) int64 { return c.RefusedAddr },
		"rate":    func(c connlimit.Counts) int64 { return c.RefusedRate },
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "listener_refused_total",
			Help:        "Connections a limited listener refused, by reason: cap, allow, peraddr, rate (docs/security.md).",
			ConstLabels: prometheus.Labels{"listener": listener, "reason": reason},
		}, func() float64 { return float64(get(counts())) }))
	}
}
