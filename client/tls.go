package client

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
)

// RootCAs returns a TLS configuration for Config.TLS that trusts only the
// authorities in the PEM file caFile.
func RootCAs(caFile string) (*tls.Config, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("client: root CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("client: root CA %s: no PEM certificate in it", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// tlsFor returns cfg for a connection to addr (host:port): the host is
// the name checked against comet's certificate unless cfg names one.
func tlsFor(cfg *tls.Config, addr string) *tls.Config {
	if cfg.ServerName != "" {
		return cfg
	}
	c := cfg.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		c.ServerName = host
	} else {
		c.ServerName = addr
	}
	return c
}
