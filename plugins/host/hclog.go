package host

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"

	"github.com/phasedhq/phased/internal/pluginrpc"
)

// slogAdapter is an hclog.Logger that writes to an *slog.Logger. go-plugin
// logs through it, and re-logs through it every hclog-JSON line a plugin
// writes to stderr, at the line's own level; so a plugin's records land in
// phased's error log with the plugin's name and the right severity.
type slogAdapter struct {
	log   *slog.Logger
	name  string
	level hclog.Level
	args  []any
}

var _ hclog.Logger = (*slogAdapter)(nil)

func newSlogAdapter(l *slog.Logger, level slog.Level) *slogAdapter {
	return &slogAdapter{log: l, level: pluginrpc.ToHclog(level)}
}

func (a *slogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || level < a.level {
		return
	}
	all := append([]any(nil), a.args...)
	for i := 0; i+1 < len(args); i += 2 {
		// go-plugin names the plugin's path "plugin"; phased's "plugin" is
		// the plugin's name, already among a.args.
		if k, ok := args[i].(string); ok && k == "plugin" {
			all = append(all, "path", args[i+1])
			continue
		}
		all = append(all, args[i], args[i+1])
	}
	if len(args)%2 == 1 {
		all = append(all, args[len(args)-1])
	}
	if a.name != "" {
		all = append(all, "logger", a.name)
	}
	a.log.Log(context.Background(), pluginrpc.FromHclog(level), msg, all...)
}

func (a *slogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *slogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *slogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *slogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *slogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *slogAdapter) IsTrace() bool { return a.level <= hclog.Trace }
func (a *slogAdapter) IsDebug() bool { return a.level <= hclog.Debug }
func (a *slogAdapter) IsInfo() bool  { return a.level <= hclog.Info }
func (a *slogAdapter) IsWarn() bool  { return a.level <= hclog.Warn }
func (a *slogAdapter) IsError() bool { return a.level <= hclog.Error }

func (a *slogAdapter) ImpliedArgs() []any { return a.args }

func (a *slogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.args = append(append([]any(nil), a.args...), args...)
	return &c
}

func (a *slogAdapter) Name() string { return a.name }

func (a *slogAdapter) Named(name string) hclog.Logger {
	c := *a
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (a *slogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

// SetLevel changes the level of this logger only.
func (a *slogAdapter) SetLevel(level hclog.Level) { a.level = level }

// GetLevel reports the real level: go-plugin asks it before relaying a
// plugin's lines, and a wrong answer silently drops them.
func (a *slogAdapter) GetLevel() hclog.Level { return a.level }

func (a *slogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *slogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := slog.LevelInfo
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = pluginrpc.FromHclog(opts.ForceLevel)
	}
	return slog.NewLogLogger(a.log.Handler(), level).Writer()
}
