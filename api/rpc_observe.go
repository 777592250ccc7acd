package api

// Observation (issue 13, docs/observability.md): what web's cluster
// dashboard asks of comets and message nodes. These methods are new in
// gopush; 1.0.5 nodes answer "rpc: can't find method" (gobrpc.IsNoSuchMethod) and
// the dashboard shows them without figures.
const (
	// CometStats returns a comet's counters: int (ignored) →
	// *CometStatsResp.
	CometStats = "CometRPC.Stats"
	// MessageHealth checks every storage shard of a message node: int
	// (ignored) → *MessageHealthResp.
	MessageHealth = "MessageRPC.Health"
)

// CometStatsResp is a snapshot of one comet's counters. The counters only
// grow while the process lives; the caller derives rates from two
// snapshots and notices a restart by a new Start.
type CometStatsResp struct {
	Node        string // its node name
	Start       int64  // process start, unix seconds
	Connections int64  // open client connections, every protocol
	Subscribed  int64  // connections subscribed to a key
	Channels    int64  // keys held in memory
	Pushes      int64  // messages pushed to a key (one per key), since start
	Deliveries  int64  // message frames queued to connections, since start
	Broadcasts  int64  // public broadcasts, since start
}

// MessageShardHealth is the state of one storage shard.
type MessageShardHealth struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"` // why not, when !OK
}

// MessageHealthResp lists a message node's shards, sorted by name.
type MessageHealthResp struct {
	Storage string // "redis" or "mysql"
	Shards  []MessageShardHealth
}
