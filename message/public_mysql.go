package message

import (
	"context"
	"gopush/api"
)

// SavePublic keeps one public message, then drops the expired ones and
// those older than the newest public.store.
func (r *mysqlRooms) SavePublic(ctx context.Context, e Entry) error {
	s := r.ms.shard(r.pubKey)
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO public_msg (mid, ttl, msg) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE ttl = VALUES(ttl), msg = VALUES(msg)`,
		e.MsgId, e.Expire, []byte(e.Msg))
	if err != nil {
		return wrapTable(s, err)
	}
	// Trimming is housekeeping: the message is kept, so a failure here is
	// only logged (the next save trims again).
	rows, err := s.db.QueryContext(ctx, `SELECT mid FROM public_msg ORDER BY mid DESC LIMIT 1 OFFSET ?`, r.pubStore-1)
	var oldest []int64
	if err == nil {
		oldest, err = scanMids(rows)
	}
	if err == nil && len(oldest) == 1 {
		_, err = s.db.ExecContext(ctx, `DELETE FROM public_msg WHERE mid < ? OR ttl <= ?`, oldest[0], r.ms.now().Unix())
	}
	if err != nil {
		r.ms.log.Warn("trimming public messages failed", "shard", s.name, "err", s.wrap(err))
	}
	return nil
}

// GetPublic returns the newest public.store unexpired public messages with
// a mid above after, ascending, with GroupId 1.
func (r *mysqlRooms) GetPublic(ctx context.Context, after int64) ([]*api.Message, error) {
	s := r.ms.shard(r.pubKey)
	rows, err := s.db.QueryContext(ctx,
		`SELECT mid, msg FROM public_msg WHERE mid > ? AND ttl > ? ORDER BY mid DESC LIMIT ?`,
		after, r.ms.now().Unix(), r.pubStore)
	if err != nil {
		return nil, wrapTable(s, err)
	}
	return s.scanNewest(rows, api.PublicGroupId)
}
