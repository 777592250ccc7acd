package api

import "encoding/json"

// Batch pushes (web's /1/admin/push/batch, docs/protocol.md §3.11): many
// pushes, each with its own key or keys, message and expiry, carried to a
// comet in one call and stored through a message node in one call. These
// methods are new in gopush: 1.0.5 nodes answer "rpc: can't find method"
// (see IsNoSuchMethod in gobrpc), and their callers then fall back to the
// 1.0.5 methods, one push at a time.
const (
	// CometPushBatch pushes many entries: *CometPushBatchArgs →
	// *CometPushBatchResp.
	CometPushBatch = "CometRPC.PushBatch"
	// MessageSaveBatch stores many messages, each with its own key, mid,
	// message and expiry: *MessageSaveBatchArgs → *MessageSaveBatchResp.
	MessageSaveBatch = "MessageRPC.SaveBatch"
)

// CometPushEntry is one push of a batch: Msg to every key of Keys, each
// key under its own mid, stored first when Expire > 0. An entry whose keys
// the ring spreads over several comets reaches each comet with its own
// keys only.
type CometPushEntry struct {
	Keys   []string
	Msg    json.RawMessage
	Expire uint
}

// CometPushBatchArgs carries the entries of a batch that one comet serves,
// in the order the caller got them: pushes to one key are delivered in
// that order, with ascending mids.
type CometPushBatchArgs struct {
	Entries  []CometPushEntry
	Deadline int64 // caller's deadline (deadline.go); 0: none
}

// BatchFailure names one push of a batch that did not happen: the entry's
// index in the call's Entries, the key, and why.
type BatchFailure struct {
	Entry int
	Key   string
	Why   string
}

// CometPushBatchResp lists the pushes that were not delivered (not stored,
// or refused: empty or over-long key, message not JSON). Every push not
// listed was given a mid and queued to the key's connections here.
type CometPushBatchResp struct {
	Failed []BatchFailure
}

// MessageSaveEntry is one message to store for one key.
type MessageSaveEntry struct {
	Key    string
	Msg    json.RawMessage
	MsgId  int64
	Expire uint // seconds, ≥ 1
	// Deadline is this entry's own caller's deadline (deadline.go), for a
	// call that carries the saves of several callers (comet's grouped
	// saves): an entry that arrives after it is not stored. 0: only the
	// call's Deadline applies.
	Deadline int64
}

// MessageSaveBatchArgs stores every entry. Entries are independent: a bad
// one (a refused key, message or expiry) fails alone.
type MessageSaveBatchArgs struct {
	Entries  []MessageSaveEntry
	Deadline int64 // caller's deadline (deadline.go); 0: none
}

// MessageSaveBatchResp lists the entries not stored (Entry is the index in
// the call's Entries); every other entry was stored.
type MessageSaveBatchResp struct {
	Failed []BatchFailure
}

// BatchAnswer is the data of a /1/admin/push/batch answer (ret 0) when
// some pushes failed or were kept without being delivered: each push is
// named by its entry's index in the request (from 0) and its key. With
// neither, the answer has no data.
type BatchAnswer struct {
	Failed []BatchPush `json:"failed"`           // not delivered and not kept; always present (maybe empty)
	Stored []BatchPush `json:"stored,omitempty"` // kept through a message node for the next /1/msg/get, not delivered
}

// BatchPush is one push of a batch answer: Why for a failure, Mid for a
// push kept (the mid the key's client will read it under).
type BatchPush struct {
	Index int    `json:"index"`
	Key   string `json:"key"`
	Why   string `json:"why,omitempty"`
	Mid   int64  `json:"mid,omitempty"`
}

// BatchRefused is the data of a 65534 answer to /1/admin/push/batch: the
// index (from 0) of the first entry that was refused, and why. Nothing of
// the request was pushed.
type BatchRefused struct {
	Index int    `json:"index"`
	Why   string `json:"why"`
}

// SaveBatchBytes bounds the message bytes of one SaveBatch call. An entry
// pushed to many keys repeats its message once per key in SaveBatch, so a
// caller cuts a large batch into several calls (SplitSaveBatch), each far
// below the message node's rpc.maxmsg.
const SaveBatchBytes = 4 << 20

// SplitSaveBatch cuts es into consecutive runs of at most SaveBatchBytes
// message bytes (a message larger than that alone gets a run of its own).
// Most batches are one run: es itself.
func SplitSaveBatch(es []MessageSaveEntry) [][]MessageSaveEntry {
	var runs [][]MessageSaveEntry
	start, size := 0, 0
	for i, e := range es {
		if i > start && size+len(e.Msg) > SaveBatchBytes {
			runs = append(runs, es[start:i])
			start, size = i, 0
		}
		size += len(e.Msg)
	}
	if start < len(es) {
		runs = append(runs, es[start:])
	}
	return runs
}
