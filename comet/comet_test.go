package comet

import "testing"

func TestAdvertisedAddresses(t *testing.T) {
	got := advertise(nil, []string{"localhost:0", "example.com:6969"}, []string{"127.0.0.1:5555", "0.0.0.0:6969"})
	if len(got) != 2 || got[0] != "localhost:5555" || got[1] != "example.com:6969" {
		t.Fatalf("got %v", got)
	}
	// A protocol turned off by channel.proto has no listener: nothing is
	// published for it, whatever its bind says.
	if got := advertise(nil, []string{"localhost:6969"}, nil); got == nil || len(got) != 0 {
		t.Fatalf("got %#v, want an empty list", got)
	}
}
