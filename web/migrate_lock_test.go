package web

import (
	"context"
	"encoding/json"
	"errors"
	"gopush/api"
	"gopush/gobrpc"
	"gopush/membership"
	"sync"
	"testing"

	"github.com/go-zookeeper/zk"
)

// lockWatchComet is a fake comet that, when web calls Migrate, records what
// the migrate lock of docs/protocol.md §5 holds at that moment.
type lockWatchComet struct {
	*fakeComet
	zc       *zk.Conn
	lockPath string

	mu    sync.Mutex
	seen  []string // lock data seen during each Migrate ("" : no lock)
	owner []int64  // its ephemeral owner
}

func (c *lockWatchComet) Migrate(a *api.CometMigrateArgs, r *int) error {
	data, stat, err := c.zc.Get(c.lockPath)
	c.mu.Lock()
	if err != nil {
		c.seen = append(c.seen, "")
		c.owner = append(c.owner, 0)
	} else {
		c.seen = append(c.seen, string(data))
		c.owner = append(c.owner, stat.EphemeralOwner)
	}
	c.mu.Unlock()
	return c.fakeComet.Migrate(a, r)
}

// TestMigrateLockLayout checks docs/protocol.md §5: while web notifies a migration the
// lock <migrate.path> exists, is ephemeral and holds "1"; afterwards it is
// gone.
func TestMigrateLockLayout(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t)
	fc := &lockWatchComet{fakeComet: &fakeComet{}, zc: c.zc, lockPath: c.lockPath}
	srv, err := gobrpc.Serve(api.CometService, fc, []string{"127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	data, _ := json.Marshal(api.CometNodeData{RPC: srv.Addrs(), TCP: []string{"t:1"}, WS: []string{"w:1"}, Weight: 2})
	reg, err := membership.Register(context.Background(), c.z, c.cometPath+"/node-a", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })

	c.startWeb(nil)
	waitFor(t, "a Migrate call", func() bool { return fc.lastMigrate() != nil })
	if m := fc.lastMigrate(); len(m) != 1 || m["node-a"] != 2 {
		t.Fatalf("Migrate sent %v, want node-a:2", m)
	}
	fc.mu.Lock()
	seen, owner := fc.seen[0], fc.owner[0]
	fc.mu.Unlock()
	if seen != "1" || owner == 0 {
		t.Fatalf("during Migrate the lock %s held %q with ephemeral owner %d, want an ephemeral node holding \"1\"", c.lockPath, seen, owner)
	}
	waitFor(t, "the lock to be released", func() bool {
		ok, _, err := c.zc.Exists(c.lockPath)
		return err == nil && !ok
	})
	// The persistent node of the comet stays; only its child is ephemeral.
	_, stat, err := c.zc.Get(c.cometPath + "/node-a")
	if err != nil || stat.EphemeralOwner != 0 {
		t.Fatalf("%s/node-a: %v, ephemeral owner %v; want a persistent node", c.cometPath, err, stat)
	}
	if _, _, err := c.zc.Get(c.lockPath); !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("lock after the migration: %v, want no node", err)
	}
}
