package routemux

import (
	"net/http"
	"slices"
	"testing"
)

func TestPatternsAndUndocumented(t *testing.T) {
	m := New()
	nop := func(http.ResponseWriter, *http.Request) {}
	m.HandleFunc("/1/server/get", nop)
	m.HandleFunc("/server/get", nop)
	m.HandleFunc("GET /metrics", nop)
	m.Handle("/admin/", http.HandlerFunc(nop))
	if got := m.Patterns(); !slices.Equal(got, []string{"/1/server/get", "/server/get", "GET /metrics", "/admin/"}) {
		t.Fatalf("patterns %v", got)
	}
	doc := []byte("| `GET /1/server/get` | ... |\nscrape `/metrics`.\n")
	if got := Undocumented(doc, m.Patterns()); !slices.Equal(got, []string{"/server/get", "/admin/"}) {
		t.Fatalf("undocumented %v, want /server/get (only inside /1/server/get) and /admin/", got)
	}
}
