package membership

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the package starts has an owner that stops it: after all
// tests have closed what they opened, none may be left.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
