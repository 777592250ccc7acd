package conf

import (
	"io"
	"log/slog"
)

// NewLogger builds the daemon's logger from [log]: text or JSON lines at
// the configured level.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	return l.NewLoggerLevel(w, l.SlogLevel())
}

// NewLoggerLevel is NewLogger at a level that may change later (a
// *slog.LevelVar) or is fixed (a slog.Level).
func (l Log) NewLoggerLevel(w io.Writer, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// SlogLevel is log.level as a slog.Level (info when unknown).
func (l Log) SlogLevel() slog.Level {
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
	return level
}
