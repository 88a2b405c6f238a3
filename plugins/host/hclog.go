package host

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/phasedhq/phased/internal/pluginrpc"
)

// slogAdapter is an hclog.Logger that writes to an *slog.Logger. go-plugin
// logs through it, and re-logs through it every hclog-JSON line a plugin
// writes to stderr, at the line's own level; so a plugin's records land in
// phased's error log with the plugin's name and the right severity.
//
// It also tells an operator only what is news: go-plugin's records of a
// plugin that phased itself stopped ("plugin process exited") or that never
// started ("plugin failed to exit gracefully") go to debug, and the lines of
// a panic's trace, which go-plugin relays one by one, are gathered into one
// record.
type slogAdapter struct {
	log   *slog.Logger
	name  string
	level hclog.Level
	args  []any
	st    *relayState // shared by every logger derived from the same adapter
}

// relayState is what the loggers of one plugin share.
type relayState struct {
	started  atomic.Bool // the handshake is done
	stopping atomic.Bool // phased is stopping the plugin, or gave up starting it

	mu    sync.Mutex
	trace []string    // the panic being gathered, first line first
	args  []any       // its logger's attributes
	timer *time.Timer // flushes the panic once its lines stop coming
}

// panicQuiet is how long after a panic's last line its record is written.
const panicQuiet = 200 * time.Millisecond

// Messages go-plugin logs about the plugin process.
const (
	msgProcessExited = "plugin process exited"
	msgNotGraceful   = "plugin failed to exit gracefully"
	// MsgPanicked is the one record a plugin's panic (or fatal error)
	// trace becomes: its first line in "panic", the whole trace in
	// "trace".
	MsgPanicked = "plugin panicked"
)

var _ hclog.Logger = (*slogAdapter)(nil)

func newSlogAdapter(l *slog.Logger, level slog.Level) *slogAdapter {
	return &slogAdapter{log: l, level: pluginrpc.ToHclog(level), st: &relayState{}}
}

func (a *slogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || level < a.level {
		return
	}
	if a.gather(level, msg, args) {
		return
	}
	switch {
	case msg == msgProcessExited && (a.st.stopping.Load() || !a.st.started.Load()),
		msg == msgNotGraceful && !a.st.started.Load():
		// Launch's error says why a plugin did not start.
		level = hclog.Debug
		if level < a.level {
			return
		}
	}
	a.emit(level, msg, args)
}

// gather reports whether the line is part of a panic's trace, which it
// keeps for one record; any other record first writes the panic gathered.
// go-plugin relays a trace as error records of the plugin's stderr logger
// (a named one) without attributes, from the line that starts with
// "panic: " or "fatal error: " on.
func (a *slogAdapter) gather(level hclog.Level, msg string, args []any) bool {
	st := a.st
	st.mu.Lock()
	defer st.mu.Unlock()
	line := level == hclog.Error && len(args) == 0 && a.name != ""
	starts := line && (strings.HasPrefix(msg, "panic: ") || strings.HasPrefix(msg, "fatal error: "))
	if len(st.trace) > 0 && line && !starts {
		st.trace = append(st.trace, msg)
		st.timer.Reset(panicQuiet)
		return true
	}
	a.flushLocked()
	if !starts {
		return false
	}
	st.trace, st.args = []string{msg}, a.attrs(nil)
	st.timer = time.AfterFunc(panicQuiet, func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		a.flushLocked()
	})
	return true
}

func (a *slogAdapter) flushLocked() {
	st := a.st
	if len(st.trace) == 0 {
		return
	}
	st.timer.Stop()
	first := st.trace[0]
	attrs := append(st.args, "panic", first, "trace", strings.Join(st.trace, "\n"))
	st.trace = nil
	a.log.Log(context.Background(), slog.LevelError, MsgPanicked, attrs...)
}

// attrs is the record's attributes: the logger's, then args, then its name.
func (a *slogAdapter) attrs(args []any) []any {
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
	return all
}

func (a *slogAdapter) emit(level hclog.Level, msg string, args []any) {
	a.log.Log(context.Background(), pluginrpc.FromHclog(level), msg, a.attrs(args)...)
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
