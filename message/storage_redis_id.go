package message

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"

	"gopush/api"
)

// saveIdHead is the part of the save-under-an-id script that runs before
// the save (docs/protocol.md §7.1, "Push ids"). In one atomic step it
//
//  1. refuses the save when Redis's own clock (TIME) is past the caller's
//     deadline ARGV[8] (unix microseconds, 0: none): a save that reaches
//     Redis after its caller gave up (the server was frozen, or the link
//     held it) stores nothing;
//  2. looks the id up (KEYS[2], in database ARGV[9], redis.roomdb, where no
//     subscriber key can name it): when it is there, stores nothing and
//     answers the mid it holds;
//  3. otherwise saves the message as saveScript does (in database ARGV[10],
//     the subscriber keys' 0), unless ARGV[7] is "0" (expire 0: record the
//     id only), and only then records the id with the mid for ARGV[6]
//     seconds, so that a save that fails records nothing.
//
// It answers {"late"}, {"dup", first mid}, or {"new", mid, trimmed}. Mids
// stay strings: Lua numbers are doubles and mids are above 2^53.
//
// KEYS: the key's set, the id's key. ARGV[1..5] as saveScript; 6 seconds
// the id lives; 7 "1" to store the message; 8 deadline; 9 id database; 10
// key database.
const saveIdHead = `
if redis.replicate_commands then redis.replicate_commands() end
local deadline = tonumber(ARGV[8])
if deadline > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000000 + tonumber(t[2]) > deadline then
    return {'late'}
  end
end
redis.call('SELECT', ARGV[9])
local first = redis.call('GET', KEYS[2])
if first then
  return {'dup', first}
end
local trimmed = 0
if ARGV[7] == '1' then
  redis.call('SELECT', ARGV[10])
  trimmed = save()
  redis.call('SELECT', ARGV[9])
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[6])
return {'new', ARGV[1], trimmed}
`

// saveIdScript and saveIdNoTTLScript are saveIdHead around saveLua and
// saveNoTTLLua (redis.keyttl on and off): the save itself is the same
// code as without an id.
var (
	saveIdScript      = redis.NewScript(2, "local function save()\n"+saveLua+"\nend\n"+saveIdHead)
	saveIdNoTTLScript = redis.NewScript(2, "local function save()\n"+saveNoTTLLua+"\nend\n"+saveIdHead)
)

// pushIdPrefix starts the name of a push id's key, in database
// redis.roomdb: pushIdPrefix + <bytes of the key> + ":" + key + ":" + id.
// The length makes the name of a (key, id) pair unique.
const pushIdPrefix = "gopush:pushid:"

// pushIdKey is the name of the record of id for key.
func pushIdKey(key, id string) string {
	return pushIdPrefix + strconv.Itoa(len(key)) + ":" + key + ":" + id
}

// SaveId stores e and records id for e.Key in one script, or answers the
// first mid when the id is recorded already (idStorage).
func (rs *RedisStorage) SaveId(ctx context.Context, e Entry, id string, idTTL time.Duration, deadline int64) (int64, bool, error) {
	script := saveIdScript
	if rs.save == saveNoTTLScript {
		script = saveIdNoTTLScript
	}
	return rs.saveIdOn(ctx, rs.shard(e.Key), script, 0, rs.store, e, pushIdKey(e.Key, id), idTTL, deadline)
}

// SavePublicId keeps a public message under push id in the public set, as
// SaveId does for a key (publicIdStorage). The set and the id's record
// are both in database redis.roomdb.
func (r *redisRooms) SavePublicId(ctx context.Context, e Entry, id string, idTTL time.Duration, deadline int64) (int64, bool, error) {
	e.Key = r.pubKey
	return r.rs.saveIdOn(ctx, r.rs.roomShard(r.pubKey), saveIdScript, r.rs.idDB, r.pubStore, e,
		pushIdKey(r.pubKey, id), idTTL, deadline)
}

// boundedConn is a connection whose Do is bounded by a timeout (the
// script's EVALSHA, and the EVAL after a NOSCRIPT), without a goroutine
// per command as redigo's DoContext starts.
type boundedConn struct {
	redis.Conn
	timeout time.Duration
}

func (c boundedConn) Do(cmd string, args ...any) (any, error) {
	return redis.DoWithTimeout(c.Conn, c.timeout, cmd, args...)
}

// saveIdOn runs script (saveIdScript or saveIdNoTTLScript) on shard s for
// e, whose set lives in database keyDB and keeps store members, with the
// id recorded as idKey.
func (rs *RedisStorage) saveIdOn(ctx context.Context, s *redisShard, script *redis.Script, keyDB, store int,
	e Entry, idKey string, idTTL time.Duration, deadline int64) (int64, bool, error) {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return 0, false, s.wrap(err)
	}
	defer conn.Close()
	timeout, err := s.budget(ctx)
	if err != nil {
		return 0, false, s.wrap(err)
	}
	tc := boundedConn{Conn: conn, timeout: timeout}
	now := rs.now().Unix()
	args := []any{e.Key, idKey}
	if e.Expire > 0 {
		save := rs.saveArgs(e, now) // key, mid, member, store, ttl, now
		save[3] = store
		args = append(args, save[1:]...)
		args = append(args, save[4], "1") // the id lives as long as the message
	} else {
		ttl := max(int64((idTTL+time.Second-1)/time.Second), 1)
		args = append(args, e.MsgId, "", store, 1, now, ttl, "0")
	}
	var dlMicros int64
	if deadline > 0 {
		dlMicros = deadline / int64(time.Microsecond)
	}
	args = append(args, dlMicros, rs.idDB, keyDB)
	vals, err := redis.Values(script.Do(tc, args...))
	if err != nil {
		return 0, false, s.wrap(err)
	}
	status, _ := redis.String(vals[0], nil)
	switch {
	case status == "late":
		return 0, false, s.wrap(api.ErrDeadlinePassed)
	case (status == "dup" || status == "new") && len(vals) >= 2:
		mid, err := redis.Int64(vals[1], nil)
		if err != nil {
			return 0, false, s.wrap(fmt.Errorf("push id record %q holds %q, not a mid", idKey, vals[1]))
		}
		if status == "dup" {
			return mid, true, nil
		}
		if err := s.acknowledge(conn); err != nil {
			return 0, false, s.wrap(err)
		}
		if len(vals) >= 3 {
			if n, ok := vals[2].(int64); ok {
				rs.met.Load().trimmed(s.name, int(n))
			}
		}
		return mid, false, nil
	}
	return 0, false, s.wrap(fmt.Errorf("unexpected answer %v of the save-with-id script", vals))
}
