// Package gobrpc is the RPC transport between gopush nodes: Go's net/rpc
// protocol with gob encoding, which gopush-cluster 1.0.5 nodes speak too
// (docs/protocol.md §4). Client calls one peer with deadlines and redials
// it; Server serves one receiver on several listeners; MessagePool spreads
// calls over the registered message nodes by weight (§6.3). The services,
// methods and types themselves live in package api.
package gobrpc
