package comet

import (
	"errors"
	"gopush/api"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"gopush/internal/connlimit"
)

// maxWSRead is the largest frame payload comet reads from a WebSocket
// client. The only things a client sends are the heartbeat "h", pings and a
// close; a larger frame closes the connection without being read.
const maxWSRead = 125

// WebSocket opcodes (RFC 6455 §5.2).
const (
	wsText  = 0x1
	wsClose = 0x8
	wsPing  = 0x9
	wsPong  = 0xA
)

// errWSFrame is a client frame comet does not accept: unmasked, fragmented,
// with extension bits, or too large.
var errWSFrame = errors.New("websocket frame refused")

// newUpgrader builds the WebSocket upgrader. gorilla/websocket does the
// HTTP upgrade only: comet writes its frames itself (frame.go) and reads the
// few small frames clients send itself (readWSFrame), so the upgrader's
// buffers are small and no connection keeps them.
func (c *Comet) newUpgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		HandshakeTimeout: c.cfg.Channel.Handshake.Timeout.D(),
		ReadBufferSize:   256,
		WriteBufferSize:  256,
		WriteBufferPool:  &sync.Pool{},
		CheckOrigin:      c.checkOrigin,
	}
}

// checkOrigin applies channel.origins: empty accepts any origin (as 1.0.5
// did, for the JavaScript SDK served from other sites); otherwise the
// request's Origin must equal one entry (case-insensitive), or an entry is
// "*". Requests without an Origin header do not come from a browser and are
// accepted.
func (c *Comet) checkOrigin(r *http.Request) bool {
	allowed := c.cfg.Channel.Origins
	origin := r.Header.Get("Origin")
	if len(allowed) == 0 || origin == "" {
		return true
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(a, origin) {
			return true
		}
	}
	return false
}

// serveWS upgrades GET /sub?key=K&heartbeat=S&token=T&ver=V (docs/protocol.md §2.2),
// runs the subscribe checks, and hands a subscribed connection to a new
// goroutine that reads heartbeats. net/http's per-connection state (the
// request, its buffers, a deep stack) is then freed when this returns; see
// serveTCP for why the reader gets a fresh goroutine.
func (c *Comet) serveWS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := connlimit.Refusal(r.Context()); err != nil {
		// Over the per-address limits (limit.peraddr, limit.rate): refused
		// before the upgrade; the limiter logged and counted it.
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	q := r.URL.Query()
	ws, err := c.upgrader.Upgrade(w, r, nil)
	if err != nil {
		c.log.Debug("websocket upgrade failed", "addr", r.RemoteAddr, "err", err)
		return // the upgrader has answered with an HTTP error
	}
	cn := newConn(c, ws.NetConn(), protoWS)
	if !c.conns.add(cn, &c.wg) {
		ws.NetConn().Close()
		return
	}
	c.stats.opened(cn)
	c.stats.wsAccepted.Add(1)
	c.setSockOpts(cn.nc)
	req, err := api.CheckSubscribe(q.Get("key"), q.Get("heartbeat"), q.Get("token"), q.Get("ver"))
	if err != nil {
		cn.replyAndClose(c.refuse().ws)
		c.finish(cn)
		return
	}
	if refused := c.subscribe(cn, req); refused != nil {
		cn.replyAndClose(refused.ws)
		c.finish(cn)
		return
	}
	go readWS(cn)
}

// readWS owns a subscribed WebSocket connection: it answers each text frame
// "h" with "+h" and each ping with a pong, until the client is silent for
// heartbeat + 5 s, sends anything else (a binary frame, other text, a frame
// over maxWSRead bytes, a close), or goes away.
//
// comet reads these frames itself rather than through gorilla/websocket,
// whose read path is deep enough to double the stack of every idle
// connection (see serveTCP).
func readWS(cn *conn) {
	defer cn.comet.finish(cn)
	for {
		_ = cn.nc.SetReadDeadline(time.Now().Add(cn.readTimeout))
		op, payload, err := readWSFrame(cn)
		if err != nil {
			return
		}
		switch {
		case op == wsText && len(payload) == 1 && payload[0] == 'h':
			cn.comet.stats.heartbeats.Add(1)
			cn.send(replyOK.ws)
		case op == wsPing:
			cn.send(append([]byte{0x80 | wsPong, byte(len(payload))}, payload...))
		case op == wsPong:
		default:
			return
		}
	}
}

// readWSFrame reads one client frame: final, masked, no extension bits,
// payload at most maxWSRead bytes. It waits for the frame with a plain read
// into the connection's own byte, so that an idle connection parks on a
// shallow stack and holds no buffer; the rest is read into a buffer that
// lives for this frame only. A refused header is refused before anything
// more is read.
func readWSFrame(cn *conn) (op byte, payload []byte, err error) {
	if _, err := cn.nc.Read(cn.rbuf[:]); err != nil {
		return 0, nil, err
	}
	b0 := cn.rbuf[0]
	if _, err := io.ReadFull(cn.nc, cn.rbuf[:]); err != nil {
		return 0, nil, err
	}
	b1 := cn.rbuf[0]
	n := int(b1 & 0x7f)
	if b0&0x80 == 0 || b0&0x70 != 0 || b1&0x80 == 0 || n > maxWSRead {
		return 0, nil, errWSFrame
	}
	buf := make([]byte, 4+n)
	if _, err := io.ReadFull(cn.nc, buf); err != nil {
		return 0, nil, err
	}
	mask, payload := buf[:4], buf[4:]
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return b0 & 0x0f, payload, nil
}
