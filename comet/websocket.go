package comet

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// maxWSRead is the largest frame comet reads from a WebSocket client. The
// only thing a client sends is the heartbeat "h"; anything larger closes
// the connection without being buffered.
const maxWSRead = 64

// newUpgrader builds the WebSocket upgrader. Its buffers are small because
// comet reads nothing but heartbeats, and it writes data frames itself
// (frame.go), so the pooled write buffer is only used for the occasional
// control frame and no idle connection holds one.
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

// serveWS upgrades GET /sub?key=K&heartbeat=S&token=T&ver=V (SPEC §2.2),
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
	c.stats.wsConns.Add(1)
	c.stats.wsAccepted.Add(1)
	c.setSockOpts(cn.nc)
	req, ok := parseSub(q.Get("key"), q.Get("heartbeat"), q.Get("token"), q.Get("ver"))
	if !ok {
		cn.writeNow(c.refuse().ws)
		c.finish(cn)
		return
	}
	if refused := c.subscribe(cn, req); refused != nil {
		cn.writeNow(refused.ws)
		c.finish(cn)
		return
	}
	ws.SetReadLimit(maxWSRead)
	go readWS(cn, ws)
}

// readWS owns a subscribed WebSocket connection: it answers each text frame
// "h" with "+h" until the client is silent for heartbeat + 5 s, sends
// anything else (a binary frame, a frame over maxWSRead), or goes away.
func readWS(cn *conn, ws *websocket.Conn) {
	defer cn.comet.finish(cn)
	for {
		_ = ws.SetReadDeadline(time.Now().Add(cn.timeout))
		typ, p, err := ws.ReadMessage()
		if err != nil || typ != websocket.TextMessage || len(p) != 1 || p[0] != 'h' {
			return
		}
		cn.comet.stats.heartbeats.Add(1)
		cn.send(replyOK.ws)
	}
}
