package e2e

import (
	"net"
	"strings"
	"testing"
	"time"

	"gopush/internal/testenv"
)

// TestWebBinaryConfigErrorAndSignal checks cmd/web's contract: a bad
// configuration is one line on stderr and exit status 2; SIGTERM stops a
// running web with status 0 and closes its ports.
func TestWebBinaryConfigErrorAndSignal(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	bad := testenv.StartDaemon(t, testenv.Binary(t, "web"), `http.bind = ["127.0.0.1:notaport"]`)
	if code := bad.Wait(); code != 2 {
		t.Fatalf("bad config: exit %d, want 2; log:\n%s", code, bad.Log())
	}
	if log := strings.TrimSpace(bad.Log()); strings.Count(log, "\n") != 0 || !strings.Contains(log, "http.bind") {
		t.Fatalf("bad config: want one line naming http.bind, got:\n%s", log)
	}

	w := c.StartWeb()
	if code := w.Stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0; log:\n%s", code, w.Log())
	}
	for _, a := range []string{w.HTTP, w.Admin} {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Fatalf("%s still open after exit", a)
		}
	}
	if !strings.Contains(w.Log(), "web stopped") {
		t.Fatalf("web did not log its shutdown:\n%s", w.Log())
	}
}
