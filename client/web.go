package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"gopush/api"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// webAPI calls web's public API for one key.
type webAPI struct {
	base string // "http://host:port", no trailing slash
	key  string
	http *http.Client
}

// maxAnswer bounds one answer of web (an offline fetch holds at most
// storage.store messages).
const maxAnswer = 64 << 20

// get calls path with q and decodes data into data (when not nil).
func (w *webAPI) get(ctx context.Context, path string, q url.Values, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("web %s: %w", path, err)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return fmt.Errorf("web %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("web %s: reading the answer: %w", path, err)
	}
	if len(body) > maxAnswer {
		return fmt.Errorf("web %s: answer larger than %d bytes", path, maxAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("web %s: HTTP %s", path, resp.Status)
	}
	raw, err := api.DecodeReply(body)
	if ret := api.RetOf(err); ret > 0 {
		return &APIError{Path: path, Ret: ret}
	}
	if err != nil {
		return fmt.Errorf("web %s: %w", path, err)
	}
	if data == nil || len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, data); err != nil {
		return fmt.Errorf("web %s: bad data: %w", path, err)
	}
	return nil
}

// server asks which comet serves the key: /1/server/get (p=1 websocket,
// p=2 tcp; over TLS p=3 wss, p=4 tcp).
func (w *webAPI) server(ctx context.Context, proto string, overTLS bool) (string, error) {
	var p string
	switch {
	case proto == WebSocket && overTLS:
		p = "3"
	case proto == WebSocket:
		p = "1"
	case overTLS:
		p = "4"
	default:
		p = "2"
	}
	var data api.ServerData
	if err := w.get(ctx, "/1/server/get", url.Values{"k": {w.key}, "p": {p}}, &data); err != nil {
		return "", err
	}
	if data.Server == "" {
		return "", errors.New("web /1/server/get: answer has no server")
	}
	return data.Server, nil
}

// messages fetches the stored private messages newer than mid and the kept
// public ones newer than pm, ascending by mid.
func (w *webAPI) messages(ctx context.Context, mid, pm int64) ([]Message, error) {
	var data api.MsgsData
	q := url.Values{"k": {w.key}, "m": {strconv.FormatInt(mid, 10)}, "pm": {strconv.FormatInt(pm, 10)}}
	if err := w.get(ctx, "/1/msg/get", q, &data); err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(data.Msgs)+len(data.PMsgs))
	for i, wm := range data.Msgs {
		m, err := fromWire(wm)
		if err != nil {
			return nil, fmt.Errorf("web /1/msg/get: message %d: %w", i, err)
		}
		m.Gid = PrivateGid
		out = append(out, m)
	}
	for i, wm := range data.PMsgs {
		m, err := fromWire(wm)
		if err != nil {
			return nil, fmt.Errorf("web /1/msg/get: public message %d: %w", i, err)
		}
		m.Gid = PublicGid
		out = append(out, m)
	}
	// web answers in mid order; sort anyway, delivery relies on it.
	slices.SortFunc(out, func(a, b Message) int { return cmp.Compare(a.Mid, b.Mid) })
	return out, nil
}
