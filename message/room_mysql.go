package message

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"

	"gopush/conf"
)

// mysqlRooms keeps rooms in the room_key table and public messages in the
// public_msg table (conf/mysql.sql), a room on the shard of the MySQL ring
// that its id hashes to, the public messages on the shard of public.key.
type mysqlRooms struct {
	ms       *MySQLStorage
	max      int
	pubKey   string
	pubStore int
}

func newMySQLRooms(ms *MySQLStorage, cfg *conf.Message) *mysqlRooms {
	return &mysqlRooms{ms: ms, max: cfg.Room.Max, pubKey: cfg.Public.Key, pubStore: cfg.Public.Store}
}

// joinAttempts is how often a join that lost a deadlock to a concurrent
// join of the same room is tried.
const joinAttempts = 5

// MySQL error numbers handled here.
const (
	mysqlErrNoTable  = 1146 // table doesn't exist
	mysqlErrLockWait = 1205 // lock wait timeout
	mysqlErrDeadlock = 1213 // deadlock found
)

func mysqlErrNum(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// wrapTable wraps err for shard s, pointing at conf/mysql.sql when the
// table is missing (a database set up before rooms existed).
func wrapTable(s *mysqlShard, err error) error {
	if mysqlErrNum(err) == mysqlErrNoTable {
		err = fmt.Errorf("%w (apply conf/mysql.sql to this database)", err)
	}
	return s.wrap(err)
}

// Join counts the room and the keys that are new, and inserts them only
// if the room stays within room.max, in one transaction. Joins of one room
// are serialised by a named lock (GET_LOCK), because two transactions that
// count the same room at once would otherwise deadlock on InnoDB's gap
// locks; a deadlock with a concurrent leave is tried again.
func (r *mysqlRooms) Join(ctx context.Context, room string, keys []string) error {
	if len(keys) > r.max {
		return &roomFullError{room: room, add: len(keys), max: r.max}
	}
	s := r.ms.shard(room)
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.wrap(err)
	}
	defer conn.Close()
	unlock, err := lockRoom(ctx, conn, s, room)
	if err != nil {
		return err
	}
	defer unlock()
	for range joinAttempts {
		err = r.joinOnce(ctx, conn, room, keys)
		if n := mysqlErrNum(err); n != mysqlErrDeadlock && n != mysqlErrLockWait {
			break
		}
	}
	var full *roomFullError
	if err == nil || errors.As(err, &full) {
		return err
	}
	return wrapTable(s, err)
}

// roomLockWait is how long a join waits for another join of its room.
const roomLockWait = 5 // seconds

// lockRoom takes the named lock of room on conn and returns the function
// that releases it. A lock that cannot be released for sure takes the
// connection out of the pool, so that no pooled connection keeps it.
func lockRoom(ctx context.Context, conn *sql.Conn, s *mysqlShard, room string) (func(), error) {
	sum := sha1.Sum([]byte(s.addr + "\x00" + room))
	name := "gopush-room:" + hex.EncodeToString(sum[:]) // at most 64 characters
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, ?)`, name, roomLockWait).Scan(&got); err != nil {
		return nil, s.wrap(err)
	}
	if !got.Valid || got.Int64 != 1 {
		return nil, s.wrap(fmt.Errorf("room %q is busy: another join held it for %d s", room, roomLockWait))
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.Background(), backgroundTimeout)
		defer cancel()
		if _, err := conn.ExecContext(rctx, `SELECT RELEASE_LOCK(?)`, name); err != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}, nil
}

func (r *mysqlRooms) joinOnce(ctx context.Context, conn *sql.Conn, room string, keys []string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var has int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM room_key WHERE rid = ? FOR UPDATE`, room).Scan(&has); err != nil {
		return err
	}
	old := 0
	for from := 0; from < len(keys); from += mysqlChunk {
		part := keys[from:min(from+mysqlChunk, len(keys))]
		args := roomArgs(room, part)
		var n int
		q := `SELECT COUNT(*) FROM room_key WHERE rid = ? AND skey IN (` + placeholders(len(part)) + `)`
		if err := tx.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
			return err
		}
		old += n
	}
	add := len(keys) - old
	if has+add > r.max {
		return &roomFullError{room: room, has: has, add: add, max: r.max}
	}
	for from := 0; from < len(keys); from += mysqlChunk {
		part := keys[from:min(from+mysqlChunk, len(keys))]
		var q strings.Builder
		q.WriteString(`INSERT IGNORE INTO room_key (rid, skey) VALUES `)
		args := make([]any, 0, 2*len(part))
		for i, k := range part {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?)")
			args = append(args, room, k)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// roomArgs returns room followed by keys, as query arguments.
func roomArgs(room string, keys []string) []any {
	args := make([]any, 0, len(keys)+1)
	args = append(args, room)
	for _, k := range keys {
		args = append(args, k)
	}
	return args
}

// placeholders returns "?, ?, ..." with n question marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func (r *mysqlRooms) Leave(ctx context.Context, room string, keys []string) error {
	s := r.ms.shard(room)
	for from := 0; from < len(keys); from += mysqlChunk {
		part := keys[from:min(from+mysqlChunk, len(keys))]
		q := `DELETE FROM room_key WHERE rid = ? AND skey IN (` + placeholders(len(part)) + `)`
		if _, err := s.db.ExecContext(ctx, q, roomArgs(room, part)...); err != nil {
			return wrapTable(s, err)
		}
	}
	return nil
}

func (r *mysqlRooms) Keys(ctx context.Context, room string) ([]string, error) {
	s := r.ms.shard(room)
	rows, err := s.db.QueryContext(ctx, `SELECT skey FROM room_key WHERE rid = ? ORDER BY skey`, room)
	if err != nil {
		return nil, wrapTable(s, err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, s.wrap(err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err)
	}
	return keys, nil
}

// Del deletes the room's rows in chunks, so that a large room does not
// hold a long transaction.
func (r *mysqlRooms) Del(ctx context.Context, room string) error {
	s := r.ms.shard(room)
	for {
		res, err := s.db.ExecContext(ctx, `DELETE FROM room_key WHERE rid = ? LIMIT ?`, room, 10*mysqlChunk)
		if err != nil {
			return wrapTable(s, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return s.wrap(err)
		}
		if n < 10*mysqlChunk {
			return nil
		}
	}
}

// scanMids is a helper for queries answering one mid per row.
func scanMids(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var m int64
		if err := rows.Scan(&m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
