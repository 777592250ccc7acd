package comet

import "time"

// token is one token accepted for a key (docs/protocol.md §6.5): web adds it
// through CometRPC.New, a subscriber presents it. It expires when unused for
// life, and each use pushes the expiry back by life.
type token struct {
	value   string
	life    time.Duration
	expires time.Time
}

// tokens are the tokens of one key, at most channel.token.max of them.
type tokens []token

// add adds or refreshes value; when the key already has max tokens, the one
// closest to expiring is dropped to make room.
func (ts *tokens) add(value string, life time.Duration, now time.Time, max int) {
	for i := range *ts {
		if (*ts)[i].value == value {
			(*ts)[i].life = life
			(*ts)[i].expires = now.Add(life)
			return
		}
	}
	t := token{value: value, life: life, expires: now.Add(life)}
	if len(*ts) < max {
		*ts = append(*ts, t)
		return
	}
	oldest := 0
	for i := range *ts {
		if (*ts)[i].expires.Before((*ts)[oldest].expires) {
			oldest = i
		}
	}
	(*ts)[oldest] = t
}

// use reports whether value is a live token, and refreshes it if so.
func (ts tokens) use(value string, now time.Time) bool {
	for i := range ts {
		if ts[i].value == value && now.Before(ts[i].expires) {
			ts[i].expires = now.Add(ts[i].life)
			return true
		}
	}
	return false
}

// sweep drops expired tokens.
func (ts *tokens) sweep(now time.Time) {
	live := (*ts)[:0]
	for _, t := range *ts {
		if now.Before(t.expires) {
			live = append(live, t)
		}
	}
	clear((*ts)[len(live):])
	if len(live) == 0 {
		live = nil
	}
	*ts = live
}
