package message

import (
	"testing"

	"go.uber.org/goleak"
)

// Storage cleaners, pools, the RPC server and the ZooKeeper session all
// stop on Close: after every test has closed what it opened, no goroutine
// may be left.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
