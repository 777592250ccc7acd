package web

import (
	"testing"

	"gopush/conf"
	"gopush/internal/routemux"
)

// Every path web serves, public and admin, is in the protocol reference.
func TestEveryRouteIsDocumented(t *testing.T) {
	w := New(conf.DefaultWeb(), nil)
	routemux.CheckDocumented(t, "../docs/protocol.md", map[string]*routemux.Mux{"public": w.publicMux(), "admin": w.adminMux()})
}
