package logging

import (
	"log/slog"

	"github.com/lmittmann/tint"

	"github.com/phasedhq/phased/internal/loglevel"
)

// LevelNotice is Apache's notice level: between info and warn, and emitted
// whatever the configured level, as Apache emits APLOG_NOTICE whatever its
// LogLevel (internal/loglevel holds phased's one mapping of levels).
const LevelNotice = loglevel.Notice

// noticeColor is the tint colour of the NOTICE label (bright cyan).
const noticeColor = 14

// ParseLevel returns the level named s: debug, info, notice, warn or error,
// in any case. Any other value is an error naming it and the valid names.
func ParseLevel(s string) (slog.Level, error) { return loglevel.Parse(s) }

// tintReplaceAttr prints the notice level as "NOTICE" rather than "INF+2".
func tintReplaceAttr(groups []string, a slog.Attr) slog.Attr {
	if loglevel.IsNotice(groups, a) {
		return tint.Attr(noticeColor, slog.String(slog.LevelKey, loglevel.NoticeName))
	}
	return a
}
