package certs_test

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopush/internal/certs"
	"gopush/internal/certs/certtest"
)

// Every bad pair is refused with an *Error that names the file at fault.
func TestLoadRefusesBadPairs(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	good := ca.Issue(t, "good", certtest.Options{})
	other := ca.Issue(t, "other", certtest.Options{})
	expired := ca.Issue(t, "expired", certtest.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert := write("cert.pem", good.CertPEM, 0o644)
	key := write("key.pem", good.KeyPEM, 0o600)
	otherKey := write("other-key.pem", other.KeyPEM, 0o600)
	expCert := write("expired.pem", expired.CertPEM, 0o644)
	expKey := write("expired-key.pem", expired.KeyPEM, 0o600)
	garbage := write("garbage.pem", []byte("hello\n"), 0o644)
	unreadable := write("unreadable.pem", good.CertPEM, 0o000)

	for _, c := range []struct {
		name, cert, key, file, problem string
	}{
		{"missing cert", filepath.Join(dir, "nope.pem"), key, "nope.pem", "no such file"},
		{"missing key", cert, filepath.Join(dir, "nokey.pem"), "nokey.pem", "no such file"},
		{"mismatched", cert, otherKey, "other-key.pem", "does not match"},
		{"expired", expCert, expKey, "expired.pem", "expired"},
		{"not PEM cert", garbage, key, "garbage.pem", "no PEM certificate"},
		{"not PEM key", cert, garbage, "garbage.pem", "no PEM private key"},
		{"unreadable", unreadable, key, "unreadable.pem", "not readable"},
	} {
		if c.name == "unreadable" && os.Geteuid() == 0 {
			continue // root reads anything
		}
		_, err := certs.Load(c.cert, c.key)
		var ce *certs.Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v, want a *certs.Error", c.name, err)
			continue
		}
		if !strings.HasSuffix(ce.File, c.file) || !strings.Contains(ce.Problem, c.problem) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %q, want one line naming %s and %q", c.name, err, c.file, c.problem)
		}
	}
	if _, err := certs.Load(cert, key); err != nil {
		t.Fatalf("good pair: %v", err)
	}
}

// After Reload new handshakes get the new certificate, a connection made
// before keeps working, and a bad pair leaves the old one serving.
func TestReloadSwapsForNewHandshakesOnly(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	first := ca.Issue(t, "first", certtest.Options{})
	cert, key := first.Write(t, dir)
	p, err := certs.Load(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := p.Listener(ln)
	defer tln.Close()
	go func() { // echo server
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 16)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	dial := func() (*tls.Conn, string) {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		return c, c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	old, cn := dial()
	defer old.Close()
	if cn != "first" {
		t.Fatalf("served %q, want first", cn)
	}

	second := ca.Issue(t, "second", certtest.Options{})
	second.Write(t, dir)
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	c2, cn := dial()
	c2.Close()
	if cn != "second" {
		t.Fatalf("after reload served %q, want second", cn)
	}
	if _, err := old.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := old.Read(buf); err != nil || buf[0] != 'x' {
		t.Fatalf("connection from before the reload: %v", err)
	}

	// A mismatched pair: refused, the second keeps serving.
	third := ca.Issue(t, "third", certtest.Options{})
	if err := os.WriteFile(key, third.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("reload of a mismatched pair: %v", err)
	}
	c3, cn := dial()
	c3.Close()
	if cn != "second" {
		t.Fatalf("after a refused reload served %q, want second", cn)
	}
}
