package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// StoredCheck is the result of reading back offline messages.
type StoredCheck struct {
	Checked int      `json:"checked"`
	Found   int      `json:"found"` // keys whose offline messages hold a push of this run
	Missing []string `json:"missing,omitempty"`
}

// CheckStored asks web (/1/msg/get, m=0) for the offline messages of each
// key and counts the keys that hold at least one payload whose sequence
// number is in accepted.
func CheckStored(ctx context.Context, httpAddr string, keys []string, accepted map[uint64]uint32) (*StoredCheck, error) {
	c := NewHTTPClient(4, 10*time.Second)
	defer c.CloseIdleConnections()
	out := &StoredCheck{}
	for _, k := range keys {
		u := "http://" + httpAddr + "/1/msg/get?k=" + url.QueryEscape(k) + "&m=0"
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return out, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return out, err
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err != nil {
			return out, err
		}
		var ans struct {
			Ret  int `json:"ret"`
			Data struct {
				Msgs []json.RawMessage `json:"msgs"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil {
			return out, fmt.Errorf("/1/msg/get answer is not JSON: %q", truncate(raw, 120))
		}
		out.Checked++
		found := false
		for _, m := range ans.Data.Msgs {
			if p, err := ParseDelivery(m); err == nil {
				if _, ok := accepted[p.S]; ok {
					found = true
					break
				}
			}
		}
		if found {
			out.Found++
		} else if len(out.Missing) < 10 {
			out.Missing = append(out.Missing, k)
		}
	}
	return out, nil
}
