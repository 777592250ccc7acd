package client

import (
	"context"
	"time"
)

// transport is one subscribed connection to comet. next and heartbeat may
// be called from two goroutines at once (one reader, one writer); close
// unblocks both.
type transport interface {
	// next returns the next pushed message, or nil for an answer to a
	// heartbeat. It fails when nothing arrives within timeout.
	next(timeout time.Duration) (*Message, error)
	// heartbeat sends one heartbeat.
	heartbeat() error
	close() error
}

// writeTimeout bounds one write to comet.
const writeTimeout = 10 * time.Second

// dial connects to the comet at addr and subscribes; it returns once comet
// has answered +h, or with *ServerError for an error reply.
func dial(ctx context.Context, cfg Config, addr string) (transport, error) {
	if cfg.Proto == WebSocket {
		return dialWebSocket(ctx, cfg, addr)
	}
	return dialTCP(ctx, cfg, addr)
}
