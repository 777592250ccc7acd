package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"gopush/api"
)

// The push-batch load: each call is one POST /1/admin/push/batch (docs/protocol.md
// §3.11) of BatchSize entries in JSON lines, entry j of call n for key
// (n*BatchSize + j) mod len(Keys), with its own payload and sequence number
// seq0 + n*BatchSize + j, so that every push is counted apart.

// batchSeq is the sequence number of entry j of call n.
func batchSeq(cfg PushConfig, seq0, n uint64, j int) uint64 {
	return seq0 + n*uint64(cfg.BatchSize) + uint64(j)
}

// appendBatchBody appends the body of call n (JSON lines) to b.
func appendBatchBody(b []byte, cfg PushConfig, seq0, n uint64, now time.Time) []byte {
	for j := 0; j < cfg.BatchSize; j++ {
		k := cfg.Keys[(n*uint64(cfg.BatchSize)+uint64(j))%uint64(len(cfg.Keys))]
		b = append(b, `{"key":`...)
		b = strconv.AppendQuote(b, k)
		b = append(b, `,"msg":`...)
		b = AppendPayload(b, Payload{T: now.UnixNano(), S: batchSeq(cfg, seq0, n, j)})
		b = append(b, `,"expire":`...)
		b = strconv.AppendInt(b, int64(cfg.Expire), 10)
		b = append(b, "}\n"...)
	}
	return b
}

// pushBatchCall makes call n and records it in res (under mu). It returns
// the body buffer for reuse.
func pushBatchCall(conn *httpConn, cfg PushConfig, seq0, n uint64, body []byte, res *PushResult, mu *sync.Mutex) []byte {
	t0 := time.Now()
	body = appendBatchBody(body[:0], cfg, seq0, n, t0)
	status, raw, err := conn.Post("/1/admin/push/batch", body)
	var ret int
	var failed []api.BatchPush
	if err == nil {
		ret, failed, err = decodeBatchAnswer(status, raw)
	}
	t1 := time.Now()

	mu.Lock()
	defer mu.Unlock()
	res.Calls++
	res.CallHist.Record(t1.Sub(t0))
	switch {
	case err != nil:
		res.Errors++
		if res.FirstError == "" {
			res.FirstError = err.Error()
		}
		return body
	case ret != api.CodeOK:
		res.Refused++
		if res.FirstError == "" {
			res.FirstError = fmt.Sprintf("ret %d: %s", ret, truncate(raw, 120))
		}
		return body
	}
	res.Accepted++
	res.FailedKeys += uint64(len(failed))
	if len(failed) > 0 && res.FirstError == "" {
		res.FirstError = fmt.Sprintf("push failed: entry %d key %s: %s", failed[0].Index, failed[0].Key, failed[0].Why)
	}
	bad := make(map[int]bool, len(failed))
	for _, f := range failed {
		bad[f.Index] = true
	}
	for j := 0; j < cfg.BatchSize; j++ {
		k := cfg.Keys[(n*uint64(cfg.BatchSize)+uint64(j))%uint64(len(cfg.Keys))]
		exp := uint32(cfg.Online(k))
		if bad[j] {
			// Should get nothing, but a comet call that timed out in web
			// may still have delivered it.
			if res.Unconfirmed != nil && exp > 0 {
				res.Unconfirmed[batchSeq(cfg, seq0, n, j)] = exp
				res.UnconfirmedN += uint64(exp)
			}
			continue
		}
		res.Expected[batchSeq(cfg, seq0, n, j)] = exp
		res.ExpectedN += uint64(exp)
		res.Pushes++
	}
	return body
}

// decodeBatchAnswer decodes a push/batch answer: its ret and the pushes it
// lists as failed. Pushes listed as stored were not delivered; this load
// pushes to keys web routes to live comets, so there should be none, and
// they count as failed.
func decodeBatchAnswer(status int, raw []byte) (int, []api.BatchPush, error) {
	if status != http.StatusOK {
		return 0, nil, fmt.Errorf("HTTP %d: %s", status, truncate(raw, 120))
	}
	data, err := api.DecodeReply(bytes.TrimSpace(raw))
	ret := api.RetOf(err)
	if ret < 0 {
		return 0, nil, fmt.Errorf("%v: %q", err, truncate(raw, 120))
	}
	if ret != api.CodeOK || len(data) == 0 {
		return ret, nil, nil
	}
	var d api.BatchAnswer
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, nil, fmt.Errorf("bad data in %q", truncate(raw, 120))
	}
	for _, s := range d.Stored {
		d.Failed = append(d.Failed, api.BatchPush{Index: s.Index, Key: s.Key, Why: "stored, not delivered"})
	}
	return ret, d.Failed, nil
}
