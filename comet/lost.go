package comet

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// A comet that has lost the cluster stops pretending (docs/reliability.md,
// "A comet cut off"): it must not keep clients whose keys the webs may have
// given to another comet, or pushes to them are only stored while the
// clients, still connected and answered, never look.
//
//   - Its node was pruned (the persistent <comet.path>/<node> was deleted,
//     seen as gone or created anew): the webs moved its keys. It closes
//     every client connection at once; its registration is made again by
//     membership, and the webs send it the ring when they see it.
//   - Its registration was made again (its session expired, or its
//     instance was deleted): while it had no instance the webs kept the
//     pushes for its keys without delivering them (docs/reliability.md).
//     It closes every client, which reconnect and fetch them.
//   - ZooKeeper has been unreachable for longer than the session timeout
//     plus lost.grace: the session has certainly expired on the servers, so
//     its registration is gone, and the webs prune a node without instance.
//     It closes every client and refuses new subscriptions (as for a key
//     it does not own, so clients ask web again) until its session is back.
type lostWatch struct {
	lost atomic.Bool // refusing subscriptions
}

// lostCheck is how often the watch looks at the session and the node.
const lostCheck = 250 * time.Millisecond

// startLostWatch notes the creation of this comet's node as registration
// left it, then watches in the background until Close.
func (c *Comet) startLostWatch() {
	zkc := c.cfg.ZooKeeper
	var czxid int64
	if ok, st, err := c.zk.Conn().Exists(zkc.Comet.Path + "/" + zkc.Comet.Node); err == nil && ok {
		czxid = st.Czxid
	}
	c.wg.Add(1)
	go c.watchLost(czxid)
}

// watchLost runs until Close. czxid is the creation of our node as last
// seen: -1 when seen gone, 0 when not seen yet.
func (c *Comet) watchLost(czxid int64) {
	defer c.wg.Done()
	zkc := c.cfg.ZooKeeper
	nodePath := zkc.Comet.Path + "/" + zkc.Comet.Node
	limit := zkc.Timeout.D() + c.cfg.Lost.Grace.D()
	var downSince time.Time
	t := time.NewTicker(lostCheck)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		conn := c.zk.Conn()
		if conn.State() != zk.StateHasSession {
			if downSince.IsZero() {
				downSince = time.Now()
			}
			if d := time.Since(downSince); d >= limit && c.lostW.lost.CompareAndSwap(false, true) {
				n := c.closeAll()
				c.log.Warn("zookeeper unreachable past the session timeout and lost.grace: registration lost, clients closed, subscriptions refused until registered again",
					"for", d.Round(time.Millisecond), "closed_connections", n)
			}
			continue
		}
		downSince = time.Time{}
		ok, st, err := conn.Exists(nodePath)
		if err != nil {
			if !errors.Is(err, zk.ErrConnectionClosed) {
				c.log.Debug("lost watch: read own node", "err", err)
			}
			continue
		}
		switch {
		case !ok && czxid > 0, ok && czxid > 0 && st.Czxid != czxid:
			n := c.closeAll()
			c.log.Warn("this comet's node was pruned: its keys went to other comets; clients closed", "node", zkc.Comet.Node, "closed_connections", n)
		}
		if !ok {
			if czxid != 0 {
				czxid = -1
			}
			continue
		}
		czxid = st.Czxid
		if c.registered() && c.lostW.lost.CompareAndSwap(true, false) {
			c.log.Info("registered in zookeeper again; accepting subscriptions")
		}
	}
}

// unregistered is called by membership when this comet's registration is
// found gone, just before it is made again: while it was missing the webs
// kept the pushes for our keys without delivering them, so the clients are
// closed (they reconnect and fetch them) before any web can route a push
// to them again — a push delivered to a stale connection first would move
// its client's last mid past the kept messages.
func (c *Comet) unregistered() {
	n := c.closeAll()
	c.log.Warn("registration lost: pushes meanwhile were only stored; clients closed so that they fetch them", "closed_connections", n)
}

// registered reports whether this instance's registration child exists in
// the current session.
func (c *Comet) registered() bool {
	ok, st, err := c.zk.Conn().Exists(c.reg.Path())
	return err == nil && ok && st.EphemeralOwner == c.zk.SessionID()
}

// closeAll closes every subscribed connection and returns how many.
func (c *Comet) closeAll() int {
	all := c.hub.connsWhere(func(string) bool { return true })
	for _, cn := range all {
		cn.close()
	}
	return len(all)
}

// leaveRing deletes this comet's node on a clean stop when no other
// instance (a standby) is registered under it: a comet stopped on purpose
// leaves the ring at once and the webs move its keys now, rather than
// after the prune window (docs/reliability.md, "Planned removal").
func (c *Comet) leaveRing() {
	zkc := c.cfg.ZooKeeper
	nodePath := zkc.Comet.Path + "/" + zkc.Comet.Node
	err := c.zk.Conn().Delete(nodePath, -1)
	switch {
	case err == nil:
		c.log.Info("left the ring: comet node deleted", "zk_path", nodePath)
	case errors.Is(err, zk.ErrNotEmpty):
		c.log.Info("another instance of this node is registered; node kept", "zk_path", nodePath)
	case errors.Is(err, zk.ErrNoNode):
	default:
		c.log.Warn("could not delete the comet node; the webs will prune it", "zk_path", nodePath, "err", err)
	}
}
