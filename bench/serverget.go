package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// serverAnswer is web's /1/server/get answer.
type serverAnswer struct {
	Ret  int `json:"ret"`
	Data struct {
		Server string `json:"server"`
	} `json:"data"`
}

func serverGet(ctx context.Context, c *http.Client, httpAddr, key, proto string) (string, int, error) {
	p := "2"
	switch proto {
	case "ws", "sse": // SSE is served on the WebSocket address
		p = "1"
	case "wss":
		p = "3"
	}
	u := "http://" + httpAddr + "/1/server/get?k=" + url.QueryEscape(key) + "&p=" + p
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("HTTP %d: %s", resp.StatusCode, truncate(raw, 120))
	}
	var ans serverAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return "", 0, fmt.Errorf("answer is not JSON: %q", truncate(raw, 120))
	}
	return ans.Data.Server, ans.Ret, nil
}

// Route asks web (http.bind) which comet serves each key, as a client
// does, with `parallel` requests in flight. It returns key → comet address
// of proto ("tcp" or "ws").
func Route(ctx context.Context, httpAddr, proto string, keys []string, parallel int) (map[string]string, error) {
	if parallel <= 0 {
		parallel = 16
	}
	c := NewHTTPClient(parallel, 10*time.Second)
	defer c.CloseIdleConnections()
	out := make(map[string]string, len(keys))
	var mu sync.Mutex
	var firstErr error
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(keys) || ctx.Err() != nil {
					return
				}
				addr, ret, err := serverGet(ctx, c, httpAddr, keys[i], proto)
				if err == nil && (ret != 0 || addr == "") {
					err = fmt.Errorf("/1/server/get?k=%s: ret %d", keys[i], ret)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					out[keys[i]] = addr
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return out, firstErr
	}
	return out, ctx.Err()
}

// GetLoadResult is what a /1/server/get load run measured.
type GetLoadResult struct {
	Requests uint64        `json:"requests"`
	OK       uint64        `json:"ok"` // HTTP 200 and ret 0
	Errors   uint64        `json:"errors"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Hist     Histogram     `json:"latency"`
}

// Rate is the successful requests per second.
func (r *GetLoadResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// ServerGetLoad calls /1/server/get as fast as `clients` keep-alive
// connections allow, for d, cycling over keys.
func ServerGetLoad(ctx context.Context, httpAddr string, keys []string, clients int, d time.Duration) *GetLoadResult {
	c := NewHTTPClient(clients, 10*time.Second)
	defer c.CloseIdleConnections()
	res := &GetLoadResult{}
	var mu sync.Mutex
	start := time.Now()
	end := start.Add(d)
	var next atomic.Uint64
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h Histogram
			var reqs, ok, errs uint64
			for time.Now().Before(end) && ctx.Err() == nil {
				k := keys[next.Add(1)%uint64(len(keys))]
				t0 := time.Now()
				_, ret, err := serverGet(ctx, c, httpAddr, k, "tcp")
				h.Record(time.Since(t0))
				reqs++
				if err == nil && ret == 0 {
					ok++
				} else {
					errs++
				}
			}
			mu.Lock()
			res.Requests += reqs
			res.OK += ok
			res.Errors += errs
			res.Hist.Merge(&h)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}
