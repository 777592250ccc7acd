package comet

import (
	"gopush/api"
	"time"
)

// heartbeatGrace is how long past its heartbeat a client may stay silent
// before comet closes the connection (docs/protocol.md §2.1).
const heartbeatGrace = 5 * time.Second

// writeTimeoutFor is how long one write to a subscribed client may take: as
// long as the client may stay silent. A client that has not read for that
// long is treated as gone.
func writeTimeoutFor(heartbeat time.Duration) time.Duration { return heartbeat + heartbeatGrace }

// subscribe adds cn to the channel of req.Key. It returns nil on success,
// after queueing "+h", or the error reply to send before closing:
//
//	-n  the ring gives the key to another comet
//	-a  auth is on and the token is not a live token of the key
//	-c  the key already has maxsubscriber connections; the new connection is
//	    refused (the connections already there are kept, since they have done
//	    nothing wrong, and a client that reconnects in a loop cannot push
//	    them out)
func (c *Comet) subscribe(cn *conn, req api.Subscribe) *reply {
	cn.key = req.Key
	cn.oldForm = req.Version == ""
	hb := time.Duration(req.Heartbeat) * time.Second
	cn.readTimeout = hb + heartbeatGrace
	cn.writeTimeout = writeTimeoutFor(hb)
	auth := c.cfg.Channel.Auth
	max := c.cfg.Channel.MaxSubscriber
	now := time.Now()
	// A signed token is checked before the channel's lock is taken (the
	// signature costs tens of microseconds); it needs no state.
	signed := c.verifier != nil
	signedOK := signed && auth && c.verifier.verify(req.Key, req.Token)
	var refused *reply
	c.hub.add(cn, func(ch *channel) bool {
		switch {
		case !c.ring.owns(req.Key) || c.lostW.lost.Load():
			refused = &replyNotOwner
		case auth && signed && !signedOK:
			refused = &replyAuth
		case auth && !signed && (ch == nil || !ch.tokens.use(req.Token, now)):
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
		switch refused {
		case &replyNotOwner:
			c.stats.refusedNotOwner.Add(1)
		case &replyAuth:
			c.stats.refusedAuth.Add(1)
		case &replyChannel:
			c.stats.refusedChannel.Add(1)
		}
		return refused
	}
	cn.subscribed = true
	c.stats.subsAdded.Add(1)
	c.stats.subscribes.Add(1)
	cn.send(replyOK.frame(cn.proto))
	return nil
}

// refuse counts a parameter error and returns its reply.
func (c *Comet) refuse() *reply {
	c.stats.refused.Add(1)
	c.stats.refusedParam.Add(1)
	return &replyParam
}
