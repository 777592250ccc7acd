package testenv

import (
	"strings"
	"testing"

	"gopush/conf"
)

// CometTLS is an edit for StartComet: the comet also serves TCP and
// WebSocket over TLS on fresh ports (CometNode.TCPTLS, WSS) with the pair
// certFile/keyFile.
func CometTLS(t testing.TB, certFile, keyFile string) func(*conf.Comet) {
	return func(c *conf.Comet) {
		c.TCP.TLS.Bind = conf.AddrList{FreeAddr(t)}
		c.WebSocket.TLS.Bind = conf.AddrList{FreeAddr(t)}
		c.TLS = conf.TLSFiles{Cert: certFile, Key: keyFile}
	}
}

// WebTLS is an edit for StartWeb: web also serves its public API over
// HTTPS on a fresh port (WebNode.HTTPS) with the pair certFile/keyFile.
func WebTLS(t testing.TB, certFile, keyFile string) func(*conf.Web) {
	return func(w *conf.Web) {
		w.HTTP.TLS.Bind = conf.AddrList{FreeAddr(t)}
		w.TLS = conf.TLSFiles{Cert: certFile, Key: keyFile}
	}
}

// ReplaceAll replaces each key of pairs (in the order given, from, to,
// from, to, ...) in s, failing the test when one is not there: a shipped
// file that changed must fail its test rather than be tested unchanged.
func ReplaceAll(t testing.TB, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("the file no longer contains %q; update the test", pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}
