package logging

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/lmittmann/tint"
)

// LevelNotice is Apache's notice level: between info and warn, and emitted
// whatever the configured level, as Apache emits APLOG_NOTICE whatever its
// LogLevel. Only records at exactly LevelNotice get this treatment; warn stays
// suppressed at level error. It prints as "NOTICE".
const LevelNotice = slog.LevelInfo + 2

// noticeName is how LevelNotice prints in every format.
const noticeName = "NOTICE"

// noticeColor is the tint colour of the NOTICE label (bright cyan).
const noticeColor = 14

// ParseLevel returns the level named s: debug, info, notice, warn or error,
// in any case. Any other value is an error naming it and the valid names.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "notice":
		return LevelNotice, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (valid: debug, info, notice, warn, error)", s)
}

// noticeHandler passes records at or above level, and records at
// LevelNotice whatever the level, to an inner handler configured to accept
// both.
type noticeHandler struct {
	inner slog.Handler
	level slog.Level
}

var _ slog.Handler = noticeHandler{}

// Enabled reports whether a record at l is logged: l reaches the configured
// level, or l is the notice level.
func (h noticeHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level || l == LevelNotice
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

// isNoticeLevel reports whether a is the top-level level attribute of a
// notice record.
func isNoticeLevel(groups []string, a slog.Attr) bool {
	if a.Key != slog.LevelKey || len(groups) != 0 {
		return false
	}
	l, ok := a.Value.Any().(slog.Level)
	return ok && l == LevelNotice
}

// jsonReplaceAttr prints the notice level as "NOTICE" rather than "INFO+2".
func jsonReplaceAttr(groups []string, a slog.Attr) slog.Attr {
	if isNoticeLevel(groups, a) {
		a.Value = slog.StringValue(noticeName)
	}
	return a
}

// tintReplaceAttr prints the notice level as "NOTICE" rather than "INF+2".
func tintReplaceAttr(groups []string, a slog.Attr) slog.Attr {
	if isNoticeLevel(groups, a) {
		return tint.Attr(noticeColor, slog.String(slog.LevelKey, noticeName))
	}
	return a
}
