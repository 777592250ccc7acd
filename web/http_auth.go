package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"gopush/api"
	"gopush/internal/connlimit"
)

// adminHandler is the admin port's handler: every path, routed or not, is
// behind the admin token.
func (w *Web) adminHandler() http.Handler { return w.requireAdminToken(w.adminMux()) }

// publicHandler is the public port's handler: connections over the
// per-address limits get 429 before any route runs.
func (w *Web) publicHandler() http.Handler { return refuseOverLimit(w.publicMux()) }

// requireAdminToken lets a request through to h only when it carries
// "Authorization: Bearer <admin.token>"; any other request (no header,
// another scheme, a wrong token, a token in the query string) gets 401 and
// a JSON body, and h never runs. Without admin.token every request goes
// through, as in 1.0.5.
func (w *Web) requireAdminToken(h http.Handler) http.Handler {
	if w.cfg.Admin.Token == "" {
		return h
	}
	want := sha256.Sum256([]byte(w.cfg.Admin.Token))
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !bearerMatches(r.Header.Get("Authorization"), want) {
			w.adminDenied.Add(1)
			w.log.Warn("admin request refused: missing or wrong bearer token", "path", r.URL.Path, "peer", r.RemoteAddr)
			rw.Header().Set("WWW-Authenticate", `Bearer realm="gopush-admin"`)
			writeReply(rw, w.log, http.StatusUnauthorized, "", api.Reply{Ret: api.CodeUnauthorized})
			return
		}
		h.ServeHTTP(rw, r)
	})
}

// bearerMatches reports whether an Authorization header value is "Bearer "
// (scheme in any case, RFC 7235) followed by exactly the token whose
// SHA-256 is want. The comparison takes the same time whatever the token
// sent: both sides are hashed to 32 bytes first, then compared in constant
// time.
func bearerMatches(header string, want [sha256.Size]byte) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// refuseOverLimit answers 429 to requests on connections the public
// listener marked as over the per-address limits, before any work, and
// closes the connection.
func refuseOverLimit(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if connlimit.Refusal(r.Context()) != nil {
			rw.Header().Set("Connection", "close")
			rw.Header().Set("Retry-After", "1")
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(http.StatusTooManyRequests)
			rw.Write([]byte(`{"ret":1004}`))
			return
		}
		h.ServeHTTP(rw, r)
	})
}
