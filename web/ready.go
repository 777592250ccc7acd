package web

import (
	"context"
	"fmt"

	"gopush/internal/observe"
)

// zkObs is what the ZooKeeper metrics and readiness check read. web
// registers no node of its own.
func (w *Web) zkObs() observe.ZooKeeper { return observe.ZooKeeper{Conn: w.zkConn} }

// ready is web's /readyz: the ZooKeeper session is up and at least one
// comet serves on the ring (without one every push and server/get fails).
func (w *Web) ready(context.Context) []observe.Check {
	checks := []observe.Check{w.zkObs().Check()}
	v := w.cluster.load()
	c := observe.Check{Name: "comets"}
	var serving []string
	for name, n := range v.nodes {
		if n.rpc != nil {
			serving = append(serving, name)
		}
	}
	switch {
	case len(v.weights) == 0:
		c.Detail = "no comet node on the ring"
	case len(serving) == 0:
		c.Detail = fmt.Sprintf("%d comet nodes on the ring, none with a serving instance", len(v.weights))
	default:
		c.OK = true
		c.Detail = fmt.Sprintf("%d of %d ring nodes serving", len(serving), len(v.weights))
	}
	return append(checks, c)
}
