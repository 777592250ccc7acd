package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"gopush/api"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PushConfig says what to push through web's admin API.
type PushConfig struct {
	Admin       string        // web admin.bind host:port
	Mode        string        // "private", "mprivate", "all" (push/all), "room" (push/room to Room) or "batch" (push/batch, batch.go)
	Room        string        // room: the room id, whose keys are Keys (see JoinRoom)
	Expire      int           // seconds; 0 delivers to online connections only
	Clients     int           // concurrent HTTP clients (each one keep-alive connection)
	Rate        float64       // calls per second in total; 0: as fast as possible
	Duration    time.Duration // stop starting calls after this
	Max         int           // stop after this many calls; 0: no limit
	Keys        []string      // private: one key per call, round robin; mprivate: KeysPerCall per call
	KeysPerCall int
	BatchSize   int           // batch: entries per call, one key each, each its own push
	Timeout     time.Duration // deadline of one call
	// Online returns how many subscriber connections hold key, so that a
	// push's expected delivery count is known.
	Online func(key string) int
}

// PushResult is what the pushers did.
type PushResult struct {
	Calls      uint64            `json:"calls"`
	Accepted   uint64            `json:"accepted"`     // ret 0
	Refused    uint64            `json:"refused"`      // ret ≠ 0
	Errors     uint64            `json:"errors"`       // transport errors, non-JSON answers
	FailedKeys uint64            `json:"failed_keys"`  // keys listed in "fk" (batch: pushes listed in "failed")
	Pushes     uint64            `json:"pushes"`       // pushes (key, message) web took in accepted calls
	Elapsed    time.Duration     `json:"elapsed_ns"`   // first call start → last call end
	CallHist   Histogram         `json:"call_latency"` // HTTP round trip
	Expected   map[uint64]uint32 `json:"-"`            // seq → deliveries expected
	ExpectedN  uint64            `json:"expected"`     // sum of Expected
	// Unconfirmed is, per push, the connections of the keys web listed as
	// failed (fk): they should get nothing, but a call to comet that
	// timed out in web may still have delivered.
	Unconfirmed  map[uint64]uint32 `json:"-"`
	UnconfirmedN uint64            `json:"unconfirmed"` // sum of Unconfirmed
	FirstError   string            `json:"first_error,omitempty"`
}

// Rate is the accepted calls per second.
func (r *PushResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Accepted) / r.Elapsed.Seconds()
}

// PushRate is the pushes web took per second (for private, its accepted
// calls; for mprivate and batch, every key of them).
func (r *PushResult) PushRate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Pushes) / r.Elapsed.Seconds()
}

// NewHTTPClient returns a client that keeps up to conns keep-alive
// connections to one host.
func NewHTTPClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Push runs the pushers until Duration, Max or ctx ends, then returns what
// they did. seq0 is the first sequence number to use.
func Push(ctx context.Context, cfg PushConfig, seq0 uint64) *PushResult {
	if cfg.Clients <= 0 {
		cfg.Clients = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.KeysPerCall <= 0 {
		cfg.KeysPerCall = 1
	}
	if cfg.Online == nil {
		cfg.Online = func(string) int { return 1 }
	}
	// push/all reaches every connection, push/room every connection of
	// the room's keys: with Keys the subscribers' keys, both are the sum.
	everyone := uint32(0)
	if cfg.Mode == "all" || cfg.Mode == "room" {
		for _, k := range cfg.Keys {
			everyone += uint32(cfg.Online(k))
		}
	}
	res := &PushResult{Expected: make(map[uint64]uint32), Unconfirmed: make(map[uint64]uint32)}
	var mu sync.Mutex // guards res
	var next atomic.Uint64
	start := time.Now()
	end := start.Add(cfg.Duration)
	var lastEnd atomic.Int64

	var wg sync.WaitGroup
	for w := 0; w < cfg.Clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := newHTTPConn(cfg.Admin, cfg.Timeout)
			defer conn.Close()
			var body []byte
			for {
				n := next.Add(1) - 1
				if cfg.Max > 0 && n >= uint64(cfg.Max) {
					return
				}
				if cfg.Rate > 0 {
					due := start.Add(time.Duration(float64(n) / cfg.Rate * float64(time.Second)))
					if cfg.Duration > 0 && !due.Before(end) {
						return
					}
					if d := time.Until(due); d > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					}
				} else if cfg.Duration > 0 && !time.Now().Before(end) {
					return
				}
				if ctx.Err() != nil {
					return
				}
				if cfg.Mode == "batch" {
					body = pushBatchCall(conn, cfg, seq0, n, body, res, &mu)
					lastEnd.Store(time.Now().UnixNano())
					continue
				}
				seq := seq0 + n
				keys := callKeys(cfg, n)
				t0 := time.Now()
				var u string
				body = body[:0]
				pl := AppendPayload(nil, Payload{T: t0.UnixNano(), S: seq})
				switch cfg.Mode {
				case "all":
					u = "/1/admin/push/all?expire=" + strconv.Itoa(cfg.Expire)
					body = append(body, pl...)
				case "room":
					u = "/1/admin/push/room?rid=" + url.QueryEscape(cfg.Room) + "&expire=" + strconv.Itoa(cfg.Expire)
					body = append(body, pl...)
				case "mprivate":
					u = "/1/admin/push/mprivate?expire=" + strconv.Itoa(cfg.Expire)
					body = append(body, `{"m":`...)
					body = strconv.AppendQuote(body, string(pl))
					body = append(body, `,"k":"`...)
					body = append(body, strings.Join(keys, ",")...)
					body = append(body, `"}`...)
				default:
					u = "/1/admin/push/private?key=" + url.QueryEscape(keys[0]) + "&expire=" + strconv.Itoa(cfg.Expire)
					body = append(body, pl...)
				}
				ret, fk, err := post(conn, u, body)
				t1 := time.Now()
				lastEnd.Store(t1.UnixNano())

				mu.Lock()
				res.Calls++
				res.CallHist.Record(t1.Sub(t0))
				switch {
				case err != nil:
					res.Errors++
					if res.FirstError == "" {
						res.FirstError = err.Error()
					}
				case ret != api.CodeOK:
					res.Refused++
					if res.FirstError == "" {
						res.FirstError = fmt.Sprintf("ret %d", ret)
					}
				default:
					res.Accepted++
					res.FailedKeys += uint64(len(fk))
					res.Pushes += uint64(len(keys) - len(fk))
					failed := make(map[string]bool, len(fk))
					for _, k := range fk {
						failed[k] = true
					}
					var exp, unconfirmed uint32
					switch {
					case cfg.Mode == "all":
						exp = everyone
					case cfg.Mode == "room" && len(fk) == 0:
						exp = everyone
					default:
						for _, k := range keys {
							if failed[k] {
								unconfirmed += uint32(cfg.Online(k))
							} else {
								exp += uint32(cfg.Online(k))
							}
						}
					}
					if unconfirmed > 0 {
						res.Unconfirmed[seq] = unconfirmed
						res.UnconfirmedN += uint64(unconfirmed)
					}
					res.Expected[seq] = exp
					res.ExpectedN += uint64(exp)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if le := lastEnd.Load(); le > 0 {
		res.Elapsed = time.Unix(0, le).Sub(start)
	}
	return res
}

// callKeys returns the keys of call n.
func callKeys(cfg PushConfig, n uint64) []string {
	switch cfg.Mode {
	case "all", "room":
		return cfg.Keys
	case "mprivate":
	default:
		return []string{cfg.Keys[n%uint64(len(cfg.Keys))]}
	}
	k := cfg.KeysPerCall
	if k >= len(cfg.Keys) {
		return cfg.Keys
	}
	first := int((n * uint64(k)) % uint64(len(cfg.Keys)))
	if first+k <= len(cfg.Keys) {
		return cfg.Keys[first : first+k]
	}
	out := append([]string(nil), cfg.Keys[first:]...)
	return append(out, cfg.Keys[:k-len(out)]...)
}

// post sends one admin call and decodes web's answer: its ret code and the
// keys it lists as failed.
func post(c *httpConn, target string, body []byte) (ret int, fk []string, err error) {
	status, raw, err := c.Post(target, body)
	if err != nil {
		return 0, nil, err
	}
	return decodeAnswer(status, raw)
}

func decodeAnswer(status int, raw []byte) (ret int, fk []string, err error) {
	if status != http.StatusOK {
		return 0, nil, fmt.Errorf("HTTP %d: %s", status, truncate(raw, 120))
	}
	data, err := api.DecodeReply(bytes.TrimSpace(raw))
	if ret = api.RetOf(err); ret < 0 {
		return 0, nil, fmt.Errorf("%v: %q", err, truncate(raw, 120))
	}
	if len(data) > 0 {
		var d api.FailedKeysData
		if err := json.Unmarshal(data, &d); err != nil {
			return 0, nil, fmt.Errorf("bad data in %q", truncate(raw, 120))
		}
		fk = d.FKeys
	}
	return ret, fk, nil
}
