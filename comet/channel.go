package comet

import "time"

// channel is the state comet keeps for one key: its connections and the
// tokens that may subscribe to it. It is guarded by its bucket's lock.
// A channel exists only while it has a connection or a live token
// (docs/protocol.md §9.2); the bucket deletes it otherwise.
type channel struct {
	// conns is copy-on-write: a new slice replaces it on every change, so
	// that a push can take the slice under the lock and use it after.
	conns  []*conn
	tokens tokens
}

func (ch *channel) addConn(c *conn) {
	next := make([]*conn, len(ch.conns), len(ch.conns)+1)
	copy(next, ch.conns)
	ch.conns = append(next, c)
}

// removeConn removes c and reports whether it was there.
func (ch *channel) removeConn(c *conn) bool {
	for i, x := range ch.conns {
		if x != c {
			continue
		}
		if len(ch.conns) == 1 {
			ch.conns = nil
			return true
		}
		next := make([]*conn, 0, len(ch.conns)-1)
		next = append(next, ch.conns[:i]...)
		ch.conns = append(next, ch.conns[i+1:]...)
		return true
	}
	return false
}

// unused reports whether the channel can be freed at now.
func (ch *channel) unused(now time.Time) bool {
	if len(ch.conns) > 0 {
		return false
	}
	ch.tokens.sweep(now)
	return len(ch.tokens) == 0
}
