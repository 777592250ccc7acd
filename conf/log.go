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
	return l.NewLoggerLevel(w, l.SlogLevel())
}

// NewLoggerLevel is NewLogger at a level that may change later (a
// *slog.LevelVar, as SIGHUP does) or is fixed (a slog.Level).
func (l Log) NewLoggerLevel(w io.Writer, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if l.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(logthrottle.New(h, l.Repeat, l.Window.D()))
}

// SlogLevel is log.level as a slog.Level (info when unknown).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
