package conf

import (
	"io"
	"log/slog"

	"gopush/internal/logthrottle"
)

// NewLogger builds the daemon's logger from [log]: text or JSON lines at
// the configured level, repeated lines limited to log.repeat per
// log.window.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	switch l.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if l.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(logthrottle.New(h, l.Repeat, l.Window.D()))
}
