package api

// CometNodeData is the JSON a comet instance writes into its ephemeral
// ZooKeeper node (docs/protocol.md §5).
type CometNodeData struct {
	RPC    []string `json:"rpc"`
	TCP    []string `json:"tcp"`
	WS     []string `json:"ws"`
	Weight int      `json:"weight"`
}

// MessageNodeData is the JSON a message instance writes into its ephemeral
// ZooKeeper node (docs/protocol.md §5).
type MessageNodeData struct {
	RPC    []string `json:"rpc"`
	Weight int      `json:"weight"`
}

// MessageNode is one message process registered under <message.path>.
type MessageNode struct {
	Child string // its ephemeral child, e.g. "0000000003"
	Data  MessageNodeData
}
