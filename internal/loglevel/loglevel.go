// Package loglevel is phased's one mapping of log levels: the names a
// configuration, a plugin or an MPM's log entry uses (debug, info, notice,
// warn, error), their slog levels, and Apache's rule that notice is logged
// whatever the configured level. The master's error log, the children's,
// and the plugin host and plugins all use it.
package loglevel

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Notice is Apache's notice level: between info and warn, and emitted
// whatever the configured level, as Apache emits APLOG_NOTICE whatever its
// LogLevel. Only records at exactly Notice get this treatment; warn stays
// suppressed at level error. It prints as "NOTICE".
const Notice = slog.LevelInfo + 2

// NoticeName is how Notice prints in every format.
const NoticeName = "NOTICE"

// Parse returns the level named s: debug, info, notice, warn or error, in
// any case. Any other value is an error naming it and the valid names.
func Parse(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "notice":
		return Notice, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (valid: debug, info, notice, warn, error)", s)
}

// Name returns the name Parse takes for l, rounding a level between two
// names up to the more severe one: debug, info, notice, warn or error.
func Name(l slog.Level) string {
	switch {
	case l <= slog.LevelDebug:
		return "debug"
	case l <= slog.LevelInfo:
		return "info"
	case l <= Notice:
		return "notice"
	case l <= slog.LevelWarn:
		return "warn"
	}
	return "error"
}

// Handler returns a handler that passes records at or above level, and
// records at Notice whatever the level, to inner, which must accept both
// (configure it with slog.LevelDebug or lower, or with min(level, Notice)).
func Handler(inner slog.Handler, level slog.Level) slog.Handler {
	return noticeHandler{inner: inner, level: level}
}

// noticeHandler is Handler's handler.
type noticeHandler struct {
	inner slog.Handler
	level slog.Level
}

var _ slog.Handler = noticeHandler{}

// Enabled reports whether a record at l is logged: l reaches the configured
// level, or l is the notice level.
func (h noticeHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level || l == Notice
}

// Handle passes r to the inner handler.
func (h noticeHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.inner.Handle(ctx, r)
}

// WithAttrs returns a noticeHandler over the inner handler with attrs.
func (h noticeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return noticeHandler{inner: h.inner.WithAttrs(attrs), level: h.level}
}

// WithGroup returns a noticeHandler over the inner handler with the group.
func (h noticeHandler) WithGroup(name string) slog.Handler {
	return noticeHandler{inner: h.inner.WithGroup(name), level: h.level}
}

// IsNotice reports whether a is the top-level level attribute of a notice
// record.
func IsNotice(groups []string, a slog.Attr) bool {
	if a.Key != slog.LevelKey || len(groups) != 0 {
		return false
	}
	l, ok := a.Value.Any().(slog.Level)
	return ok && l == Notice
}

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that prints the notice
// level as "NOTICE" rather than "INFO+2".
func ReplaceAttr(groups []string, a slog.Attr) slog.Attr {
	if IsNotice(groups, a) {
		a.Value = slog.StringValue(NoticeName)
	}
	return a
}
