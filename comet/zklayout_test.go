package comet

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"gopush/internal/testenv"
)

// TestZooKeeperLayout checks comet's part of docs/protocol.md §5 as a 1.0.5 web reads
// it: <comet.path> and <comet.path>/<node> are persistent, the instance is
// an ephemeral sequential child whose JSON has exactly the fields rpc, tcp,
// ws (lists of strings) and weight (a number).
func TestZooKeeperLayout(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.ZooKeeper.Comet.Weight = 3
	c := startComet(t, cfg)
	zc := testenv.ZKConn(t)

	for _, p := range []string{cfg.ZooKeeper.Comet.Path, cfg.ZooKeeper.Comet.Path + "/node1"} {
		_, stat, err := zc.Get(p)
		if err != nil || stat.EphemeralOwner != 0 {
			t.Fatalf("%s: %v, ephemeral owner %v; want a persistent node", p, err, stat)
		}
	}
	nodePath := cfg.ZooKeeper.Comet.Path + "/node1"
	kids := children(t, zc, nodePath)
	if len(kids) != 1 {
		t.Fatalf("children of %s: %v, want one instance", nodePath, kids)
	}
	// A sequential child: the name ends in ZooKeeper's 10-digit counter.
	if name := kids[0]; len(name) < 10 || strings.Trim(name[len(name)-10:], "0123456789") != "" {
		t.Errorf("instance %q is not a sequential node", name)
	}
	raw, stat, err := zc.Get(nodePath + "/" + kids[0])
	if err != nil || stat.EphemeralOwner == 0 {
		t.Fatalf("instance: %v, ephemeral owner %v; want an ephemeral node", err, stat)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("instance data %q: %v", raw, err)
	}
	if got := slices.Sorted(maps.Keys(fields)); !slices.Equal(got, []string{"rpc", "tcp", "weight", "ws"}) {
		t.Fatalf("instance data %s has fields %v, want rpc, tcp, ws, weight", raw, got)
	}
	if string(fields["weight"]) != "3" {
		t.Errorf("weight %s, want 3", fields["weight"])
	}
	for name, want := range map[string][]string{"rpc": c.RPCAddrs(), "tcp": c.TCPAddrs(), "ws": c.WSAddrs()} {
		var got []string
		if err := json.Unmarshal(fields[name], &got); err != nil || !slices.Equal(got, want) {
			t.Errorf("%s = %s, want %q", name, fields[name], want)
		}
	}
}
