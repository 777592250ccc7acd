package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// SplitSaveBatch keeps small batches whole and cuts large ones into runs
// of at most SaveBatchBytes message bytes, in order, nothing lost.
func TestSplitSaveBatch(t *testing.T) {
	small := []MessageSaveEntry{{Key: "a", Msg: json.RawMessage(`1`)}, {Key: "b", Msg: json.RawMessage(`2`)}}
	if runs := SplitSaveBatch(small); len(runs) != 1 || len(runs[0]) != 2 {
		t.Fatalf("small batch cut into %v", runs)
	}
	if runs := SplitSaveBatch(nil); len(runs) != 0 {
		t.Fatalf("empty batch: %v", runs)
	}
	msg := json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`) // 1 MiB + 2
	big := json.RawMessage(`"` + strings.Repeat("y", SaveBatchBytes+10) + `"`)
	var es []MessageSaveEntry
	for range 9 {
		es = append(es, MessageSaveEntry{Key: "k", Msg: msg})
	}
	es = append(es, MessageSaveEntry{Key: "big", Msg: big}, MessageSaveEntry{Key: "last", Msg: msg})
	runs := SplitSaveBatch(es)
	n := 0
	for _, r := range runs {
		size := 0
		for _, e := range r {
			size += len(e.Msg)
		}
		if size > SaveBatchBytes && len(r) > 1 {
			t.Errorf("run of %d entries holds %d bytes", len(r), size)
		}
		n += len(r)
	}
	// 3 + 3 + 3 one-MiB messages, the big one alone, the last one.
	if n != len(es) || len(runs) != 5 || len(runs[3]) != 1 || runs[3][0].Key != "big" || runs[4][0].Key != "last" {
		t.Errorf("runs of %d entries: %d runs, want 5 in order", n, len(runs))
	}
}
