package api

// CometNodeData is the JSON a comet instance writes into its ephemeral
// ZooKeeper node (docs/protocol.md §5). TCP and WS hold the advertised
// addresses (host:port). WSS and TCPTLS are new in gopush (docs/protocol.md
// §2.4): the addresses of its TLS listeners, left out of the JSON when
// there are none; a 1.0.5 web decodes the node with encoding/json, which
// skips fields it does not know. A WSS entry is host:port or a full wss://
// URL.
type CometNodeData struct {
	RPC    []string `json:"rpc"`
	TCP    []string `json:"tcp"`
	WS     []string `json:"ws"`
	Weight int      `json:"weight"`
	WSS    []string `json:"wss,omitempty"`
	TCPTLS []string `json:"tcptls,omitempty"`
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
