package pluginrpc

import (
	"context"
	"log/slog"
	"os"
	"sync"

	hclog "github.com/hashicorp/go-hclog"
)

// LogLevelEnv names the environment variable that sets a plugin's log level:
// trace, debug, info (the default), warn or error. A host passes its own
// level down through it.
const LogLevelEnv = "PHASED_PLUGIN_LOG_LEVEL"

var (
	logOnce sync.Once
	hcLog   hclog.Logger
	slogLog *slog.Logger
)

func initLogger() {
	level := hclog.LevelFromString(os.Getenv(LogLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	// os.Stderr is read now, before plugin.Serve replaces it with a pipe:
	// the host re-logs only what reaches the process's real stderr, and only
	// lines in hclog's JSON shape (@level, @message, @timestamp).
	hcLog = hclog.New(&hclog.LoggerOptions{
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	slogLog = slog.New(&slogHandler{log: hcLog})
}

func hclogLogger() hclog.Logger {
	logOnce.Do(initLogger)
	return hcLog
}

// Logger is the plugin process's logger: an *slog.Logger whose records are
// written as hclog JSON lines on the stderr the process started with, which
// the host re-logs at each record's level. It is created on first use.
func Logger() *slog.Logger {
	logOnce.Do(initLogger)
	return slogLog
}

// slogHandler is a slog.Handler that writes through an hclog.Logger.
type slogHandler struct {
	log    hclog.Logger
	prefix string // group prefix, "a.b."
	attrs  []any  // key/value pairs from WithAttrs
}

var _ slog.Handler = (*slogHandler)(nil)

// ToHclog maps a slog level to hclog's, the levels that cross the plugin
// boundary. Notice (info+2) is info: hclog has no level between info and
// warn.
func ToHclog(l slog.Level) hclog.Level {
	switch {
	case l < slog.LevelDebug:
		return hclog.Trace
	case l < slog.LevelInfo:
		return hclog.Debug
	case l < slog.LevelWarn:
		return hclog.Info
	case l < slog.LevelError:
		return hclog.Warn
	}
	return hclog.Error
}

// FromHclog maps an hclog level back to slog's: trace is debug.
func FromHclog(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return ToHclog(l) >= h.log.GetLevel()
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	args := make([]any, 0, len(h.attrs)+2*r.NumAttrs())
	args = append(args, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		args = appendAttr(args, h.prefix, a)
		return true
	})
	h.log.Log(ToHclog(r.Level), r.Message, args...)
	return nil
}

func (h *slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]any(nil), h.attrs...)
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.prefix, a)
	}
	return &n
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}

// appendAttr flattens a into key/value pairs, groups as "group.key".
func appendAttr(args []any, prefix string, a slog.Attr) []any {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, g := range v.Group() {
			args = appendAttr(args, p, g)
		}
		return args
	}
	if a.Key == "" {
		return args
	}
	var val any
	switch v.Kind() {
	case slog.KindDuration:
		val = v.Duration().String()
	case slog.KindTime:
		val = v.Time().Format("2006-01-02T15:04:05.000000Z07:00")
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			val = err.Error()
		} else {
			val = v.Any()
		}
	default:
		val = v.Any()
	}
	return append(args, prefix+a.Key, val)
}
