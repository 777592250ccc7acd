// Package membership is how gopush nodes find each other through
// ZooKeeper (docs/protocol.md §5): one session per daemon (ZK), a node's
// own registration that survives session loss (Register), and watchers that
// publish the registered comets and message nodes as snapshots
// (WatchComets, WatchMessages).
package membership
