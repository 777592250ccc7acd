package comet

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"gopush/api"
	"gopush/gobrpc"
	"gopush/internal/daemon"
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
// <message.path> until Close. It returns once the first list of message
// nodes is read (or after wait), so that a comet registered right after it
// can store the first push web routes to it.
func (c *Comet) watchMessageNodes(wait time.Duration) {
	rpcc := c.cfg.RPC
	pool := gobrpc.NewMessagePoolWith(rpcc.Ping.D(), rpcc.Retry.D(), rpcc.Timeout.D(), daemon.RPCOptions(rpcc, 0), c.log)
	c.pool, c.store = pool, pool
	loaded := make(chan struct{})
	var once sync.Once
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		membership.WatchMessages(c.ctx, c.zk, c.cfg.ZooKeeper.Message.Path, c.log, func(nodes []api.MessageNode) {
			pool.Update(nodes)
			once.Do(func() { close(loaded) })
		})
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-loaded:
	case <-t.C:
		c.log.Warn("message nodes not read from zookeeper yet; starting without them", "waited", wait)
	}
}

// checkMigrate refuses a Migrate whose node map is not exactly the comets
// registered in ZooKeeper now (same names, same weights; docs/security.md):
// web builds the map from the same registrations, so a genuine Migrate
// matches, while a forged one ({"evil":1}) cannot make this comet drop its
// clients or answer -n for its own keys. A web whose view lags retries,
// and so does one that catches the comet while ZooKeeper is unreachable.
func (c *Comet) checkMigrate(nodes map[string]int) error {
	path := c.cfg.ZooKeeper.Comet.Path
	if c.zk == nil {
		return errors.New("not connected to zookeeper yet")
	}
	// Sync first, so that this read is at least as fresh as web's.
	if _, err := c.zk.Conn().Sync(path); err != nil {
		return fmt.Errorf("cannot check the node map against zookeeper: %w", err)
	}
	view, err := membership.ReadComets(c.zk, path)
	if err != nil {
		return fmt.Errorf("cannot check the node map against zookeeper: %w", err)
	}
	if !maps.Equal(nodes, view.Weights) {
		return fmt.Errorf("node map %v is not the comets registered in zookeeper %v", nodes, view.Weights)
	}
	return nil
}
