// Package message is the offline-message daemon of gopush: it serves
// MessageRPC (docs/protocol.md §4) and keeps private messages for keys that are offline
// in sharded Redis or MySQL storage (docs/protocol.md §7).
package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gopush/api"
	"gopush/conf"
)

// Entry is one message to store under one key.
type Entry struct {
	Key    string
	MsgId  int64
	Msg    json.RawMessage
	Expire int64 // unix seconds; the message is gone once now >= Expire
}

// Storage keeps private messages per key. Implementations are safe for
// concurrent use.
type Storage interface {
	// Save stores one message.
	Save(ctx context.Context, e Entry) error
	// SaveMany stores several messages and returns one error per entry
	// (nil where the entry was stored), so the caller can tell exactly
	// which keys failed.
	SaveMany(ctx context.Context, es []Entry) []error
	// Get returns the key's newest unexpired messages with a mid above
	// after, at most storage.store of them, in ascending mid order. (Redis
	// keeps only the newest storage.store messages of a key; MySQL keeps
	// more until they expire, and answers the same way.)
	Get(ctx context.Context, key string, after int64) ([]*api.Message, error)
	// Del removes every message of the key.
	Del(ctx context.Context, key string) error
	// Check tries every shard once and returns an error, naming the
	// shard, for each one that does not answer or whose schema is wrong.
	Check(ctx context.Context) []error
	// Close stops background work and releases connections.
	Close() error
}

// ParamError is bad input from the caller. Its text starts with "param: ",
// which is what a remote caller sees in the rpc.ServerError.
type ParamError struct{ Problem string }

func (e *ParamError) Error() string { return "param: " + e.Problem }

func paramErr(format string, args ...any) error {
	return &ParamError{Problem: fmt.Sprintf(format, args...)}
}

// IsParamError reports whether err is (or wraps) a ParamError.
func IsParamError(err error) bool {
	var pe *ParamError
	return errors.As(err, &pe)
}

// maxExpire caps the lifetime of a message (about 100 years), so that
// now+expire never overflows; longer lifetimes are clamped, not refused.
const maxExpire = 100 * 365 * 24 * 3600

// expireAt turns a lifetime in seconds into an absolute unix time.
func expireAt(now time.Time, expire uint) int64 {
	e := uint64(expire)
	if e > maxExpire {
		e = maxExpire
	}
	return now.Unix() + int64(e)
}

// limits are the input checks shared by both storage types.
type limits struct {
	maxSize  int  // largest message, in bytes
	maxKey   int  // longest key, in bytes (as comet and web count it)
	utf8Keys bool // keys must be valid UTF-8 (a MySQL column)
}

func (l limits) checkKey(key string) error {
	if key == "" {
		return paramErr("empty key")
	}
	if l.utf8Keys && !utf8.ValidString(key) {
		return paramErr("key %q is not valid UTF-8", key)
	}
	if n := len(key); n > l.maxKey {
		return paramErr("key of %d bytes is over the limit of %d bytes", n, l.maxKey)
	}
	return nil
}

func (l limits) checkMid(mid int64) error {
	if mid < 0 {
		return paramErr("negative mid %d", mid)
	}
	return nil
}

func (l limits) checkMsg(msg json.RawMessage) error {
	if len(msg) == 0 {
		return paramErr("empty message")
	}
	if len(msg) > l.maxSize {
		return paramErr("message of %d bytes is over the limit of %d bytes", len(msg), l.maxSize)
	}
	if !json.Valid(msg) {
		return paramErr("message is not valid JSON")
	}
	return nil
}

func (l limits) checkExpire(expire uint) error {
	if expire == 0 {
		return paramErr("expire must be at least 1 second")
	}
	return nil
}

// backgroundTimeout bounds storage work that no call waits for: removing
// an expired member, releasing a room's lock.
const backgroundTimeout = 5 * time.Second

// redisMaxKey bounds key length on Redis, which has no limit of its own, in
// bytes.
const redisMaxKey = 4096

// OpenStorage builds the storage that [storage] type names.
func OpenStorage(cfg *conf.Message, log *slog.Logger) (Storage, error) {
	switch cfg.Storage.Type {
	case "redis":
		return NewRedisStorage(cfg, log)
	case "mysql":
		return NewMySQLStorage(cfg, log)
	}
	return nil, fmt.Errorf("storage.type: unknown type %q", cfg.Storage.Type)
}

// limitsFor returns the input checks for cfg's storage type: MySQL's
// columns hold at most 64 bytes of key (the most comet and web accept) and
// 65535 bytes of message.
func limitsFor(cfg *conf.Message) limits {
	l := limits{maxSize: cfg.Storage.MaxSize, maxKey: redisMaxKey}
	if cfg.Storage.Type == "mysql" {
		l.maxSize = min(l.maxSize, mysqlMaxMsg)
		l.maxKey = mysqlMaxKey
		l.utf8Keys = true
	}
	return l
}

// checkShards runs check on every shard at once and collects the errors,
// sorted so that the answer is stable.
func checkShards[S any](shards map[string]S, check func(S) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := check(s); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}
