package comet

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test closes the comets it starts; none may leave a goroutine
// behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
