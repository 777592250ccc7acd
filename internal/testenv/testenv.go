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
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
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

// FreeAddr returns a loopback address whose port was free a moment ago, for
// a daemon that a test starts in another process.
//
// The port is drawn at random below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range, usually from 32768): a port from
// that range could be taken by any outgoing connection between this check
// and the daemon's bind, which made tests fail now and then with "address
// already in use". A port is never handed out twice by one test process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 1000 {
		port := freePortLow + mrand.IntN(freePortHigh-freePortLow)
		if !claimPort(port) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	t.Fatal("no free loopback port found below the ephemeral range")
	return ""
}

// The range FreeAddr draws from: below the usual ephemeral range and apart
// from scripts/services.sh's 20000–32000 (a listening service would be seen
// as taken anyway).
const (
	freePortLow  = 10000
	freePortHigh = 20000
)

var (
	portsMu     sync.Mutex
	portsHanded = map[int]bool{}
)

// claimPort records port as handed out; false if it already was.
func claimPort(port int) bool {
	portsMu.Lock()
	defer portsMu.Unlock()
	if portsHanded[port] {
		return false
	}
	portsHanded[port] = true
	return true
}
