package api

// Presence (issue 16, docs/protocol.md §3.9, §4.2). This method is new in
// gopush: a 1.0.5 comet does not have it and answers "rpc: can't find
// method" (see gobrpc.IsNoSuchMethod); web then reports that comet as not
// answering. The 1.0.5 methods of §4.2 are unchanged.
const (
	// CometOnline counts the open connections of keys on one comet, and
	// all of its subscribed connections: *CometOnlineArgs →
	// *CometOnlineResp.
	CometOnline = "CometRPC.Online"
)

// MaxOnlineKeys is the most keys one CometRPC.Online call may ask about; a
// comet refuses a longer list with an error starting with "param: ".
const MaxOnlineKeys = 100000

// CometOnlineArgs lists the keys to count. No keys asks for the total only.
type CometOnlineArgs struct {
	Keys []string
}

// CometOnlineResp answers CometOnlineArgs: Counts[i] is the number of open,
// subscribed connections of Keys[i] on this comet (0 when it has none), and
// Conns the number of subscribed connections of every key on this comet.
type CometOnlineResp struct {
	Counts []int
	Conns  int64
}
