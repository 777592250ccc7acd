package web

import (
	_ "embed"
	"encoding/json"
	"net/http"

	"gopush/internal/routemux"
)

// dashboardPage is the cluster dashboard: one HTML file with its script and
// style inline, embedded in the binary (no build step, nothing fetched from
// another site).
//
//go:embed dashboard/index.html
var dashboardPage []byte

// handleDashboard adds the dashboard to the admin mux: the page at /admin/
// and the JSON it polls at /admin/cluster.json. Being on the admin mux,
// they sit behind whatever guards the admin API.
func (w *Web) handleDashboard(mux *routemux.Mux) {
	mux.HandleFunc("GET /admin", func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, "/admin/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /admin/{$}", func(rw http.ResponseWriter, r *http.Request) {
		h := rw.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
		h.Set("X-Content-Type-Options", "nosniff")
		rw.Write(dashboardPage)
	})
	mux.HandleFunc("GET /admin/cluster.json", func(rw http.ResponseWriter, r *http.Request) {
		b, err := json.Marshal(w.dash.snapshot())
		if err != nil {
			w.log.Error("marshal the cluster view", "err", err)
			http.Error(rw, "internal error", http.StatusInternalServerError)
			return
		}
		h := rw.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		rw.Write(b)
	})
}
