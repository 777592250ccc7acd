// Package certs holds a daemon's TLS certificate and key, read from two PEM
// files, and serves them to TLS listeners in a way that can be reloaded:
// Reload reads the files again and, when the new pair is good, every
// handshake after it presents the new certificate. Connections already open
// keep the pair they shook hands with. A bad new pair is refused and the old
// one keeps serving.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Error is a problem with one of the two files: the file and what is wrong.
type Error struct {
	File    string
	Problem string
}

func (e *Error) Error() string { return e.File + ": " + e.Problem }

// Pair is a certificate and its key, loaded from CertFile and KeyFile.
type Pair struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
	now               func() time.Time // time.Now; tests move the clock
}

// Load reads and checks the pair. It fails with an *Error naming the file
// when a file is missing or unreadable, holds no PEM certificate or key, the
// key does not belong to the certificate, or the certificate has expired.
func Load(certFile, keyFile string) (*Pair, error) {
	p := &Pair{certFile: certFile, keyFile: keyFile, now: time.Now}
	c, err := p.read()
	if err != nil {
		return nil, err
	}
	p.cur.Store(c)
	return p, nil
}

// Reload reads both files again. On success new handshakes present the new
// certificate; on error (an *Error) nothing changes.
func (p *Pair) Reload() error {
	c, err := p.read()
	if err != nil {
		return err
	}
	p.cur.Store(c)
	return nil
}

// Files returns the certificate and key file names.
func (p *Pair) Files() (cert, key string) { return p.certFile, p.keyFile }

// Leaf returns the certificate currently served.
func (p *Pair) Leaf() *x509.Certificate { return p.cur.Load().Leaf }

func (p *Pair) read() (*tls.Certificate, error) {
	certPEM, err := readFile(p.certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile(p.keyFile)
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, explain(err, p.certFile, p.keyFile)
	}
	if c.Leaf == nil { // filled in by X509KeyPair since Go 1.23
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, &Error{File: p.certFile, Problem: "bad certificate: " + err.Error()}
		}
	}
	now := p.now()
	if now.After(c.Leaf.NotAfter) {
		return nil, &Error{File: p.certFile, Problem: "certificate expired at " + c.Leaf.NotAfter.UTC().Format(time.RFC3339)}
	}
	return &c, nil
}

// readFile reads a file, naming it and the problem in the error.
func readFile(name string) ([]byte, error) {
	if name == "" {
		return nil, &Error{File: `""`, Problem: "no file name"}
	}
	b, err := os.ReadFile(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &Error{File: name, Problem: "no such file"}
	case errors.Is(err, fs.ErrPermission):
		return nil, &Error{File: name, Problem: "not readable (permission denied)"}
	case err != nil:
		return nil, &Error{File: name, Problem: "cannot read: " + err.Error()}
	}
	return b, nil
}

// explain turns an error of tls.X509KeyPair into one naming the file at
// fault.
func explain(err error, certFile, keyFile string) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "failed to find any PEM data in certificate"),
		strings.Contains(msg, "failed to find certificate PEM data"):
		return &Error{File: certFile, Problem: "no PEM certificate in it"}
	case strings.Contains(msg, "failed to find any PEM data in key"),
		strings.Contains(msg, "failed to find PEM block with type ending in \"PRIVATE KEY\""):
		return &Error{File: keyFile, Problem: "no PEM private key in it"}
	case strings.Contains(msg, "found a certificate rather than a key"):
		return &Error{File: keyFile, Problem: "holds a certificate, not a PEM private key"}
	case strings.Contains(msg, "does not match"):
		return &Error{File: keyFile, Problem: "private key does not match the certificate in " + certFile}
	case strings.Contains(msg, "failed to parse private key"), strings.Contains(msg, "unknown private key"):
		return &Error{File: keyFile, Problem: "bad private key: " + msg}
	}
	return &Error{File: certFile, Problem: msg}
}

// ServerConfig returns a TLS configuration that presents the pair current
// at each handshake. nextProtos is the ALPN list ("http/1.1" for a
// WebSocket or HTTP/1 server; nil for raw TCP).
func (p *Pair) ServerConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return p.cur.Load(), nil
		},
	}
}

// Listener wraps ln (a plain listener, or one that already limits
// connections) so that every accepted connection speaks TLS with the pair.
// The handshake runs on the connection's first read or write, or when the
// server calls Handshake; its deadline is the server's, as for a slow
// plain-text client.
func (p *Pair) Listener(ln net.Listener, nextProtos ...string) net.Listener {
	return tls.NewListener(ln, p.ServerConfig(nextProtos...))
}

// String describes the pair for logs.
func (p *Pair) String() string {
	leaf := p.Leaf()
	return fmt.Sprintf("%s (subject %q, expires %s)", p.certFile, leaf.Subject.String(), leaf.NotAfter.UTC().Format(time.RFC3339))
}
