package message

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"gopush/api"
	"gopush/conf"
	"gopush/ketama"
)

// MySQL column limits of private_msg (conf/mysql.sql).
const (
	mysqlMaxKey = api.MaxKeyLen // bytes; skey varchar(64) holds 64 characters, so always 64 bytes
	mysqlMaxMsg = 65535         // msg blob, in bytes
)

// mysqlTimeout is the connect, read and write timeout given to a DSN that
// sets none.
const mysqlTimeout = 5 * time.Second

// mysqlChunk is the most rows one cleaner DELETE or one room statement
// touches.
const mysqlChunk = 500

// mysqlShard is one database of mysql.source.
type mysqlShard struct {
	name  string
	addr  string // host:port/db, without credentials, for errors
	db    *sql.DB
	saves *groupCommit // coalesces concurrent saves into multi-row INSERTs
}

func (s *mysqlShard) wrap(err error) error {
	return fmt.Errorf("mysql shard %s (%s): %w", s.name, s.addr, err)
}

// MySQLStorage keeps messages in the private_msg table (docs/protocol.md §7), sharded
// by a ketama ring over the shard names. A cleaner deletes expired rows
// every mysql.clean.
type MySQLStorage struct {
	ring   *ketama.Ring
	shards map[string]*mysqlShard
	store  int
	log    *slog.Logger
	now    func() time.Time
	met    atomic.Pointer[metrics] // nil: not measured (metrics.go)

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// NewMySQLStorage opens the shards of cfg.MySQL.Source and starts the
// cleaner. Connections are made on first use.
func NewMySQLStorage(cfg *conf.Message, log *slog.Logger) (*MySQLStorage, error) {
	if len(cfg.MySQL.Source) == 0 {
		return nil, errors.New("mysql.source: no shard")
	}
	ms := &MySQLStorage{
		shards: make(map[string]*mysqlShard),
		store:  cfg.Storage.Store,
		log:    log,
		now:    time.Now,
		done:   make(chan struct{}),
	}
	b := ketama.New(ketama.DefaultBase)
	for k, dsn := range cfg.MySQL.Source {
		name, weight, err := conf.ParseShardName(k)
		if err != nil {
			ms.closeDBs()
			return nil, fmt.Errorf("mysql.source: %w", err)
		}
		if _, dup := ms.shards[name]; dup {
			ms.closeDBs()
			return nil, fmt.Errorf("mysql.source: shard name %q is used twice", name)
		}
		mc, err := mysql.ParseDSN(dsn)
		if err != nil {
			ms.closeDBs()
			return nil, fmt.Errorf("mysql.source.%s: %w", k, err)
		}
		if mc.Timeout == 0 {
			mc.Timeout = mysqlTimeout
		}
		if mc.ReadTimeout == 0 {
			mc.ReadTimeout = mysqlTimeout
		}
		if mc.WriteTimeout == 0 {
			mc.WriteTimeout = mysqlTimeout
		}
		mc.Logger = driverLogger{log: log.With("shard", name)}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			ms.closeDBs()
			return nil, fmt.Errorf("mysql.source.%s: %w", k, err)
		}
		db := sql.OpenDB(conn)
		db.SetMaxIdleConns(cfg.MySQL.Idle)
		db.SetMaxOpenConns(cfg.MySQL.Active)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s := &mysqlShard{name: name, addr: mc.Addr + "/" + mc.DBName, db: db}
		s.saves = newGroupCommit(cfg.Storage.Batch, s.wrap, s.flushSaves)
		ms.shards[name] = s
		b.Add(name, weight)
	}
	ms.ring = b.Build()
	ms.wg.Add(1)
	go ms.cleaner(cfg.MySQL.Clean.D())
	return ms, nil
}

// driverLogger sends the MySQL driver's own messages to slog.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) { l.log.Debug("mysql driver: " + fmt.Sprint(v...)) }

func (ms *MySQLStorage) closeDBs() {
	for _, s := range ms.shards {
		s.db.Close()
	}
}

// ShardOf returns the name of the shard that holds key.
func (ms *MySQLStorage) ShardOf(key string) string { return ms.ring.Get(key) }

func (ms *MySQLStorage) shard(key string) *mysqlShard { return ms.shards[ms.ring.Get(key)] }

// Saving the same key and mid again replaces the message: a retried save
// is harmless.
const mysqlInsert = `INSERT INTO private_msg (skey, mid, ttl, msg, ctime, mtime) VALUES `
const mysqlRow = `(?, ?, ?, ?, NOW(), NOW())`
const mysqlUpsert = ` ON DUPLICATE KEY UPDATE ttl = VALUES(ttl), msg = VALUES(msg), mtime = NOW()`

// mysqlInsertBytes bounds the message bytes of one multi-row INSERT, well
// under the server's max_allowed_packet (16 MB by default on MariaDB, 64 MB
// on MySQL 8): a batch of large messages is sent in several.
const mysqlInsertBytes = 4 << 20

// Save stores one message. Saves made at the same time on one shard share
// one multi-row INSERT (groupcommit.go).
func (ms *MySQLStorage) Save(ctx context.Context, e Entry) error {
	return ms.shard(e.Key).saves.saveOne(ctx, e)
}

// SaveMany stores several messages through each shard's group commit, the
// shards in parallel. errs[i] is nil when es[i] was stored.
func (ms *MySQLStorage) SaveMany(ctx context.Context, es []Entry) []error {
	return saveByShard(ctx, es, func(e Entry) *groupCommit { return ms.shard(e.Key).saves })
}

// flushSaves is the shard's group commit flush: multi-row INSERTs of at
// most mysqlInsertBytes of messages each. An INSERT the server refuses is
// tried again row by row, so that one bad row fails only its own save.
func (s *mysqlShard) flushSaves(ctx context.Context, es []Entry, errs []error) {
	for len(es) > 0 {
		n, size := 0, 0
		for n < len(es) && (n == 0 || size+len(es[n].Msg) <= mysqlInsertBytes) {
			size += len(es[n].Msg)
			n++
		}
		err := s.insert(ctx, es[:n])
		if err != nil && n > 1 && rowError(err) {
			for i := range n {
				errs[i] = s.insert(ctx, es[i:i+1])
			}
		} else {
			fill(errs[:n], err)
		}
		es, errs = es[n:], errs[n:]
	}
}

// insert stores es in one INSERT, wrapping its error.
func (s *mysqlShard) insert(ctx context.Context, es []Entry) error {
	var q strings.Builder
	q.Grow(len(mysqlInsert) + len(es)*(len(mysqlRow)+2) + len(mysqlUpsert))
	q.WriteString(mysqlInsert)
	args := make([]any, 0, 4*len(es))
	for j, e := range es {
		if j > 0 {
			q.WriteString(", ")
		}
		q.WriteString(mysqlRow)
		args = append(args, e.Key, e.MsgId, e.Expire, []byte(e.Msg))
	}
	q.WriteString(mysqlUpsert)
	if _, err := s.db.ExecContext(ctx, q.String(), args...); err != nil {
		return s.wrap(err)
	}
	return nil
}

// rowError reports whether err is the server (or the driver, before
// sending) refusing the statement, as opposed to the connection or the
// deadline failing: only then can the same rows one by one fare better.
func rowError(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) || errors.Is(err, mysql.ErrPktTooLarge)
}

// Get returns the key's newest unexpired messages with a mid above after,
// at most storage.store of them, in ascending mid order.
func (ms *MySQLStorage) Get(ctx context.Context, key string, after int64) ([]*api.Message, error) {
	s := ms.shard(key)
	rows, err := s.db.QueryContext(ctx,
		`SELECT mid, msg FROM private_msg WHERE skey = ? AND mid > ? AND ttl > ? ORDER BY mid DESC LIMIT ?`,
		key, after, ms.now().Unix(), ms.store)
	if err != nil {
		return nil, s.wrap(err)
	}
	return s.scanNewest(rows, api.PrivateGroupId)
}

// scanNewest reads rows of (mid, msg) in descending mid order, closes them,
// and returns the messages in ascending mid order with group id gid.
func (s *mysqlShard) scanNewest(rows *sql.Rows, gid uint) ([]*api.Message, error) {
	defer rows.Close()
	var out []*api.Message
	for rows.Next() {
		m := &api.Message{GroupId: gid}
		var msg []byte
		if err := rows.Scan(&m.MsgId, &msg); err != nil {
			return nil, s.wrap(err)
		}
		m.Msg = msg
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err)
	}
	slices.Reverse(out)
	return out, nil
}

// Del removes every row of the key.
func (ms *MySQLStorage) Del(ctx context.Context, key string) error {
	s := ms.shard(key)
	if _, err := s.db.ExecContext(ctx, `DELETE FROM private_msg WHERE skey = ?`, key); err != nil {
		return s.wrap(err)
	}
	return nil
}

// Check pings every shard, in parallel, and checks the collation of its
// private_msg.skey.
func (ms *MySQLStorage) Check(ctx context.Context) []error { return shardErrors(ms.CheckShards(ctx)) }

// CheckShards is Check by shard.
func (ms *MySQLStorage) CheckShards(ctx context.Context) map[string]error {
	return checkShards(ms.shards, func(s *mysqlShard) error {
		if err := s.db.PingContext(ctx); err != nil {
			return s.wrap(err)
		}
		return s.checkKeyCollation(ctx)
	})
}

// checkKeyCollation reports a private_msg table whose skey column does not
// compare bytes: with the default collation of a table created for 1.0.5,
// keys that differ only in case read and delete each other's messages.
func (s *mysqlShard) checkKeyCollation(ctx context.Context) error {
	var coll sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT COLLATION_NAME FROM information_schema.COLUMNS `+
		`WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'private_msg' AND COLUMN_NAME = 'skey'`).Scan(&coll)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return s.wrap(errors.New("table private_msg not found: create it with conf/mysql.sql"))
	case err != nil:
		return s.wrap(fmt.Errorf("reading the collation of private_msg.skey: %w", err))
	case coll.Valid && !strings.HasSuffix(coll.String, "_bin") && coll.String != "binary":
		return s.wrap(fmt.Errorf("private_msg.skey has collation %s, so keys that differ only in case "+
			"share their offline messages: convert it with the ALTER TABLE in conf/mysql.sql", coll.String))
	}
	return nil
}

// cleaner deletes expired rows on every shard each interval. The first
// run comes after at most a minute, so that a daemon restarted more often
// than the interval still cleans.
func (ms *MySQLStorage) cleaner(every time.Duration) {
	defer ms.wg.Done()
	t := time.NewTimer(min(every, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ms.done:
			return
		case <-t.C:
		}
		for _, s := range ms.shards {
			n, err := ms.cleanShard(s)
			ms.met.Load().expired(s.name, int(n))
			if err != nil {
				ms.log.Warn("deleting expired messages failed", "shard", s.name, "err", err)
			} else if n > 0 {
				ms.log.Debug("deleted expired messages", "shard", s.name, "rows", n)
			}
		}
		t.Reset(every)
	}
}

// cleanShard deletes the shard's expired rows in chunks, stopping early
// when the storage closes.
func (ms *MySQLStorage) cleanShard(s *mysqlShard) (int64, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-ms.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var total int64
	now := ms.now().Unix()
	for {
		res, err := s.db.ExecContext(ctx, `DELETE FROM private_msg WHERE ttl <= ? LIMIT ?`, now, mysqlChunk)
		if err != nil {
			return total, s.wrap(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, s.wrap(err)
		}
		total += n
		if n < mysqlChunk {
			return total, nil
		}
	}
}

// Close refuses saves from now on, stops the cleaner and closes every
// shard's connections.
func (ms *MySQLStorage) Close() error {
	ms.closeOnce.Do(func() {
		for _, s := range ms.shards {
			s.saves.close()
		}
		close(ms.done)
		ms.wg.Wait()
		ms.closeDBs()
	})
	return nil
}
