package bench

import (
	"errors"
	"fmt"
	"sort"
)

// Tally is what the pushers expected set against what the subscribers
// received: the correctness of a run. Any loss, duplicate, delivery of a
// push that was not accepted, or frame without a load-tool payload is a
// failure (Err), whatever the speed.
type Tally struct {
	Expected   uint64 `json:"expected"`
	Delivered  uint64 `json:"delivered"`
	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"`
	Unexpected uint64 `json:"unexpected"` // deliveries of pushes web did not accept
	NotPayload uint64 `json:"not_payload"`
	// FailedButDelivered counts deliveries to keys that web's answer
	// listed as failed (fk): the caller was told the push did not reach
	// them, so a retry would reach them twice. It happens when web's call
	// to comet times out after comet delivered.
	FailedButDelivered uint64 `json:"failed_but_delivered"`
	// LastDelivery is, per push, its slowest delivery (after the push call
	// started).
	LastDelivery Histogram `json:"-"`
	// FanoutPerSec is, per push with at least one delivery, the deliveries
	// it expected divided by the time its last one took: how fast one push
	// reaches all of its connections. Sorted ascending.
	FanoutPerSec []float64 `json:"-"`
}

// Count compares what pr expected with what snap saw.
func Count(pr *PushResult, snap *Snapshot) Tally {
	t := Tally{Expected: pr.ExpectedN, Delivered: snap.Delivered, NotPayload: snap.Bad}
	for seq, exp := range pr.Expected {
		st := snap.Seqs[seq]
		var got uint32
		if st != nil {
			got = st.N
			t.LastDelivery.RecordUs(st.MaxUs)
			if exp > 0 && st.MaxUs > 0 {
				t.FanoutPerSec = append(t.FanoutPerSec, float64(exp)/(float64(st.MaxUs)/1e6))
			}
		}
		if got < exp {
			t.Lost += uint64(exp - got)
		} else {
			extra := got - exp
			fk := min(extra, pr.Unconfirmed[seq])
			t.FailedButDelivered += uint64(fk)
			t.Duplicated += uint64(extra - fk)
		}
	}
	for seq, st := range snap.Seqs {
		if _, ok := pr.Expected[seq]; !ok {
			t.Unexpected += uint64(st.N)
		}
	}
	sort.Float64s(t.FanoutPerSec)
	return t
}

// FanoutP50 is the median of FanoutPerSec (0 without pushes).
func (t *Tally) FanoutP50() float64 {
	if len(t.FanoutPerSec) == 0 {
		return 0
	}
	return t.FanoutPerSec[len(t.FanoutPerSec)/2]
}

// Err says what went wrong, or nil when every accepted push reached every
// connection it should have exactly once and nothing else arrived.
func (t *Tally) Err() error {
	var errs []error
	if t.Lost > 0 {
		errs = append(errs, fmt.Errorf("%d deliveries lost", t.Lost))
	}
	if t.Duplicated > 0 {
		errs = append(errs, fmt.Errorf("%d deliveries duplicated", t.Duplicated))
	}
	if t.Unexpected > 0 {
		errs = append(errs, fmt.Errorf("%d deliveries of pushes that were not accepted", t.Unexpected))
	}
	if t.FailedButDelivered > 0 {
		errs = append(errs, fmt.Errorf("%d deliveries to keys the answer listed as failed (fk)", t.FailedButDelivered))
	}
	if t.NotPayload > 0 {
		errs = append(errs, fmt.Errorf("%d frames without a load-tool payload", t.NotPayload))
	}
	return errors.Join(errs...)
}
