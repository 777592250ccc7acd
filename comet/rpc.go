package comet

import (
	"context"
	"errors"
	"fmt"
	"gopush/api"
	"time"
)

// RPC is the CometRPC service (docs/protocol.md §4), served under the name "CometRPC".
// Its exported methods are exactly the service's methods.
type RPC struct {
	c *Comet
}

// maxTokenLife bounds CometNewArgs.Expire (seconds); it keeps the
// conversion to a time.Duration from overflowing.
const maxTokenLife = 100 * 365 * 24 * time.Hour

// New accepts args.Token for args.Key for args.Expire seconds (0: the
// configured channel.token.expire). With channel.auth off tokens are not
// needed and New only checks its arguments.
func (r *RPC) New(args *api.CometNewArgs, reply *int) error {
	c := r.c
	if args == nil {
		return errors.New("CometRPC.New: no arguments")
	}
	if err := checkKey(args.Key); err != nil {
		return fmt.Errorf("CometRPC.New: %w", err)
	}
	if args.Token == "" || len(args.Token) > api.MaxSubArgLen {
		return fmt.Errorf("CometRPC.New: token must be 1..%d bytes", api.MaxSubArgLen)
	}
	if args.Expire < 0 || args.Expire > int64(maxTokenLife/time.Second) {
		return fmt.Errorf("CometRPC.New: expire %d out of range", args.Expire)
	}
	life := time.Duration(args.Expire) * time.Second
	if life == 0 {
		life = c.cfg.Channel.Token.Expire.D()
	}
	if c.verifier != nil {
		return errors.New("CometRPC.New: this comet takes signed tokens (channel.token.mode = jwt), not tokens added by RPC")
	}
	if c.cfg.Channel.Auth {
		c.hub.addToken(args.Key, args.Token, life, c.cfg.Channel.Token.Max)
	}
	*reply = api.OK
	return nil
}

// Close closes every connection of key and forgets the key (its tokens
// too).
func (r *RPC) Close(key string, reply *int) error {
	for _, cn := range r.c.hub.forget(key) {
		cn.close()
	}
	*reply = api.OK
	return nil
}

// pushCtx is the context of a push call bounded by the caller's deadline
// (api/deadline.go); a call that arrives after it counts its pushes as
// failed and does nothing.
func (r *RPC) pushCtx(method string, deadline int64, pushes int) (context.Context, context.CancelFunc, error) {
	if api.DeadlinePassed(deadline, time.Now()) {
		r.c.stats.pushFailed.Add(int64(pushes))
		return nil, nil, fmt.Errorf("CometRPC.%s: %w", method, api.ErrDeadlinePassed)
	}
	ctx, cancel := api.WithDeadline(r.c.ctx, deadline)
	return ctx, cancel, nil
}

// PushPrivate pushes one message to one key. A key that the ring gives to
// another comet is not refused: the message is still stored, and delivered
// to whatever connections the key has here, so that nothing is lost while
// web and comet disagree during a migration.
func (r *RPC) PushPrivate(args *api.CometPushPrivateArgs, reply *int) error {
	if args == nil {
		return errors.New("CometRPC.PushPrivate: no arguments")
	}
	r.c.stats.rpcPushPrivate.Add(1)
	ctx, cancel, err := r.pushCtx("PushPrivate", args.Deadline, 1)
	if err != nil {
		return err
	}
	defer cancel()
	if err := r.c.pushPrivate(ctx, args.Key, args.Msg, args.Expire); err != nil {
		return err
	}
	*reply = api.OK
	return nil
}

// PushPrivates pushes one message to several keys and lists in FKeys the
// keys it could not store (those get nothing).
func (r *RPC) PushPrivates(args *api.CometPushPrivatesArgs, reply *api.CometPushPrivatesResp) error {
	if args == nil {
		return errors.New("CometRPC.PushPrivates: no arguments")
	}
	r.c.stats.rpcPushPrivates.Add(1)
	ctx, cancel, err := r.pushCtx("PushPrivates", args.Deadline, len(args.Keys))
	if err != nil {
		return err
	}
	defer cancel()
	fkeys, err := r.c.pushPrivates(ctx, args.Keys, args.Msg, args.Expire)
	if err != nil {
		return err
	}
	reply.FKeys = fkeys
	return nil
}

// PushBatch pushes many entries, each with its own keys, message and
// expiry (docs/protocol.md §4.2), and lists in Failed the pushes that were
// not delivered. New in gopush: web falls back to PushPrivate for a comet
// without it.
func (r *RPC) PushBatch(args *api.CometPushBatchArgs, reply *api.CometPushBatchResp) error {
	if args == nil {
		return errors.New("CometRPC.PushBatch: no arguments")
	}
	r.c.stats.rpcPushBatch.Add(1)
	ctx, cancel, err := r.pushCtx("PushBatch", args.Deadline, len(args.Entries))
	if err != nil {
		return err
	}
	defer cancel()
	reply.Failed = r.c.pushBatch(ctx, args.Entries)
	return nil
}

// Migrate replaces the ring with args.Nodes (node name → weight) and closes
// the connections of keys that now belong to another node. The same map as
// the current one changes nothing.
func (r *RPC) Migrate(args *api.CometMigrateArgs, reply *int) error {
	if args == nil {
		return errors.New("CometRPC.Migrate: no arguments")
	}
	if err := r.c.checkMigrate(args.Nodes); err != nil {
		r.c.stats.migrateRefused.Add(1)
		r.c.log.Warn("Migrate refused", "err", err)
		return fmt.Errorf("CometRPC.Migrate refused: %w", err)
	}
	if err := r.c.migrate(args.Nodes); err != nil {
		return fmt.Errorf("CometRPC.Migrate: %w", err)
	}
	*reply = api.OK
	return nil
}

// Ping answers 0; web calls it to find comets that are gone.
func (r *RPC) Ping(_ int, reply *int) error {
	*reply = api.OK
	return nil
}
