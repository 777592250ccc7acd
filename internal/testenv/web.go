package testenv

// Calls of web's HTTP API that return errors instead of failing the test,
// for goroutines of client tests.

import (
	"encoding/json"
	"fmt"
	"gopush/api"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// WebAnswer is web's JSON answer.
type WebAnswer struct {
	Ret  int             `json:"ret"`
	Data json.RawMessage `json:"data"`
}

// WebGet calls a public path of web at base ("http://host:port") and
// decodes the answer. HTTP errors and non-JSON answers are returned.
func WebGet(base, path string, q url.Values) (*WebAnswer, error) {
	resp, err := http.Get(base + path + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return decodeAnswer(resp)
}

// Push pushes msg (JSON) to key through web's admin API at admin
// ("host:port") with expire seconds, and returns web's ret code.
func Push(admin, key, msg string, expire int) (int, error) {
	u := fmt.Sprintf("http://%s/1/admin/push/private?key=%s&expire=%d", admin, url.QueryEscape(key), expire)
	resp, err := http.Post(u, "application/json", strings.NewReader(msg))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	a, err := decodeAnswer(resp)
	if err != nil {
		return 0, err
	}
	return a.Ret, nil
}

func decodeAnswer(resp *http.Response) (*WebAnswer, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	data, err := api.DecodeReply(b)
	ret := api.RetOf(err)
	if ret < 0 {
		return nil, fmt.Errorf("HTTP %s: %v: %q", resp.Status, err, b)
	}
	return &WebAnswer{Ret: ret, Data: data}, nil
}

// ServerOf asks web at base which comet serves key (p: "1" websocket,
// "2" tcp); "" with the ret code when none does.
func ServerOf(base, key, p string) (string, int, error) {
	a, err := WebGet(base, "/1/server/get", url.Values{"k": {key}, "p": {p}})
	if err != nil {
		return "", 0, err
	}
	if a.Ret != 0 {
		return "", a.Ret, nil
	}
	var d api.ServerData
	if err := json.Unmarshal(a.Data, &d); err != nil {
		return "", a.Ret, err
	}
	return d.Server, 0, nil
}
