package comet

import (
	"os"
	"testing"

	"gopush/conf"
	"gopush/internal/routemux"
)

// Every path comet serves over HTTP (WebSocket and stat listeners) is in
// the protocol reference.
func TestEveryRouteIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	c := New(conf.DefaultComet(), nil)
	for name, mux := range map[string]*routemux.Mux{"websocket": c.wsMux(), "stat": c.statMux()} {
		if len(mux.Patterns()) == 0 {
			t.Fatalf("%s mux has no routes", name)
		}
		for _, p := range routemux.Undocumented(doc, mux.Patterns()) {
			t.Errorf("%s route %q is not in docs/protocol.md", name, p)
		}
	}
}
