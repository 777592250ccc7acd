package client

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"gopush/api"
)

// wsConn speaks comet's WebSocket protocol (docs/protocol.md §2.2): one text frame per
// reply or message, no $ framing.
type wsConn struct {
	addr string
	conn *websocket.Conn
}

func dialWebSocket(ctx context.Context, cfg Config, addr string) (*wsConn, error) {
	u := wsURL(addr, cfg.TLS != nil) + "?" + subscription(cfg).Query().Encode()
	d := websocket.Dialer{HandshakeTimeout: writeTimeout, TLSClientConfig: cfg.TLS}
	conn, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("comet %s: websocket handshake: HTTP %s: %w", addr, resp.Status, err)
		}
		return nil, fmt.Errorf("comet %s: %w", addr, err)
	}
	conn.SetReadLimit(api.MaxFrame)
	w := &wsConn{addr: addr, conn: conn}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(writeTimeout)
	}
	m, err := w.read(deadline)
	if err == nil && m != nil {
		err = fmt.Errorf("a message came before +h")
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("comet %s: subscribe: %w", addr, err)
	}
	return w, nil
}

// wsURL is the subscribe URL without its query: web answers host:port, or
// (p=3, comets behind nginx, docs/protocol.md §2.4) a full wss:// URL used as it is.
func wsURL(addr string, overTLS bool) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	if overTLS {
		return "wss://" + addr + "/sub"
	}
	return "ws://" + addr + "/sub"
}

func (w *wsConn) next(timeout time.Duration) (*Message, error) {
	m, err := w.read(time.Now().Add(timeout))
	if err != nil {
		return nil, fmt.Errorf("comet %s: %w", w.addr, err)
	}
	return m, nil
}

func (w *wsConn) read(deadline time.Time) (*Message, error) {
	w.conn.SetReadDeadline(deadline)
	typ, b, err := w.conn.ReadMessage()
	if err != nil {
		return nil, err
	}
	if typ != websocket.TextMessage {
		return nil, fmt.Errorf("unexpected binary frame of %d bytes", len(b))
	}
	switch kind, body := api.ParseWSText(b); kind {
	case api.FrameOK:
		return nil, nil
	case api.FrameError:
		return nil, &ServerError{Comet: w.addr, Code: body[0]}
	default:
		return decodeMessage(body)
	}
}

func (w *wsConn) heartbeat() error {
	w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return w.conn.WriteMessage(websocket.TextMessage, []byte(api.Heartbeat))
}

func (w *wsConn) close() error { return w.conn.Close() }
