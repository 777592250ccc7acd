package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopush/internal/certs/certtest"
)

// -ca makes the command ask web for the TLS-TCP address (p=4) and verify
// comet's certificate with that CA; a CA file that holds no certificate is
// bad usage.
func TestTLSFlags(t *testing.T) {
	ca := certtest.NewCA(t, "sub test CA")
	dir := t.TempDir()
	leaf := ca.Issue(t, "comet", certtest.Options{})
	pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for range 11 {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
		}
		msg := `{"msg":{"tls":true},"mid":7,"gid":0}`
		fmt.Fprintf(conn, "+h\r\n$%d\r\n%s\r\n", len(msg), msg)
		io.Copy(io.Discard, conn)
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/1/server/get", func(w http.ResponseWriter, r *http.Request) {
		if p := r.FormValue("p"); p != "4" {
			t.Errorf("asked p=%s, want 4 (TCP over TLS)", p)
		}
		fmt.Fprintf(w, `{"ret":0,"data":{"server":%q}}`, strings.Replace(l.Addr().String(), "127.0.0.1", "localhost", 1))
	})
	mux.HandleFunc("/1/msg/get", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"ret":0}`) })
	web := httptest.NewServer(mux)
	defer web.Close()

	caFile := ca.WriteCA(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"-web", web.URL, "-key", "k", "-ca", caFile, "-n", "1"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := out.String(); got != `{"mid":7,"gid":0,"msg":{"tls":true}}`+"\n" {
		t.Fatalf("printed %q", got)
	}

	if code := run(context.Background(), []string{"-key", "k", "-ca", filepath.Join(dir, "nope.pem")}, &out, &errb); code != 2 {
		t.Fatalf("missing -ca file: exit %d, want 2", code)
	}
}
