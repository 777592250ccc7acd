package comet

import (
	"gopush/gobrpc"
	"gopush/membership"
)

// loadRing builds the ring from ZooKeeper at start-up. If ZooKeeper cannot
// be read, or does not list this node, no ring is set and every key is
// accepted until web sends Migrate: refusing every client would be worse.
func (c *Comet) loadRing() {
	view, err := membership.ReadComets(c.zk, c.cfg.ZooKeeper.Comet.Path)
	if err != nil {
		c.log.Warn("cannot read the comet nodes; accepting every key until the first Migrate", "err", err)
		return
	}
	if _, ok := view.Weights[c.cfg.ZooKeeper.Comet.Node]; !ok {
		c.log.Warn("this node is not in zookeeper's comet list; accepting every key until the first Migrate", "node", c.cfg.ZooKeeper.Comet.Node)
		return
	}
	if err := c.ring.setInitial(view.Weights); err != nil {
		c.log.Warn("bad comet weights in zookeeper; accepting every key until the first Migrate", "err", err)
		return
	}
	c.log.Info("ring loaded from zookeeper", "nodes", view.Weights)
}

// watchMessageNodes starts the message-node pool and keeps it in step with
// <message.path> until Close.
func (c *Comet) watchMessageNodes() {
	rpcc := c.cfg.RPC
	pool := gobrpc.NewMessagePool(rpcc.Ping.D(), rpcc.Retry.D(), rpcc.Timeout.D(), c.log)
	c.pool, c.store = pool, pool
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		membership.WatchMessages(c.ctx, c.zk, c.cfg.ZooKeeper.Message.Path, c.log, pool.Update)
	}()
}
