// Package testenv gives tests the private services that scripts/services.sh
// starts for `make test`, and helpers to start more of their own.
//
// The addresses come from the environment:
//
//	GOPUSH_TEST_ZK     host:port of a private ZooKeeper
//	GOPUSH_TEST_REDIS  host:port of a private Redis
//	GOPUSH_TEST_MYSQL  DSN of a private MariaDB user that may create databases
//	                   (user:pass@tcp(host:port)/)
//
// When a variable is missing the test fails (it does not skip), so a broken
// service never hides behind a green run.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
)

func need(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: %s is needed; run the tests with `make test`, which starts it", name, what)
	}
	return v
}

// ZK returns the address of the shared private ZooKeeper.
func ZK(t testing.TB) string { return need(t, "GOPUSH_TEST_ZK", "ZooKeeper") }

// Redis returns the address (host:port) of the shared private Redis.
func Redis(t testing.TB) string { return need(t, "GOPUSH_TEST_REDIS", "Redis") }

// MySQLRoot returns the DSN (without a database) of the shared MariaDB.
func MySQLRoot(t testing.TB) string { return need(t, "GOPUSH_TEST_MYSQL", "MariaDB") }

// Unique returns a name that no other test (or test run) uses: the test's
// name made safe, plus random hex.
func Unique(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := nonWord.ReplaceAllString(t.Name(), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	return strings.ToLower(name) + "_" + hex.EncodeToString(b[:])
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]+`)

// ZKRoot returns a fresh ZooKeeper path prefix for one test, like
// "/gopush-test/<unique>". Paths under it belong to that test alone.
func ZKRoot(t testing.TB) string { return "/gopush-test-" + Unique(t) }

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
