package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"

	"github.com/go-zookeeper/zk"

	"gopush/membership"
)

// pruneVotes is how several webs agree before one prunes a comet node
// (docs/reliability.md "Pruning rule"). Each live web keeps an ephemeral
// sequential child under <prune.path>/webs; a web that has seen a node fail
// prune.failures rounds in a row records its view as the ephemeral
// <prune.path>/votes/<node>/<its web child>. A node is pruned only when
// more than half of the live webs have voted against it. A web that dies
// takes its registration and its votes with it, so a lone web decides
// alone, as before.
type pruneVotes struct {
	zk   *membership.ZK
	path string
	reg  *membership.Registration
	log  *slog.Logger
}

// newPruneVotes registers this web under <prunePath>/webs.
func newPruneVotes(ctx context.Context, z *membership.ZK, prunePath string, log *slog.Logger) (*pruneVotes, error) {
	reg, err := membership.Register(ctx, z, prunePath+"/webs", nil, log)
	if err != nil {
		return nil, fmt.Errorf("register web under %s/webs: %w", prunePath, err)
	}
	return &pruneVotes{zk: z, path: prunePath, reg: reg, log: log}, nil
}

func (v *pruneVotes) self() string { return path.Base(v.reg.Path()) }

func (v *pruneVotes) nodePath(node string) string { return v.path + "/votes/" + node }

// agree records this web's vote against node and reports whether a
// majority of the live webs has voted so, with the counts for the log.
func (v *pruneVotes) agree(node string) (ok bool, votes, live int, err error) {
	conn := v.zk.Conn()
	dir := v.nodePath(node)
	if err := membership.EnsurePath(conn, dir); err != nil {
		return false, 0, 0, err
	}
	self := v.self()
	_, err = conn.Create(dir+"/"+self, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return false, 0, 0, err
	}
	webs, _, err := conn.Children(v.path + "/webs")
	if err != nil {
		return false, 0, 0, err
	}
	voters, _, err := conn.Children(dir)
	if err != nil {
		return false, 0, 0, err
	}
	live = len(webs)
	if !slices.Contains(webs, self) {
		live++ // our registration is being made again: we still count
	}
	for _, w := range voters {
		if w == self || slices.Contains(webs, w) {
			votes++
		}
	}
	return 2*votes > live, votes, live, nil
}

// withdraw removes this web's vote against node, if any.
func (v *pruneVotes) withdraw(node string) {
	err := v.zk.Conn().Delete(v.nodePath(node)+"/"+v.self(), -1)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		v.log.Debug("prune: withdraw vote", "node", node, "err", err)
	}
}

// clear deletes every vote on node and its directory, after a prune.
func (v *pruneVotes) clear(node string) {
	conn := v.zk.Conn()
	dir := v.nodePath(node)
	voters, _, err := conn.Children(dir)
	if err != nil {
		return
	}
	for _, w := range voters {
		conn.Delete(dir+"/"+w, -1)
	}
	conn.Delete(dir, -1)
}

// Close deletes this web's registration (and with the session, its votes).
func (v *pruneVotes) Close() error { return v.reg.Close() }
