package message

import (
	"context"
	"errors"
	"gopush/api"
	"strconv"

	"github.com/gomodule/redigo/redis"
)

// Public messages live in one sorted set, public.key, on the shard that the
// ring picks for that name. Members and scores are those of a private
// message (docs/protocol.md §7: {"msg":..,"expire":..,"mid":..} scored by the mid), the
// set is trimmed to the newest public.store members and its TTL covers the
// longest-lived one: the save script of private messages does all that.

var errBadScriptReply = errors.New("unexpected reply from a script")

func (r *redisRooms) SavePublic(ctx context.Context, e Entry) error {
	e.Key = r.pubKey
	s := r.rs.roomShard(r.pubKey)
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return s.wrap(err)
	}
	defer c.Close()
	now := r.rs.now().Unix()
	ttl := max(e.Expire-now+1, 1)
	if _, err := saveScript.DoContext(ctx, c, r.pubKey, e.MsgId, member(e), r.pubStore, ttl, now); err != nil {
		return s.wrap(err)
	}
	return nil
}

func (r *redisRooms) GetPublic(ctx context.Context, after int64) ([]*api.Message, error) {
	s := r.rs.roomShard(r.pubKey)
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer c.Close()
	// The set holds at most public.store members (trimmed on every save);
	// a few more are asked for in case public.store was lowered since.
	// Scores are doubles: ask down to float64(after) inclusive and compare
	// the exact mids (see RedisStorage.Get).
	vals, err := redis.ByteSlices(redis.DoContext(c, ctx, "ZREVRANGEBYSCORE", r.pubKey, "+inf",
		strconv.FormatInt(after, 10), "WITHSCORES", "LIMIT", 0, r.pubStore+8))
	if err != nil {
		return nil, s.wrap(err)
	}
	out := r.rs.appendLive(nil, s, r.pubKey, vals, after, r.rs.now().Unix())
	for _, m := range out {
		m.GroupId = api.PublicGroupId
	}
	return newestAscending(out, r.pubStore), nil
}
