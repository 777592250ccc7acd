package message

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopush/api"
	"gopush/internal/testenv"
)

// A save whose caller's deadline has passed when it arrives (a call held
// up by a broken network and delivered late) stores nothing and says why;
// one inside its deadline, and one without (a 1.0.5 caller), is stored.
func TestSaveAfterCallerDeadlineStoresNothing(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cfg := b.cfg(t, 20)
			c := serve(t, cfg, openStorage(t, cfg))
			key := testenv.Unique(t)
			base := baseMid()
			late := time.Now().Add(-time.Second).UnixNano()
			soon := time.Now().Add(time.Minute).UnixNano()
			var reply int
			err := c.call(api.MessageSavePrivate, &api.MessageSavePrivateArgs{
				Key: key, Msg: json.RawMessage(`1`), MsgId: base + 1, Expire: 600, Deadline: late}, &reply)
			if err == nil || !strings.Contains(err.Error(), "deadline passed") {
				t.Errorf("SavePrivate past its deadline: %v, want deadline passed", err)
			}
			var resp api.MessageSavePrivatesResp
			err = c.call(api.MessageSavePrivatesEach, &api.MessageSavePrivatesEachArgs{
				Keys: []string{key}, MsgIds: []int64{base + 2}, Msg: json.RawMessage(`2`), Expire: 600, Deadline: late}, &resp)
			if err == nil || !strings.Contains(err.Error(), "deadline passed") {
				t.Errorf("SavePrivatesEach past its deadline: %v, want deadline passed", err)
			}
			if err := c.call(api.MessageSavePrivate, &api.MessageSavePrivateArgs{
				Key: key, Msg: json.RawMessage(`3`), MsgId: base + 3, Expire: 600, Deadline: soon}, &reply); err != nil {
				t.Fatalf("SavePrivate inside its deadline: %v", err)
			}
			c.mustSave(key, base+4, `4`, 600) // no deadline
			if got := c.mustGet(key, 0); !sameMids(got, base+3, base+4) {
				t.Errorf("stored mids %v, want only base+3 and base+4", mids(got))
			}
		})
	}
}
