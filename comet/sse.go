package comet

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gopush/api"
	"gopush/internal/connlimit"
)

// Server-Sent Events (docs/protocol.md §2.5, the bytes in api/wire_sse.go):
// a second way in for browsers whose network breaks WebSocket. GET /sse on
// a WebSocket listener, with the query of /sub, runs the same subscribe
// (parameters, ring, token, maxsubscriber, send queue, stats) and answers
// a text/event-stream: ":+h", then one event per message and a comment
// every heartbeat. Any refusal is an HTTP error answer sent before the
// stream starts, with the TCP reply as its body.
//
// A request with Last-Event-ID: M (what an EventSource sends when it
// reconnects) first gets the key's stored messages newer than M, from a
// message node, then the live ones, each mid once and in order.
//
// Over HTTP/1 the request's connection is taken over from net/http
// (hijacked) once its parameters are checked, so an SSE subscriber costs
// what a WebSocket one does: a conn, one goroutine that reads, and a writer
// only while there is something to write. The stream has no length and no
// chunked encoding: it ends when the connection closes. Over HTTP/2 (TLS
// with h2) it cannot be taken over; the handler then keeps the stream
// (sse_stream.go).

// The SSE comment sent every heartbeat seconds.
var sseBeatFrame = []byte(api.SSEHeartbeat)

// serveSSE answers GET /sse.
func (c *Comet) serveSSE(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if !c.checkOrigin(r) || !headerSafe(origin) {
		c.stats.refused.Add(1)
		sseHTTPError(w, http.StatusForbidden, "origin not allowed\r\n")
		return
	}
	h := w.Header()
	if origin != "" {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Vary", "Origin")
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodOptions: // a CORS preflight, should a browser send one
		h.Set("Access-Control-Allow-Methods", "GET")
		h.Set("Access-Control-Allow-Headers", "Last-Event-ID, Cache-Control")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, OPTIONS")
		sseHTTPError(w, http.StatusMethodNotAllowed, "method not allowed\r\n")
		return
	}
	if err := connlimit.Refusal(r.Context()); err != nil {
		// Over the per-address limits, as for WebSocket: refused before
		// the stream; the limiter logged and counted it.
		h.Set("Connection", "close")
		h.Set("Retry-After", "1")
		sseHTTPError(w, http.StatusTooManyRequests, err.Error()+"\r\n")
		return
	}
	q := r.URL.Query()
	req, err := api.CheckSubscribe(q.Get("key"), q.Get("heartbeat"), q.Get("token"), q.Get("ver"))
	last, okLast := parseLastEventID(r.Header.Values(api.LastEventIDHeader))
	if err != nil || !okLast {
		c.refuse()
		sseHTTPError(w, replyParam.status, string(replyParam.tcp))
		return
	}
	if hj, ok := w.(http.Hijacker); ok && r.ProtoMajor == 1 {
		c.serveSSEHijacked(hj, r, req, last, origin)
		return
	}
	c.serveSSEStream(w, r, req, last)
}

// serveSSEHijacked runs a checked SSE request over HTTP/1: comet takes the
// connection over and writes the response itself.
func (c *Comet) serveSSEHijacked(hj http.Hijacker, r *http.Request, req api.Subscribe, last int64, origin string) {
	nc, brw, err := hj.Hijack()
	if err != nil {
		c.log.Debug("sse: taking over the connection failed", "addr", r.RemoteAddr, "err", err)
		return
	}
	pipelined := brw.Reader.Buffered() > 0
	cn := newConn(c, nc, protoSSE)
	cn.holding = true
	if !c.conns.add(cn, &c.wg) {
		nc.Close()
		return
	}
	c.stats.opened(cn)
	c.stats.sseAccepted.Add(1)
	_ = nc.SetDeadline(time.Time{}) // net/http's deadlines no longer apply
	c.setSockOpts(nc)
	cors := ""
	if origin != "" {
		cors = "Access-Control-Allow-Origin: " + origin + "\r\nVary: Origin\r\n"
	}
	if pipelined { // the client sent more than the request: not a stream client
		cn.replyAndClose(rawHTTPError(replyParam, cors))
		c.refuse()
		c.finish(cn)
		return
	}
	stored, refused := c.subscribeSSE(cn, req, last)
	if refused != nil {
		cn.replyAndClose(rawHTTPError(*refused, cors))
		c.finish(cn)
		return
	}
	c.startSSE(cn, sseHeader(cors), stored, last)
	go readSSE(cn, c.sseBeatEvery(time.Duration(req.Heartbeat)*time.Second))
}

// serveSSEStream runs a checked SSE request whose connection cannot be
// taken over (HTTP/2, where TLS negotiated it): the response goes through
// net/http, and this handler stays until the stream ends.
func (c *Comet) serveSSEStream(w http.ResponseWriter, r *http.Request, req api.Subscribe, last int64) {
	sc := newStreamConn(w, r)
	defer sc.release()
	cn := newConn(c, sc, protoSSE)
	cn.holding = true
	if !c.conns.add(cn, &c.wg) {
		sseHTTPError(w, http.StatusServiceUnavailable, "comet is stopping\r\n")
		return
	}
	c.stats.opened(cn)
	c.stats.sseAccepted.Add(1)
	stored, refused := c.subscribeSSE(cn, req, last)
	if refused != nil {
		sseHTTPError(w, refused.status, string(refused.tcp))
		c.finish(cn)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	c.startSSE(cn, nil, stored, last)
	readSSE(cn, c.sseBeatEvery(time.Duration(req.Heartbeat)*time.Second))
}

// replyStorage is the SSE refusal of a resume whose stored messages could
// not be read.
var replyStorage = reply{tcp: []byte("storage unavailable\r\n"), status: http.StatusServiceUnavailable}

// subscribeSSE subscribes cn and, for a resume (last >= 0), reads the
// stored messages after last. It returns them, or the refusal to answer.
func (c *Comet) subscribeSSE(cn *conn, req api.Subscribe, last int64) ([]*api.Message, *reply) {
	if refused := c.subscribe(cn, req); refused != nil {
		return nil, refused
	}
	if last < 0 {
		return nil, nil
	}
	stored, err := c.storedSince(req.Key, last)
	if err != nil {
		c.log.Warn("sse: cannot read the stored messages to resume from", "key", req.Key, "last_event_id", last, "err", err)
		return nil, &replyStorage
	}
	return stored, nil
}

// sseBeatEvery is how often an SSE connection gets its heartbeat comment:
// every heartbeat, or every c.sseBeat when a test sets it.
func (c *Comet) sseBeatEvery(hb time.Duration) time.Duration {
	if c.sseBeat > 0 {
		return c.sseBeat
	}
	return hb
}

// parseLastEventID reads the Last-Event-ID header: absent is -1 (no
// resume); otherwise one whole number of at most 19 digits (a mid, or 0 for
// every stored message). Anything else is a parameter error.
func parseLastEventID(values []string) (int64, bool) {
	switch len(values) {
	case 0:
		return -1, true
	case 1:
	default:
		return 0, false
	}
	s := strings.TrimSpace(values[0])
	if s == "" {
		return -1, true
	}
	if len(s) > 19 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// headerSafe reports whether s can be echoed into a response header.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// sseHTTPError answers an SSE request that is refused before its
// connection is taken over.
func sseHTTPError(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// rawHTTPError is the HTTP error answer of rep, written on a connection
// taken over from net/http.
func rawHTTPError(rep reply, cors string) []byte {
	return []byte("HTTP/1.1 " + strconv.Itoa(rep.status) + " " + http.StatusText(rep.status) + "\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n" + cors +
		"Content-Length: " + strconv.Itoa(len(rep.tcp)) + "\r\nConnection: close\r\n\r\n" + string(rep.tcp))
}

// sseHeader is the response header of a stream. X-Accel-Buffering keeps
// nginx from buffering it whatever its proxy_buffering says.
func sseHeader(cors string) []byte {
	return []byte("HTTP/1.1 200 OK\r\n" +
		"Content-Type: text/event-stream\r\n" +
		"Cache-Control: no-cache, no-store\r\n" +
		"X-Accel-Buffering: no\r\n" + cors +
		"Connection: close\r\n\r\n")
}

// errStoredRead is a resume whose stored messages could not be read.
var errStoredRead = errors.New("reading the stored messages")

// storedSince returns key's stored messages newer than mid, in ascending
// mid order, from a message node.
func (c *Comet) storedSince(key string, mid int64) ([]*api.Message, error) {
	var resp api.MessageGetResp
	args := &api.MessageGetPrivateArgs{Key: key, MsgId: mid}
	if err := c.callStore(c.ctx, api.MessageGetPrivate, args, &resp); err != nil {
		return nil, errors.Join(errStoredRead, err)
	}
	return resp.Msgs, nil
}

// startSSE ends the holding of a subscribed SSE connection: it queues the
// response header (when comet writes it itself), what subscribe queued (":+h"), the stored messages newer
// than last, then the live messages that came meanwhile less those already
// among the stored ones (same mid), and starts the writer. From then on
// messages are queued as on any other connection, except a private one
// whose mid is at or below the newest sent from the store: a push that
// stored it before the read may deliver it only after this.
func (c *Comet) startSSE(cn *conn, header []byte, stored []*api.Message, last int64) {
	var resumed [][]byte
	newest := last // private mids at or below it are not sent again
	for _, sm := range stored {
		if sm == nil || sm.MsgId <= newest {
			continue
		}
		// An event's data is one line: compact what was stored (a 1.0.5
		// node stored the JSON as web received it), and send what is not
		// JSON at all as a JSON string, as web's msg/get does.
		body, err := compactJSON(sm.Msg)
		if err != nil {
			body, _ = json.Marshal(string(sm.Msg))
		}
		m := &message{msg: body, mid: sm.MsgId, gid: api.PrivateGroupId}
		resumed = append(resumed, m.frame(protoSSE, cn.oldForm))
		newest = sm.MsgId
	}
	cn.mu.Lock()
	if cn.closed {
		cn.mu.Unlock()
		return
	}
	frames := make([][]byte, 0, 1+len(cn.queue)+len(resumed)+len(cn.held))
	if header != nil {
		frames = append(frames, header)
	}
	frames = append(frames, cn.queue...)
	frames = append(frames, resumed...)
	kept := 0
	for _, h := range cn.held {
		if h.gid == api.PrivateGroupId && h.mid <= newest {
			continue // sent from the store already
		}
		frames = append(frames, h.frame)
		kept++
	}
	cn.msgs += len(resumed) + kept
	cn.queue, cn.held, cn.holding = frames, nil, false
	cn.floor = newest
	cn.writing = true
	cn.mu.Unlock()
	c.stats.resumed.Add(int64(len(resumed)))
	c.stats.framesQueued.Add(int64(len(resumed))) // the held ones were counted by deliver
	c.wg.Add(1)                                   // the handler, still running, is counted in conns
	go cn.writeLoop()
}

// readSSE owns a subscribed SSE connection. The client sends nothing on it:
// any byte, the end of the stream or an error ends the connection. Every
// beat of silence it queues the heartbeat comment, which also finds a
// client that is gone without a word (the write fails).
func readSSE(cn *conn, beat time.Duration) {
	defer cn.comet.finish(cn)
	for {
		_ = cn.nc.SetReadDeadline(time.Now().Add(beat))
		_, err := cn.nc.Read(cn.rbuf[:])
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			return
		}
		if !cn.send(sseBeatFrame) {
			return
		}
		cn.comet.stats.heartbeats.Add(1)
	}
}
