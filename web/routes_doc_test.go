package web

import (
	"os"
	"testing"

	"gopush/conf"
	"gopush/internal/routemux"
)

// Every path web serves, public and admin, is in the protocol reference.
func TestEveryRouteIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	w := New(conf.DefaultWeb(), nil)
	for name, mux := range map[string]*routemux.Mux{"public": w.publicMux(), "admin": w.adminMux()} {
		if len(mux.Patterns()) == 0 {
			t.Fatalf("%s mux has no routes", name)
		}
		for _, p := range routemux.Undocumented(doc, mux.Patterns()) {
			t.Errorf("%s route %q is not in docs/protocol.md", name, p)
		}
	}
}
