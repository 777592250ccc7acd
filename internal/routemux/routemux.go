// Package routemux is an http.ServeMux that remembers the patterns it was
// given, so that a test can check every route a daemon serves against the
// protocol reference (docs/protocol.md).
package routemux

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Mux is an http.ServeMux that records its patterns.
type Mux struct {
	*http.ServeMux
	patterns []string
}

// New returns an empty Mux.
func New() *Mux { return &Mux{ServeMux: http.NewServeMux()} }

// Handle registers h for pattern, as http.ServeMux.Handle does.
func (m *Mux) Handle(pattern string, h http.Handler) {
	m.ServeMux.Handle(pattern, h)
	m.patterns = append(m.patterns, pattern)
}

// HandleFunc registers f for pattern, as http.ServeMux.HandleFunc does.
func (m *Mux) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(f))
}

// Patterns returns the registered patterns in the order they were given.
func (m *Mux) Patterns() []string { return slices.Clone(m.patterns) }

// Undocumented returns the patterns whose path does not appear in doc as a
// whole path (so "/server/get" is not found inside "/1/server/get"). A
// pattern's method ("GET /x") and host are ignored.
func Undocumented(doc []byte, patterns []string) []string {
	var out []string
	for _, p := range patterns {
		path := p
		if i := strings.IndexByte(path, ' '); i >= 0 {
			path = path[i+1:]
		}
		if i := strings.IndexByte(path, '/'); i > 0 {
			path = path[i:] // drop a host
		}
		re := regexp.MustCompile(`(^|[^\w/.-])` + regexp.QuoteMeta(path) + `($|[^\w/-])`)
		if !re.Match(doc) {
			out = append(out, p)
		}
	}
	return out
}

// CheckDocumented fails t for every route of muxes (named for the message)
// whose path is not in the file doc, and for a mux without routes.
func CheckDocumented(t testing.TB, doc string, muxes map[string]*Mux) {
	t.Helper()
	text, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for name, mux := range muxes {
		if len(mux.Patterns()) == 0 {
			t.Errorf("%s mux has no routes", name)
		}
		for _, p := range Undocumented(text, mux.Patterns()) {
			t.Errorf("%s route %q is not in %s", name, p, doc)
		}
	}
}
