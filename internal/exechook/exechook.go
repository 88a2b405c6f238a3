package exechook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/phasedhq/phased/internal/procfs"
	"golang.org/x/sys/unix"
)

// Limits of Run.
const (
	// maxLineLen is the longest output line logged as one record; longer
	// lines are split into records of at most this many bytes.
	maxLineLen = 64 << 10

	// tailLines is how many trailing stderr lines an Error keeps.
	tailLines = 10

	// killGrace is how long a hook's process group has between SIGTERM and
	// SIGKILL once it timed out or its context was done.
	killGrace = 500 * time.Millisecond

	// waitDelay bounds how long Run waits for the hook's output pipes
	// to close after the hook itself has exited: a process the hook left
	// behind may still hold them. After that the pipes are closed and the
	// leftover's output is no longer logged.
	waitDelay = time.Second

	// maxTailLineLen is how much of each Tail line Error.Error quotes.
	maxTailLineLen = 1 << 10
)

// errNoCommand is the start error of a Spec with an empty Argv.
var errNoCommand = errors.New("no command given")

// Spec is one exec hook invocation.
type Spec struct {
	// Hook is the hook's name, for logs and errors.
	Hook string

	// Phase is the phase's name, for logs and errors.
	Phase string

	// Argv is the command and its arguments. Argv[0] is a path (relative
	// paths are taken from Dir) or, if it has no slash, a name looked up in
	// PATH. Required.
	Argv []string

	// Dir is the working directory. "" means the current directory.
	Dir string

	// Env is the complete environment of the process, built by the caller
	// (the master's environment filtered, plus PHASED_PHASE and the rest).
	// nil means the master's own environment; an empty non-nil slice means
	// an empty environment.
	Env []string

	// Timeout bounds the run. Zero or negative means no timeout.
	Timeout time.Duration

	// Log receives each output line. nil means output is discarded.
	Log *slog.Logger
}

// Error reports an exec hook that could not start, exited with a
// non-zero status, was killed by a signal, timed out or was cancelled.
type Error struct {
	// Hook and Phase name the hook and the phase it ran in.
	Hook, Phase string

	// Path is the command that was run, Argv[0].
	Path string

	// ExitCode is the exit status, or -1 when the process was killed by a
	// signal or never started.
	ExitCode int

	// Signal names the signal that killed the process ("killed",
	// "terminated"), or is "" when it exited or never started.
	Signal string

	// TimedOut reports whether the hook exceeded its timeout and was killed.
	TimedOut bool

	// Timeout is the hook's timeout; Error quotes it when TimedOut.
	Timeout time.Duration

	// Tail holds the last lines (up to 10) the hook wrote to stderr, oldest
	// first.
	Tail []string

	// Err is the start error (the command was not found, permission denied,
	// not an executable, bad working directory) or, when the context was
	// done before the hook finished, ctx.Err(): compare with errors.Is to
	// tell a cancellation. It is nil otherwise. A hook that never started
	// has ExitCode -1, Signal "" and Err set.
	Err error
}

var _ error = (*Error)(nil)

// Error returns, for instance:
//
//	hook "migrate" (post-config): exit status 3; last lines of stderr:
//	  ERROR: relation "x" does not exist
//	hook "warm" (post-config): timed out after 2s and was killed
//	hook "check" (configure): cannot run ./scripts/check.sh: permission denied
//
// Tail lines longer than 1 KiB are shortened in the message.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hook %q (%s): ", e.Hook, e.Phase)
	started := e.ExitCode != -1 || e.Signal != ""
	switch {
	case e.Err != nil && !started && !e.TimedOut:
		b.WriteString("cannot run")
		if e.Path != "" {
			b.WriteString(" " + e.Path)
		}
		b.WriteString(": " + startCause(e.Err).Error())
		return b.String()
	case e.TimedOut:
		fmt.Fprintf(&b, "timed out after %v and was killed", e.Timeout)
	case isContextErr(e.Err):
		b.WriteString("cancelled")
		if !errors.Is(e.Err, context.Canceled) {
			fmt.Fprintf(&b, " (%v)", e.Err)
		}
		b.WriteString(" and was killed")
	case e.Signal != "":
		b.WriteString("signal: " + e.Signal)
	default:
		fmt.Fprintf(&b, "exit status %d", e.ExitCode)
	}
	if len(e.Tail) > 0 {
		b.WriteString("; last lines of stderr:")
		for _, l := range e.Tail {
			b.WriteString("\n  " + shortenLine(l, maxTailLineLen))
		}
	}
	return b.String()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// isContextErr reports whether err is a context's error.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// startCause strips what Error already says (the command's path) from a
// start error: "permission denied" rather than
// "fork/exec ./x: permission denied".
func startCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op == "fork/exec" {
		return pe.Err
	}
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// shortenLine cuts s to at most n bytes, on a rune boundary, marking the cut.
func shortenLine(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:cutPoint([]byte(s[:n]))] + "..."
}

// Run runs the hook s to completion and returns nil when it exits with
// status 0, else an *Error.
//
// Each line the hook writes to stdout is logged at info and each stderr line
// at warn, with the line as the message and the attributes "hook", "phase"
// and "stream" ("stdout" or "stderr"). A trailing "\r" is dropped, lines
// longer than 64 KiB are split into several records (never inside a UTF-8
// sequence), a last line without a newline is logged too, and invalid UTF-8
// is passed on as is.
//
// The hook's stdin is /dev/null. It runs in a process group of its own and
// is sent SIGKILL if the master dies. When Timeout elapses or ctx is done,
// the whole group gets SIGTERM, then SIGKILL 500 ms later, and so does
// every process below the hook, even one that left its group (setsid), so
// processes the hook started go too. Processes the hook leaves behind when it exits by
// itself are not killed; if they keep its output open, Run stops
// logging it one second after the hook exited and returns.
func Run(ctx context.Context, s Spec) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("hook", s.Hook), slog.String("phase", s.Phase))
	fail := &Error{Hook: s.Hook, Phase: s.Phase, ExitCode: -1}
	if len(s.Argv) == 0 {
		fail.Err = errNoCommand
		return fail
	}
	fail.Path = s.Argv[0]
	if err := ctx.Err(); err != nil {
		fail.Err = err
		return fail
	}

	if err := checkDir(s.Dir); err != nil {
		fail.Err = err
		return fail
	}

	stdout := &lineWriter{emit: func(line string) {
		log.LogAttrs(ctx, slog.LevelInfo, line, slog.String("stream", "stdout"))
	}}
	stderr := &lineWriter{tail: tailLines, emit: func(line string) {
		log.LogAttrs(ctx, slog.LevelWarn, line, slog.String("stream", "stderr"))
	}}

	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Dir = s.Dir
	cmd.Env = s.Env
	// cmd.Stdin stays nil: /dev/null.
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		fail.Err = err
		return fail
	}

	// The watcher kills the group on timeout or cancellation; why it did is
	// read only after it has returned.
	var why error // errTimedOut or ctx.Err()
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		why = watchHook(ctx, cmd.Process.Pid, s.Timeout, done)
	}()
	werr := cmd.Wait()
	close(done)
	<-watched

	stdout.flush()
	stderr.flush()
	if why == nil && werr == nil {
		return nil
	}
	if why == nil && errors.Is(werr, exec.ErrWaitDelay) {
		log.Warn("hook exited but left a process holding its output; no longer logging it")
		return nil
	}

	fail.Tail = stderr.lines()
	if cmd.ProcessState == nil { // Wait failed to reap it: should not happen
		fail.Err = werr
		return fail
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		fail.Signal = ws.Signal().String()
	} else {
		fail.ExitCode = cmd.ProcessState.ExitCode()
	}
	switch {
	case errors.Is(why, errTimedOut):
		fail.TimedOut = true
		fail.Timeout = s.Timeout
	case why != nil:
		fail.Err = why
	}
	return fail
}

// checkDir returns a "chdir" *fs.PathError if dir is set but is not a
// directory. The child's own chdir failure would be reported against the
// command's path, as if the command were missing.
func checkDir(dir string) error {
	if dir == "" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Op = "chdir"
		}
		return err
	}
	if !fi.IsDir() {
		return &fs.PathError{Op: "chdir", Path: dir, Err: syscall.ENOTDIR}
	}
	return nil
}

// errTimedOut is what watchHook returns when the timeout elapsed.
var errTimedOut = errors.New("timed out")

// watchHook waits until done is closed, the timeout elapses or ctx is done. In
// the last two cases it sends SIGTERM to the process group pgid, then
// SIGKILL after killGrace unless done was closed meanwhile, and returns
// errTimedOut or ctx.Err(). It returns nil if done was closed first.
func watchHook(ctx context.Context, pgid int, timeout time.Duration, done <-chan struct{}) error {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	var why error
	select {
	case <-done:
		return nil
	case <-expired:
		why = errTimedOut
	case <-ctx.Done():
		why = ctx.Err()
	}
	// The group, and every process below the hook: one that left the
	// group (setsid) is still the hook's descendant until the hook is gone.
	tree := procfs.Descendants(pgid)
	_ = unix.Kill(-pgid, unix.SIGTERM)
	for _, pid := range tree {
		_ = unix.Kill(pid, unix.SIGTERM)
	}
	grace := time.NewTimer(killGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		_ = unix.Kill(-pgid, unix.SIGKILL)
	}
	for _, pid := range append(tree, procfs.Descendants(pgid)...) {
		if procfs.Alive(pid) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	return why
}

// lineWriter cuts what is written to it into lines and hands each to emit.
// It is used by one goroutine at a time.
type lineWriter struct {
	emit func(line string)
	tail int // how many of the last lines to keep

	buf  []byte   // the line being written
	last []string // ring of the last lines emitted, up to tail
	next int      // where the next line goes in last once it is full
}

// Write emits every complete line in buf+p and every 64 KiB piece of a
// longer line, and keeps the rest. It never fails.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	b := w.buf
	for {
		if i := bytes.IndexByte(b[:min(len(b), maxLineLen+1)], '\n'); i >= 0 {
			w.line(bytes.TrimSuffix(b[:i], []byte("\r")))
			b = b[i+1:]
			continue
		}
		if len(b) <= maxLineLen {
			break
		}
		n := cutPoint(b[:maxLineLen])
		w.line(b[:n])
		b = b[n:]
	}
	w.buf = append(w.buf[:0], b...)
	return len(p), nil
}

// flush emits a last line that had no newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(w.buf)
		w.buf = w.buf[:0]
	}
}

// line emits l and remembers it in the tail.
func (w *lineWriter) line(l []byte) {
	s := string(l)
	w.emit(s)
	switch {
	case w.tail == 0:
	case len(w.last) < w.tail:
		w.last = append(w.last, s)
	default:
		w.last[w.next] = s
		w.next = (w.next + 1) % w.tail
	}
}

// lines returns the last lines emitted, oldest first.
func (w *lineWriter) lines() []string {
	if len(w.last) == 0 {
		return nil
	}
	return slices.Concat(w.last[w.next:], w.last[:w.next])
}

// cutPoint returns where to split the full piece b of a long line: before
// a UTF-8 sequence that b ends in the middle of, if any, else len(b).
func cutPoint(b []byte) int {
	for i := len(b) - 1; i >= 0 && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) && i > 0 {
				return i
			}
			break
		}
	}
	return len(b)
}
