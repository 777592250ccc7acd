package message

import (
	"testing"

	"gopush/internal/testenv"
)

// TestKeysAreCaseSensitive: keys that differ only in case are different
// subscribers (SPEC §7: on Redis the set is named by the key itself), so
// neither storage type may hand one key's offline messages to the other.
func TestKeysAreCaseSensitive(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cfg := b.cfg(t, 20)
			c := serve(t, cfg, openStorage(t, cfg))
			u := testenv.Unique(t)
			key, lower := "Case-"+u, "case-"+u
			base := baseMid()
			c.mustSave(key, base+1, msgN(1), 600)
			if got := c.mustGet(lower, 0); len(got) != 0 {
				t.Fatalf("messages of %q returned for %q: mids %v", key, lower, mids(got))
			}
			c.mustSave(lower, base+2, msgN(2), 600)
			if got := c.mustGet(key, 0); !sameMids(got, base+1) {
				t.Fatalf("get %q: mids %v, want only its own %d", key, mids(got), base+1)
			}
			if err := c.del(lower); err != nil {
				t.Fatal(err)
			}
			if got := c.mustGet(key, 0); !sameMids(got, base+1) {
				t.Fatalf("deleting %q removed messages of %q: mids %v", lower, key, mids(got))
			}
		})
	}
}
