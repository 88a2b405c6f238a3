package logging

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/lmittmann/tint"
	"golang.org/x/term"

	"github.com/phasedhq/phased/internal/loglevel"
)

// timeFormat is the time layout of the text format.
const timeFormat = "2006-01-02 15:04:05.000"

// Options configures [Open]; it mirrors the error_log section of the config.
type Options struct {
	// Path is where the log goes: "stderr", "stdout" or the path of a file,
	// opened with O_APPEND|O_CREATE|O_WRONLY and mode 0644 (before umask).
	// The zero value means "stderr".
	Path string
	// Level is the least severe level logged, by name (see [ParseLevel]);
	// notice is logged whatever it is. The zero value means "info".
	Level string
	// Format is "auto", "text" or "json", in any case: "text" is tint's text,
	// coloured only on a terminal; "json" is slog's JSON; "auto" is coloured
	// text on a terminal and JSON otherwise. The zero value means "auto".
	Format string
	// Stderr is the file "stderr" means; nil means os.Stderr. The master
	// sets it so tests and `-k start` can point it elsewhere.
	Stderr *os.File
}

// Log is an open error log. Its methods are safe for concurrent use.
type Log struct {
	logger *slog.Logger
	file   *reopener // nil when the log is stderr or stdout
	out    *os.File  // stderr or stdout when file is nil
	text   bool      // records are text, not JSON
}

// Open builds the error log that opts describe. The caller must Close it.
// Errors name what is wrong: the level, the format, or the path, as in
// "opening error log /x/y: permission denied" (errors.Is matches the
// underlying cause, such as fs.ErrPermission).
func Open(opts Options) (*Log, error) {
	level := slog.LevelInfo
	if opts.Level != "" {
		var err error
		if level, err = ParseLevel(opts.Level); err != nil {
			return nil, fmt.Errorf("error log: %w", err)
		}
	}
	format, err := parseFormat(opts.Format)
	if err != nil {
		return nil, fmt.Errorf("error log: %w", err)
	}

	l := &Log{}
	var w io.Writer
	var tty bool
	switch opts.Path {
	case "", "stderr":
		l.out = os.Stderr
		if opts.Stderr != nil {
			l.out = opts.Stderr
		}
		w, tty = l.out, isTerminal(l.out)
	case "stdout":
		l.out = os.Stdout
		w, tty = l.out, isTerminal(os.Stdout)
	default:
		f, err := openFile(opts.Path)
		if err != nil {
			return nil, fmt.Errorf("opening error log %s: %w", opts.Path, err)
		}
		l.file = &reopener{f: f, path: opts.Path}
		w, tty = l.file, isTerminal(f)
	}
	l.logger = newLogger(w, level, format, tty)
	l.text = format == formatText || (format == formatAuto && tty)
	return l, nil
}

// File returns the file the log writes to now, for a child process's stderr:
// children write their records there directly, so a line from a child is
// never relayed through the master.
func (l *Log) File() *os.File {
	if l.file == nil {
		return l.out
	}
	l.file.mu.RLock()
	defer l.file.mu.RUnlock()
	return l.file.f
}

// Text reports whether records are written as text rather than JSON.
func (l *Log) Text() bool { return l.text }

// Logger returns the logger that writes to l.
func (l *Log) Logger() *slog.Logger { return l.logger }

// Close closes the log file. Closing a log on stderr or stdout does nothing.
// After Close, records logged to l are dropped (the handler reports
// os.ErrClosed). Close is idempotent.
func (l *Log) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.close()
}

// Reopen opens the log file at its path again and swaps it in, for log
// rotation: after logrotate renames the file, the next line lands in a new
// file at the old path. Records logged concurrently go to the old file or
// the new one, never nowhere. If the path cannot be opened, the old file
// stays in use and the error names the path. Reopening a log on stderr or
// stdout does nothing; reopening a closed log returns os.ErrClosed.
func (l *Log) Reopen() error {
	if l.file == nil {
		return nil
	}
	return l.file.reopen()
}

// New returns a logger that writes to w records at level and above, and
// notice records whatever level is. format is as [Options.Format]; any
// unrecognised value means "json". Terminal detection, for "auto" and
// "text", applies when w is an *os.File. New is for tests and for child
// processes that log to the stderr their master collects.
func New(w io.Writer, level slog.Level, format string) *slog.Logger {
	f, err := parseFormat(format)
	if err != nil {
		f = formatJSON
	}
	var tty bool
	if file, ok := w.(*os.File); ok {
		tty = isTerminal(file)
	}
	return newLogger(w, level, f, tty)
}

// format is a parsed Options.Format.
type format int

const (
	formatAuto format = iota
	formatText
	formatJSON
)

func parseFormat(s string) (format, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return formatAuto, nil
	case "text":
		return formatText, nil
	case "json":
		return formatJSON, nil
	}
	return 0, fmt.Errorf("unknown log format %q (valid: auto, text, json)", s)
}

// newLogger builds the handler chain: a noticeHandler over tint or JSON.
func newLogger(w io.Writer, level slog.Level, f format, tty bool) *slog.Logger {
	// The inner handler must accept notice records even when level is
	// above notice; the noticeHandler does the filtering.
	inner := min(level, LevelNotice)
	var h slog.Handler
	if f == formatText || (f == formatAuto && tty) {
		h = tint.NewTextHandler(w, &tint.Options{
			Level:       inner,
			TimeFormat:  timeFormat,
			NoColor:     !tty,
			ReplaceAttr: tintReplaceAttr,
		})
	} else {
		h = slog.NewJSONHandler(w, &slog.HandlerOptions{
			Level:       inner,
			ReplaceAttr: loglevel.ReplaceAttr,
		})
	}
	return slog.New(loglevel.Handler(h, level))
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// openFile opens path for appending. On failure it returns the cause
// without the *fs.PathError wrapper, whose "open /x/y" would repeat the path.
func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			return nil, pe.Err
		}
		return nil, err
	}
	return f, nil
}

// reopener is an io.Writer over a log file that can be swapped for a fresh
// open of the same path. Writers hold the read lock for the whole write, so
// the old file is closed only when no write is using it.
type reopener struct {
	path string

	mu sync.RWMutex
	f  *os.File // nil after close
}

func (r *reopener) Write(p []byte) (int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	return r.f.Write(p)
}

func (r *reopener) reopen() error {
	r.mu.RLock()
	closed := r.f == nil
	r.mu.RUnlock()
	if closed {
		return fmt.Errorf("reopening error log %s: %w", r.path, os.ErrClosed)
	}
	f, err := openFile(r.path)
	if err != nil {
		return fmt.Errorf("reopening error log %s: %w", r.path, err)
	}
	r.mu.Lock()
	old := r.f
	if old != nil {
		r.f = f
	}
	r.mu.Unlock()
	if old == nil { // closed while we were opening
		f.Close()
		return fmt.Errorf("reopening error log %s: %w", r.path, os.ErrClosed)
	}
	if err := old.Close(); err != nil {
		return fmt.Errorf("closing rotated error log %s: %w", r.path, err)
	}
	return nil
}

func (r *reopener) close() error {
	r.mu.Lock()
	f := r.f
	r.f = nil
	r.mu.Unlock()
	if f == nil {
		return nil
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing error log %s: %w", r.path, err)
	}
	return nil
}
