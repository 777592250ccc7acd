package comet

import (
	"gopush/api"
	"strconv"
	"time"
)

// Limits on a subscribe request (SPEC §2.1). Keys are at most 64 bytes, the
// width of the MySQL skey column, so that any key comet accepts can also be
// stored.
const (
	maxKeyLen    = api.MaxKeyLen
	minHeartbeat = 30    // seconds
	maxHeartbeat = 86400 // seconds; a larger value is refused as a parameter error
	// heartbeatGrace is how long past its heartbeat a client may stay
	// silent before comet closes the connection.
	heartbeatGrace = 5 * time.Second
)

// subRequest is a subscribe request, from TCP arguments or a WebSocket query.
type subRequest struct {
	key       string
	heartbeat time.Duration
	token     string
	version   string // empty: the client wants the old message form
}

// parseSub checks the arguments common to both protocols. It reports false
// for a parameter error (-p).
func parseSub(key, heartbeat, token, version string) (subRequest, bool) {
	if key == "" || len(key) > maxKeyLen {
		return subRequest{}, false
	}
	hb, err := strconv.Atoi(heartbeat)
	if err != nil || hb < minHeartbeat || hb > maxHeartbeat {
		return subRequest{}, false
	}
	return subRequest{key: key, heartbeat: time.Duration(hb) * time.Second, token: token, version: version}, true
}

// subscribe adds cn to the channel of req.key. It returns nil on success,
// after queueing "+h", or the error reply to send before closing:
//
//	-n  the ring gives the key to another comet
//	-a  auth is on and the token is not a live token of the key
//	-c  the key already has maxsubscriber connections; the new connection is
//	    refused (the connections already there are kept, since they have done
//	    nothing wrong, and a client that reconnects in a loop cannot push
//	    them out)
func (c *Comet) subscribe(cn *conn, req subRequest) *reply {
	cn.key = req.key
	cn.oldForm = req.version == ""
	cn.timeout = req.heartbeat + heartbeatGrace
	auth := c.cfg.Channel.Auth
	max := c.cfg.Channel.MaxSubscriber
	now := time.Now()
	// A signed token is checked before the channel's lock is taken (the
	// signature costs tens of microseconds); it needs no state.
	signed := c.verifier != nil
	signedOK := signed && auth && c.verifier.verify(req.key, req.token)
	var refused *reply
	c.hub.add(cn, func(ch *channel) bool {
		switch {
		case !c.ring.owns(req.key):
			refused = &replyNotOwner
		case auth && signed && !signedOK:
			refused = &replyAuth
		case auth && !signed && (ch == nil || !ch.tokens.use(req.token, now)):
			refused = &replyAuth
		case ch != nil && len(ch.conns) >= max:
			refused = &replyChannel
		default:
			return true
		}
		return false
	})
	if refused != nil {
		c.stats.refused.Add(1)
		return refused
	}
	cn.subscribed = true
	c.stats.subscribed.Add(1)
	cn.send(replyOK.frame(cn.proto))
	return nil
}

// refuse counts a parameter error and returns its reply.
func (c *Comet) refuse() *reply {
	c.stats.refused.Add(1)
	return &replyParam
}
