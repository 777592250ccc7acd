package comet

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"gopush/internal/testenv"
)

// getStat fetches /stat?query and returns the status and the raw body.
func getStat(t *testing.T, c *Comet, query string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + c.StatAddrs()[0] + "/stat?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// An ops script written for gopush-cluster 1.0.5 asks a key's connection
// count and gets 1.0.5's answer, byte for byte: {"channel":{"conn":N}}
// indented by four spaces, as 1.0.5 writes every stat. A key without a
// channel has 0.
func TestStatChannelOfKeyAs105(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	for range 3 {
		subscribeTCP(t, c, "K", "", "1")
	}
	for range 2 {
		subscribeWS(t, c, "K", "", "1")
	}
	want := "{\n    \"channel\": {\n        \"conn\": 5\n    }\n}"
	if code, body := getStat(t, c, "type=channel&key=K"); code != 200 || body != want {
		t.Errorf("type=channel&key=K: %d %q, want 200 %q", code, body, want)
	}
	want = "{\n    \"channel\": {\n        \"conn\": 0\n    }\n}"
	if code, body := getStat(t, c, "type=channel&key=nobody"); code != 200 || body != want {
		t.Errorf("type=channel&key=nobody: %d %q, want 200 %q", code, body, want)
	}
	// 1.0.5 answers an unknown or missing type with 404 Not Found.
	for _, q := range []string{"type=bogus", ""} {
		if code, body := getStat(t, c, q); code != 404 || body != "Not Found\n" {
			t.Errorf("/stat?%s: %d %q, want 404 \"Not Found\\n\"", q, code, body)
		}
	}
}

// shape105 lists, for every type, the fields 1.0.5 answers and the JSON
// kind of each (read from 1.0.5's comet/stat.go and comet/config.go).
var shape105 = map[string]map[string]string{
	"server": {"uptime": "number", "hostname": "string", "wd": "string", "ppid": "number",
		"pid": "number", "pagesize": "number", "group": "string", "user": "string"},
	"golang": {"compiler": "string", "arch": "string", "os": "string", "max_procs": "number",
		"root": "string", "cgo_call": "number", "goroutine_num": "number", "version": "string"},
	"memory": {"alloc": "number", "total_alloc": "number", "sys": "number", "lookups": "number",
		"mallocs": "number", "frees": "number", "heap_alloc": "number", "heap_sys": "number",
		"heap_idle": "number", "heap_inuse": "number", "heap_released": "number",
		"heap_objects": "number", "stack_inuse": "number", "stack_sys": "number",
		"mspan_inuse": "number", "mspan_sys": "number", "mcache_inuse": "number",
		"mcache_sys": "number", "buckhash_sys": "number", "next_gc": "number", "last_gc": "number",
		"pause_total_ns": "number", "pause_ns": "array", "num_gc": "number", "enable_gc": "bool",
		"debug_gc": "bool", "by_size": "array"},
	"config": {"User": "string", "PidFile": "string", "Dir": "string", "MaxProc": "number",
		"TCPBind": "array", "WebsocketBind": "array", "RPCBind": "array", "PprofBind": "array",
		"StatBind": "array", "ZookeeperAddr": "array", "ZookeeperTimeout": "number",
		"ZookeeperCometPath": "string", "ZookeeperCometNode": "string",
		"ZookeeperMessagePath": "string", "RPCPing": "number", "RPCRetry": "number",
		"SndbufSize": "number", "RcvbufSize": "number", "Proto": "array",
		"BufioInstance": "number", "BufioNum": "number", "TCPKeepalive": "bool",
		"MaxSubscriberPerChannel": "number", "ChannelBucket": "number", "Auth": "bool",
		"TokenExpire": "number", "MsgBufNum": "number"},
	"channel":    {"access": "number", "create": "number", "delete": "number", "current": "number"},
	"message":    {"succeed": "number", "failed": "number", "total": "number"},
	"connection": {"add": "number", "remove": "number", "current": "number"},
}

func jsonKind(v any) string {
	switch v.(type) {
	case json.Number:
		return "number"
	case string:
		return "string"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

// statObject fetches a type and checks what every 1.0.5 answer is: 200, a
// JSON object indented by four spaces, holding 1.0.5's fields with their
// kinds (gopush's own fields may stand beside them).
func statObject(t *testing.T, c *Comet, typ string) map[string]any {
	t.Helper()
	code, body := getStat(t, c, "type="+typ)
	if code != 200 {
		t.Fatalf("type=%s: status %d: %s", typ, code, body)
	}
	var compact, indented bytes.Buffer
	if err := json.Compact(&compact, []byte(body)); err != nil {
		t.Fatalf("type=%s: not JSON: %v", typ, err)
	}
	_ = json.Indent(&indented, compact.Bytes(), "", "    ")
	if indented.String() != body {
		t.Errorf("type=%s: not indented by four spaces as 1.0.5 writes it:\n%s", typ, body)
	}
	dec := json.NewDecoder(bytes.NewReader(compact.Bytes()))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("type=%s: not a JSON object: %v", typ, err)
	}
	for field, kind := range shape105[typ] {
		v, ok := out[field]
		if !ok {
			t.Errorf("type=%s: no field %q (1.0.5 has it)", typ, field)
		} else if got := jsonKind(v); got != kind {
			t.Errorf("type=%s: field %q is a %s, 1.0.5 answers a %s", typ, field, got, kind)
		}
	}
	return out
}

// num reads a number field as an int64.
func num(t *testing.T, obj map[string]any, field string) int64 {
	t.Helper()
	n, err := obj[field].(json.Number).Int64()
	if err != nil {
		t.Fatalf("field %q: %v", field, err)
	}
	return n
}

// Every type answers in 1.0.5's shape, and the counters of channel,
// message and connection mean what they meant in 1.0.5: channels created,
// deleted and in memory; message frames written to connections;
// connections added to and removed from channels.
func TestStatShapesAs105(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	c := startComet(t, cfg)
	for typ := range shape105 {
		statObject(t, c, typ)
	}

	srv := statObject(t, c, "server")
	if num(t, srv, "pid") != int64(os.Getpid()) || num(t, srv, "uptime") <= 0 || srv["node"] != "node1" {
		t.Errorf("server: pid %v uptime %v node %v, want this process, nanoseconds since start, node1", srv["pid"], srv["uptime"], srv["node"])
	}
	cf := statObject(t, c, "config")
	if cf["ZookeeperCometNode"] != "node1" || num(t, cf, "MsgBufNum") != int64(cfg.Channel.Msgbuf.Num) ||
		num(t, cf, "ZookeeperTimeout") != int64(cfg.ZooKeeper.Timeout.D()) || num(t, cf, "MaxSubscriberPerChannel") != int64(cfg.Channel.MaxSubscriber) {
		t.Errorf("config: 1.0.5's fields do not carry the configuration: %v", cf)
	}

	cl := subscribeTCP(t, c, "k", "", "1")
	rc := rpcClient(t, c)
	push(t, rc, "k", `{"n":1}`, 0)
	cl.readFrame()
	testenv.WaitFor(t, 5*time.Second, "the message counted as written", func() bool {
		return num(t, statObject(t, c, "message"), "succeed") == 1
	})
	m := statObject(t, c, "message")
	if num(t, m, "failed") != 0 || num(t, m, "total") != 1 || num(t, m, "pushed") != 1 {
		t.Errorf("message after one push: %v, want succeed 1 failed 0 total 1", m)
	}
	conn := statObject(t, c, "connection")
	if num(t, conn, "add") != 1 || num(t, conn, "remove") != 0 || num(t, conn, "current") != 1 || num(t, conn, "tcp") != 1 {
		t.Errorf("connection with one subscriber: %v, want add 1 remove 0 current 1", conn)
	}
	ch := statObject(t, c, "channel")
	if num(t, ch, "create") != 1 || num(t, ch, "delete") != 0 || num(t, ch, "current") != 1 || num(t, ch, "access") < 1 {
		t.Errorf("channel with one key: %v, want create 1 delete 0 current 1, access at least the push's", ch)
	}

	cl.nc.Close()
	waitIdle(t, c)
	conn = statObject(t, c, "connection")
	if num(t, conn, "add") != 1 || num(t, conn, "remove") != 1 || num(t, conn, "current") != 0 {
		t.Errorf("connection after the subscriber left: %v, want add 1 remove 1 current 0", conn)
	}
	ch = statObject(t, c, "channel")
	if num(t, ch, "create") != 1 || num(t, ch, "delete") != 1 || num(t, ch, "current") != 0 {
		t.Errorf("channel after its key left: %v, want create 1 delete 1 current 0", ch)
	}
}
