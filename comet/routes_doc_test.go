package comet

import (
	"testing"

	"gopush/conf"
	"gopush/internal/routemux"
)

// Every path comet serves over HTTP (WebSocket and stat listeners) is in
// the protocol reference.
func TestEveryRouteIsDocumented(t *testing.T) {
	c := New(conf.DefaultComet(), nil)
	routemux.CheckDocumented(t, "../docs/protocol.md", map[string]*routemux.Mux{"websocket": c.wsMux(), "stat": c.statMux()})
}
