package web

import (
	"context"
	"errors"
	"fmt"
	"gopush/api"
	"gopush/membership"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// migrator keeps every serving comet holding the current node→weight map
// (docs/protocol.md §6.2).
//
// When the map changes, the web that creates the ephemeral migrate.path lock
// calls Migrate on every serving comet and deletes the lock; a web that finds
// the lock taken leaves the broadcast to its holder. Besides, a serving
// instance that this web has not yet seen informed of the current map (a
// comet that joined or a standby that took over while the map stayed the
// same) gets the map from this web directly: that informs one comet only
// and needs no lock. Failed calls are retried every retry interval.
//
// All its state is owned by the run goroutine.
type migrator struct {
	log      *slog.Logger
	zk       *membership.ZK
	lockPath string
	cluster  *cluster
	retry    time.Duration

	known    map[string]int    // the map of the last broadcast (by anyone)
	informed map[string]string // serving child → fingerprint of the map it holds
}

func newMigrator(log *slog.Logger, z *membership.ZK, lockPath string, c *cluster, retry time.Duration) *migrator {
	return &migrator{
		log:      log.With("part", "migrate"),
		zk:       z,
		lockPath: lockPath,
		cluster:  c,
		retry:    retry,
		informed: make(map[string]string),
	}
}

// run reacts to every cluster change until ctx is done.
func (m *migrator) run(ctx context.Context) {
	var retryC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.cluster.changed:
		case <-retryC:
		}
		retryC = nil
		if !m.step(ctx) {
			retryC = time.After(m.retry)
		}
	}
}

// fingerprint is a canonical text of a node→weight map.
func fingerprint(weights map[string]int) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(weights)) {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(weights[name]))
		b.WriteByte(',')
	}
	return b.String()
}

// step brings the comets of the current view up to date. It returns false
// when something failed and should be tried again later.
func (m *migrator) step(ctx context.Context) bool {
	v := m.cluster.load()
	fp := fingerprint(v.weights)
	ok := true
	if m.known == nil || !maps.Equal(m.known, v.weights) {
		done, err := m.broadcast(ctx, v, fp)
		if err != nil {
			m.log.Warn("migration not notified; will retry", "err", err)
			ok = false
		} else if done {
			m.known = v.weights
		}
	}
	// Forget instances that no longer serve.
	serving := make(map[string]bool, len(v.nodes))
	for _, n := range v.nodes {
		serving[n.child] = true
	}
	for child := range m.informed {
		if !serving[child] {
			delete(m.informed, child)
		}
	}
	var todo []*cometNode
	for _, n := range v.nodes {
		if n.rpc != nil && m.informed[n.child] != fp {
			todo = append(todo, n)
		}
	}
	if len(todo) > 0 && !m.notify(ctx, todo, v.weights, fp) {
		ok = false
	}
	return ok
}

// broadcast takes the migrate lock and sends the map to every serving
// comet. When another web holds the lock it trusts that web to do it and
// counts the current instances as informed. done reports whether the map
// was dealt with (by this web or the holder).
func (m *migrator) broadcast(ctx context.Context, v *clusterView, fp string) (done bool, err error) {
	if len(v.nodes) == 0 {
		return true, nil // nobody to tell
	}
	conn := m.zk.Conn()
	_, err = conn.Create(m.lockPath, []byte("1"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	switch {
	case errors.Is(err, zk.ErrNodeExists):
		m.log.Info("migration lock held by another web; leaving the broadcast to it", "lock", m.lockPath)
		for _, n := range v.nodes {
			m.informed[n.child] = fp
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("take lock %s: %w", m.lockPath, err)
	}
	m.log.Info("migration: notifying every comet", "nodes", v.weights, "comets", len(v.nodes))
	all := make([]*cometNode, 0, len(v.nodes))
	for _, n := range v.nodes {
		if n.rpc != nil {
			all = append(all, n)
		}
	}
	m.notify(ctx, all, v.weights, fp)
	if err := conn.Delete(m.lockPath, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		m.log.Warn("migration: release lock", "lock", m.lockPath, "err", err)
	}
	// Comets that failed are retried one by one by step (informed unset).
	return true, nil
}

// notify calls Migrate on each comet in parallel and records the ones that
// took it. It reports whether all did.
func (m *migrator) notify(ctx context.Context, comets []*cometNode, weights map[string]int, fp string) bool {
	args := &api.CometMigrateArgs{Nodes: weights}
	var mu sync.Mutex
	var wg sync.WaitGroup
	all := true
	for _, n := range comets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ret int
			err := n.rpc.Call(ctx, api.CometMigrate, args, &ret)
			if err == nil && ret != api.OK {
				err = fmt.Errorf("comet answered %d", ret)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				m.log.Warn("migration: comet not notified", "node", n.name, "child", n.child, "err", err)
				all = false
				return
			}
			m.log.Info("migration: comet notified", "node", n.name, "child", n.child, "nodes", weights)
			m.informed[n.child] = fp
		}()
	}
	wg.Wait()
	return all
}
