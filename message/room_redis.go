package message

import (
	"context"

	"github.com/gomodule/redigo/redis"

	"gopush/conf"
)

// joinScript adds keys to a room's set unless the set would then hold more
// than ARGV[1] members; it adds all or nothing, atomically, so that two
// joins at once cannot pass the limit together. It answers {added?, members
// before, keys that were new}.
//
// KEYS[1] the room's set; ARGV[1] the limit; ARGV[2..] distinct keys.
var joinScript = redis.NewScript(1, `
local has = redis.call('SCARD', KEYS[1])
local add = 0
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then add = add + 1 end
end
if has + add > tonumber(ARGV[1]) then
  return {0, has, add}
end
for i = 2, #ARGV, 1000 do
  redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return {1, has, add}
`)

// roomChunk is how many keys one SREM carries.
const roomChunk = 1000

// redisRooms keeps rooms as Redis sets named room.prefix + room id, each on
// the shard of the RedisStorage ring that the room id hashes to, and the
// public messages in one sorted set (public_redis.go).
type redisRooms struct {
	rs       *RedisStorage
	prefix   string
	max      int
	pubKey   string
	pubStore int
}

func newRedisRooms(rs *RedisStorage, cfg *conf.Message) *redisRooms {
	return &redisRooms{
		rs:       rs,
		prefix:   cfg.Room.Prefix,
		max:      cfg.Room.Max,
		pubKey:   cfg.Public.Key,
		pubStore: cfg.Public.Store,
	}
}

// ShardOfRoom returns the name of the shard that holds room.
func (rs *RedisStorage) ShardOfRoom(room string) string { return rs.ring.Get(room) }

// conn returns a connection to the shard of room and the Redis key of its
// set.
func (r *redisRooms) conn(ctx context.Context, room string) (redis.Conn, *redisShard, string, error) {
	s := r.rs.roomShard(room)
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return nil, s, "", s.wrap(err)
	}
	return c, s, r.prefix + room, nil
}

func (r *redisRooms) Join(ctx context.Context, room string, keys []string) error {
	if len(keys) > r.max {
		return &roomFullError{room: room, add: len(keys), max: r.max}
	}
	c, s, set, err := r.conn(ctx, room)
	if err != nil {
		return err
	}
	defer c.Close()
	args := make([]any, 0, len(keys)+2)
	args = append(args, set, r.max)
	for _, k := range keys {
		args = append(args, k)
	}
	res, err := redis.Int64s(joinScript.DoContext(ctx, c, args...))
	if err != nil {
		return s.wrap(err)
	}
	if len(res) != 3 {
		return s.wrap(errBadScriptReply)
	}
	if res[0] == 0 {
		return &roomFullError{room: room, has: int(res[1]), add: int(res[2]), max: r.max}
	}
	return nil
}

func (r *redisRooms) Leave(ctx context.Context, room string, keys []string) error {
	c, s, set, err := r.conn(ctx, room)
	if err != nil {
		return err
	}
	defer c.Close()
	n := 0
	for from := 0; from < len(keys); from += roomChunk {
		part := keys[from:min(from+roomChunk, len(keys))]
		args := make([]any, 0, len(part)+1)
		args = append(args, set)
		for _, k := range part {
			args = append(args, k)
		}
		if err := c.Send("SREM", args...); err != nil {
			return s.wrap(err)
		}
		n++
	}
	if err := c.Flush(); err != nil {
		return s.wrap(err)
	}
	for ; n > 0; n-- {
		if _, err := redis.ReceiveContext(c, ctx); err != nil {
			return s.wrap(err)
		}
	}
	return nil
}

func (r *redisRooms) Keys(ctx context.Context, room string) ([]string, error) {
	c, s, set, err := r.conn(ctx, room)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	keys, err := redis.Strings(redis.DoContext(c, ctx, "SMEMBERS", set))
	if err != nil {
		return nil, s.wrap(err)
	}
	return keys, nil
}

func (r *redisRooms) Del(ctx context.Context, room string) error {
	c, s, set, err := r.conn(ctx, room)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := redis.DoContext(c, ctx, "DEL", set); err != nil {
		return s.wrap(err)
	}
	return nil
}
