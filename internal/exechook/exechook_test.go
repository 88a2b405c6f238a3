package exechook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logBuf collects the JSON records of a slog handler.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// record is one logged line as the JSON handler wrote it.
type record struct {
	Level  string `json:"level"`
	Msg    string `json:"msg"`
	Hook   string `json:"hook"`
	Phase  string `json:"phase"`
	Stream string `json:"stream"`
}

// newLog returns a logger that records everything into the returned buffer.
func newLog() (*slog.Logger, *logBuf) {
	buf := &logBuf{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// records parses what was logged.
func (l *logBuf) records(t *testing.T) []record {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []record
	dec := json.NewDecoder(bytes.NewReader(l.b.Bytes()))
	for dec.More() {
		var r record
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("decoding log: %v\n%s", err, l.b.Bytes())
		}
		out = append(out, r)
	}
	return out
}

// writeScript writes a #!/bin/sh script with body into dir and returns its
// path.
func writeScript(t *testing.T, dir, body string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// summary describes lines briefly, long ones by their start and length.
func summary(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		if len(l) > 40 {
			fmt.Fprintf(&b, "%q...(%d bytes) ", l[:20], len(l))
		} else {
			fmt.Fprintf(&b, "%q ", l)
		}
	}
	return "[" + strings.TrimSpace(b.String()) + "]"
}

func TestRunExecOutput(t *testing.T) {
	wd := t.TempDir()
	realWD, err := filepath.EvalSymlinks(wd)
	if err != nil {
		t.Fatal(err)
	}
	x := strings.Repeat("x", maxLineLen)
	tests := []struct {
		name   string
		body   string   // script body, run as Argv[0]
		args   []string // Argv[1:] for the script
		argv   []string // run this instead of the script
		rel    bool     // run the script as ./hook.sh from its own dir
		env    []string
		dir    string
		stdout []string
		stderr []string
	}{
		{
			name:   "stdout at info, stderr at warn",
			body:   "echo out 1\necho err 1 >&2\necho out 2\necho err 2 >&2",
			stdout: []string{"out 1", "out 2"},
			stderr: []string{"err 1", "err 2"},
		},
		{
			name:   "last line without newline",
			body:   `printf 'first\nlast'; printf 'no newline' >&2`,
			stdout: []string{"first", "last"},
			stderr: []string{"no newline"},
		},
		{
			name:   "blank lines and CRLF",
			body:   `printf 'a\r\n\r\n\nb\n'`,
			stdout: []string{"a", "", "", "b"},
		},
		{
			name:   "invalid UTF-8 is logged escaped",
			body:   `printf 'bad \377 byte\n'`,
			stdout: []string{"bad \ufffd byte"},
		},
		{
			name:   "200 KiB line is split",
			body:   `head -c 204800 /dev/zero | tr '\0' x; echo; echo after`,
			stdout: []string{x, x, x, x[:204800-3*maxLineLen], "after"},
		},
		{
			name:   "env is passed as given",
			body:   `echo "$PHASED_PHASE pass=$PHASED_PASS home=${HOME-unset}"`,
			env:    []string{"PATH=" + os.Getenv("PATH"), "PHASED_PHASE=post-config", "PHASED_PASS=2"},
			stdout: []string{"post-config pass=2 home=unset"},
		},
		{
			name:   "arguments",
			body:   `for a in "$@"; do echo "[$a]"; done`,
			args:   []string{"a b", "", "c"},
			stdout: []string{"[a b]", "[]", "[c]"},
		},
		{
			name:   "command looked up in PATH",
			argv:   []string{"sh", "-c", "echo via path"},
			stdout: []string{"via path"},
		},
		{
			name:   "working directory",
			body:   "pwd -P",
			dir:    wd,
			stdout: []string{realWD},
		},
		{
			name:   "relative path from Dir",
			body:   `echo "$0"`,
			rel:    true,
			stdout: []string{"./hook.sh"},
		},
		{
			name:   "stdin is /dev/null",
			body:   `if read -r x; then echo "read $x"; else echo eof; fi; readlink /proc/self/fd/0`,
			stdout: []string{"eof", "/dev/null"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv, dir := tt.argv, tt.dir
			if argv == nil {
				script := writeScript(t, t.TempDir(), tt.body, 0o755)
				if tt.rel {
					script, dir = "./"+filepath.Base(script), filepath.Dir(script)
				}
				argv = append([]string{script}, tt.args...)
			}
			log, buf := newLog()
			err := Run(context.Background(), Spec{
				Hook: "migrate", Phase: "post-config", Argv: argv,
				Dir: dir, Env: tt.env, Timeout: 10 * time.Second, Log: log,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			var stdout, stderr []string
			for _, r := range buf.records(t) {
				if r.Hook != "migrate" || r.Phase != "post-config" {
					t.Errorf("record %+v: want hook migrate, phase post-config", r)
				}
				switch {
				case r.Stream == "stdout" && r.Level == "INFO":
					stdout = append(stdout, r.Msg)
				case r.Stream == "stderr" && r.Level == "WARN":
					stderr = append(stderr, r.Msg)
				default:
					t.Errorf("record %+v: want stdout at INFO or stderr at WARN", r)
				}
			}
			if !slices.Equal(stdout, tt.stdout) {
				t.Errorf("stdout lines = %s, want %s", summary(stdout), summary(tt.stdout))
			}
			if !slices.Equal(stderr, tt.stderr) {
				t.Errorf("stderr lines = %s, want %s", summary(stderr), summary(tt.stderr))
			}
		})
	}
}

func TestRunExecFailure(t *testing.T) {
	const ok = "echo fine"
	tests := []struct {
		name     string
		body     string
		mode     os.FileMode
		argv     func(t *testing.T, dir string) []string // default: the script
		dir      string                                  // relative to the test's dir
		cancel   bool                                    // cancel ctx before Run
		exitCode int
		signal   string
		tail     []string
		is       error  // errors.Is(err, is); nil: Error.Err must be nil
		msg      string // $DIR is the test's dir
	}{
		{
			name:     "exit status with the last 10 stderr lines",
			body:     "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo \"line $i\" >&2; done\necho on stdout\nexit 3",
			exitCode: 3,
			tail:     []string{"line 3", "line 4", "line 5", "line 6", "line 7", "line 8", "line 9", "line 10", "line 11", "line 12"},
			msg: "hook \"migrate\" (post-config): exit status 3; last lines of stderr:\n" +
				"  line 3\n  line 4\n  line 5\n  line 6\n  line 7\n  line 8\n  line 9\n  line 10\n  line 11\n  line 12",
		},
		{
			name:     "exit status without stderr",
			body:     "echo on stdout\nexit 1",
			exitCode: 1,
			msg:      `hook "migrate" (post-config): exit status 1`,
		},
		{
			name:     "killed by a signal",
			body:     "echo dying >&2\nkill -KILL $$",
			exitCode: -1,
			signal:   "killed",
			tail:     []string{"dying"},
			msg:      "hook \"migrate\" (post-config): signal: killed; last lines of stderr:\n  dying",
		},
		{
			name:     "path not found",
			body:     ok,
			argv:     func(_ *testing.T, dir string) []string { return []string{filepath.Join(dir, "missing.sh")} },
			exitCode: -1,
			is:       fs.ErrNotExist,
			msg:      `hook "migrate" (post-config): cannot run $DIR/missing.sh: no such file or directory`,
		},
		{
			name:     "name not found in PATH",
			body:     ok,
			argv:     func(*testing.T, string) []string { return []string{"phased-test-no-such-command"} },
			exitCode: -1,
			is:       exec.ErrNotFound,
			msg:      `hook "migrate" (post-config): cannot run phased-test-no-such-command: executable file not found in $PATH`,
		},
		{
			name:     "not executable",
			body:     ok,
			mode:     0o644,
			exitCode: -1,
			is:       fs.ErrPermission,
			msg:      `hook "migrate" (post-config): cannot run $DIR/hook.sh: permission denied`,
		},
		{
			name: "not an executable format",
			body: ok,
			argv: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "text")
				if err := os.WriteFile(p, []byte("just text\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				return []string{p}
			},
			exitCode: -1,
			is:       syscall.ENOEXEC,
			msg:      `hook "migrate" (post-config): cannot run $DIR/text: exec format error`,
		},
		{
			name:     "working directory missing",
			body:     ok,
			dir:      "nope",
			exitCode: -1,
			is:       fs.ErrNotExist,
			msg:      `hook "migrate" (post-config): cannot run $DIR/hook.sh: chdir $DIR/nope: no such file or directory`,
		},
		{
			name:     "empty command",
			argv:     func(*testing.T, string) []string { return nil },
			exitCode: -1,
			is:       errNoCommand,
			msg:      `hook "migrate" (post-config): cannot run: no command given`,
		},
		{
			name:     "cancelled before it started",
			body:     ok,
			cancel:   true,
			exitCode: -1,
			is:       context.Canceled,
			msg:      `hook "migrate" (post-config): cannot run $DIR/hook.sh: context canceled`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mode := tt.mode
			if mode == 0 {
				mode = 0o755
			}
			script := writeScript(t, dir, tt.body, mode)
			argv := []string{script}
			if tt.argv != nil {
				argv = tt.argv(t, dir)
			}
			spec := Spec{Hook: "migrate", Phase: "post-config", Argv: argv, Timeout: 10 * time.Second}
			if tt.dir != "" {
				spec.Dir = filepath.Join(dir, tt.dir)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}

			err := Run(ctx, spec)
			var ee *Error
			if !errors.As(err, &ee) {
				t.Fatalf("Run = %v (%T), want an *Error", err, err)
			}
			if ee.Hook != "migrate" || ee.Phase != "post-config" {
				t.Errorf("Hook, Phase = %q, %q; want migrate, post-config", ee.Hook, ee.Phase)
			}
			if ee.ExitCode != tt.exitCode || ee.Signal != tt.signal || ee.TimedOut {
				t.Errorf("ExitCode, Signal, TimedOut = %d, %q, %v; want %d, %q, false",
					ee.ExitCode, ee.Signal, ee.TimedOut, tt.exitCode, tt.signal)
			}
			if !slices.Equal(ee.Tail, tt.tail) {
				t.Errorf("Tail = %q, want %q", ee.Tail, tt.tail)
			}
			switch {
			case tt.is == nil && ee.Err != nil:
				t.Errorf("Err = %v, want nil", ee.Err)
			case tt.is != nil && !errors.Is(err, tt.is):
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if want := strings.ReplaceAll(tt.msg, "$DIR", dir); err.Error() != want {
				t.Errorf("Error() =\n%s\nwant\n%s", err, want)
			}
		})
	}
}

// procGone reports whether pid has exited: its /proc/PID/stat is missing or
// says zombie (Z) or dead (X). kill -0 would succeed on a zombie.
func procGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses and may
	// itself hold ") ".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// readPid reads a pid a script wrote to path and makes sure the test does
// not leave the process behind.
func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the script did not write its pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("pid file %s holds %q", path, b)
	}
	t.Cleanup(func() {
		if !procGone(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return pid
}

// waitGone fails the test unless pid is gone within d.
func waitGone(t *testing.T, what string, pid int, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); !procGone(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%s (pid %d) still runs %v after Run returned", what, pid, d)
			return
		}
	}
}

func TestRunExecKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills process groups and waits for them; skipped with -short")
	}
	// The script leaves a sleep in the background and another in a session
	// of its own (out of the hook's process group), writes their pids and
	// blocks in a foreground sleep; the sleeps hold the output pipes.
	const body = `
sleep 30 &
echo $! > "$1/bg.pid"
setsid sh -c 'echo $$ > "$1/sid.pid"; exec sleep 30' sh "$1" &
while [ ! -s "$1/sid.pid" ]; do sleep 0.01; done
echo started
echo "about to block" >&2
sh -c 'echo $$ > "$1/fg.pid"; exec sleep 30' sh "$1"
echo unreachable`
	const limit = 500 * time.Millisecond
	tests := []struct {
		name     string
		trap     string        // prepended to body
		timeout  time.Duration // Spec.Timeout
		ctx      string        // "cancel": cancelled once fg.pid holds its pid; "deadline": a deadline of limit
		timedOut bool
		signal   string
		is       error
		msg      string
	}{
		{
			name:     "timeout",
			timeout:  limit,
			timedOut: true,
			signal:   "terminated",
			msg:      "hook \"warm\" (post-config): timed out after 500ms and was killed; last lines of stderr:\n  about to block",
		},
		{
			name:     "timeout with SIGTERM ignored",
			trap:     "trap '' TERM",
			timeout:  limit,
			timedOut: true,
			signal:   "killed",
			msg:      "hook \"warm\" (post-config): timed out after 500ms and was killed; last lines of stderr:\n  about to block",
		},
		{
			name:   "cancelled",
			ctx:    "cancel",
			signal: "terminated",
			is:     context.Canceled,
			msg:    "hook \"warm\" (post-config): cancelled and was killed; last lines of stderr:\n  about to block",
		},
		{
			name:   "context deadline",
			ctx:    "deadline",
			signal: "terminated",
			is:     context.DeadlineExceeded,
			msg:    "hook \"warm\" (post-config): cancelled (context deadline exceeded) and was killed; last lines of stderr:\n  about to block",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			script := writeScript(t, dir, tt.trap+body, 0o755)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			switch tt.ctx {
			case "cancel":
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					for {
						// Written, not only created: the shell opens the
						// file before it writes the pid.
						if fi, err := os.Stat(filepath.Join(dir, "fg.pid")); err == nil && fi.Size() > 0 {
							cancel()
							return
						}
						select {
						case <-stop:
							return
						case <-time.After(10 * time.Millisecond):
						}
					}
				}()
			case "deadline":
				ctx, cancel = context.WithTimeout(ctx, limit)
				defer cancel()
			}
			log, buf := newLog()

			start := time.Now()
			err := Run(ctx, Spec{
				Hook: "warm", Phase: "post-config", Argv: []string{script, dir},
				Timeout: tt.timeout, Log: log,
			})
			took := time.Since(start)

			bg := readPid(t, filepath.Join(dir, "bg.pid"))
			fg := readPid(t, filepath.Join(dir, "fg.pid"))
			if took > limit+2*time.Second {
				t.Errorf("Run took %v, want at most %v", took, limit+2*time.Second)
			}
			if tt.timedOut && took < tt.timeout {
				t.Errorf("Run took %v, less than the timeout %v", took, tt.timeout)
			}
			var ee *Error
			if !errors.As(err, &ee) {
				t.Fatalf("Run = %v (%T), want an *Error", err, err)
			}
			if ee.TimedOut != tt.timedOut || ee.Signal != tt.signal || ee.ExitCode != -1 {
				t.Errorf("TimedOut, Signal, ExitCode = %v, %q, %d; want %v, %q, -1",
					ee.TimedOut, ee.Signal, ee.ExitCode, tt.timedOut, tt.signal)
			}
			switch {
			case tt.is == nil && ee.Err != nil:
				t.Errorf("Err = %v, want nil", ee.Err)
			case tt.is != nil && !errors.Is(err, tt.is):
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if err.Error() != tt.msg {
				t.Errorf("Error() =\n%s\nwant\n%s", err, tt.msg)
			}
			sid := readPid(t, filepath.Join(dir, "sid.pid"))
			waitGone(t, "background sleep", bg, 2*time.Second)
			waitGone(t, "foreground sleep", fg, 2*time.Second)
			waitGone(t, "sleep in a session of its own", sid, 2*time.Second)
			for _, r := range buf.records(t) {
				if r.Msg == "unreachable" {
					t.Errorf("the script went on after its sleep was killed")
				}
			}
		})
	}
}

func TestRunExecLeftoverHoldingOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the output pipes' grace period; skipped with -short")
	}
	dir := t.TempDir()
	script := writeScript(t, dir, `sleep 30 &
echo $! > "$1/bg.pid"
echo done`, 0o755)
	log, buf := newLog()

	start := time.Now()
	err := Run(context.Background(), Spec{Hook: "daemon", Phase: "post-config", Argv: []string{script, dir}, Log: log})
	took := time.Since(start)

	pid := readPid(t, filepath.Join(dir, "bg.pid"))
	if err != nil {
		t.Errorf("Run = %v, want nil: the hook itself exited 0", err)
	}
	if took > waitDelay+2*time.Second {
		t.Errorf("Run took %v, want about %v", took, waitDelay)
	}
	var msgs []string
	for _, r := range buf.records(t) {
		msgs = append(msgs, r.Level+" "+r.Msg)
	}
	want := []string{"INFO done", "WARN hook exited but left a process holding its output; no longer logging it"}
	if !slices.Equal(msgs, want) {
		t.Errorf("logged %q, want %q", msgs, want)
	}
	if procGone(pid) {
		t.Errorf("the leftover sleep was killed; Run should leave it alone when the hook succeeds")
	}
}

func TestLineWriter(t *testing.T) {
	x := strings.Repeat("x", maxLineLen)
	tests := []struct {
		name   string
		writes []string
		lines  []string
	}{
		{"lines across writes", []string{"ab", "c\nd", "e\nf\n"}, []string{"abc", "de", "f"}},
		{"last line without newline", []string{"a\nb"}, []string{"a", "b"}},
		{"empty lines", []string{"\n\r\n", "\n"}, []string{"", "", ""}},
		{"only a trailing CR is dropped", []string{"a\rb\r\r\n"}, []string{"a\rb\r"}},
		{"exactly 64 KiB", []string{x[:100], x[100:], "\n"}, []string{x}},
		{"64 KiB and one byte", []string{x + "y\n"}, []string{x, "y"}},
		{"64 KiB without newline", []string{x}, []string{x}},
		{"split before a rune", []string{x[1:] + "é\n"}, []string{x[1:], "é"}},
		{"split before a 4-byte rune", []string{x[2:] + "😀z"}, []string{x[2:], "😀z"}},
		{"invalid byte at the split", []string{x[1:] + "\xffy\n"}, []string{x[1:] + "\xff", "y"}},
		{"many pieces", []string{x, x, x, "tail"}, []string{x, x, x, "tail"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			w := &lineWriter{emit: func(l string) { got = append(got, l) }}
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(s))
				}
			}
			w.flush()
			if !slices.Equal(got, tt.lines) {
				t.Errorf("lines = %s, want %s", summary(got), summary(tt.lines))
			}
		})
	}
}

func TestLineWriterTail(t *testing.T) {
	for _, n := range []int{0, 3, 10, 11, 25} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			w := &lineWriter{tail: tailLines, emit: func(string) {}}
			var all []string
			for i := range n {
				all = append(all, "line "+strconv.Itoa(i))
				fmt.Fprintln(w, all[i])
			}
			w.flush()
			want := all[max(0, n-tailLines):]
			if got := w.lines(); !slices.Equal(got, want) {
				t.Errorf("lines() = %q, want %q", got, want)
			}
		})
	}
}

func TestExecErrorMessage(t *testing.T) {
	long := strings.Repeat("é", maxTailLineLen) // 2 bytes a rune
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{
			name: "exit status",
			err: &Error{Hook: "migrate", Phase: "post-config", Path: "./m.sh", ExitCode: 3,
				Tail: []string{`ERROR: relation "x" does not exist`, "HINT: run setup"}},
			want: "hook \"migrate\" (post-config): exit status 3; last lines of stderr:\n" +
				"  ERROR: relation \"x\" does not exist\n  HINT: run setup",
		},
		{
			name: "timed out",
			err: &Error{Hook: "warm", Phase: "post-config", ExitCode: -1, Signal: "terminated",
				TimedOut: true, Timeout: 2 * time.Second},
			want: `hook "warm" (post-config): timed out after 2s and was killed`,
		},
		{
			name: "permission denied",
			err: &Error{Hook: "check", Phase: "configure", Path: "./scripts/check.sh", ExitCode: -1,
				Err: &fs.PathError{Op: "fork/exec", Path: "./scripts/check.sh", Err: syscall.EACCES}},
			want: `hook "check" (configure): cannot run ./scripts/check.sh: permission denied`,
		},
		{
			name: "cancelled",
			err:  &Error{Hook: "warm", Phase: "post-config", ExitCode: -1, Signal: "killed", Err: context.Canceled},
			want: `hook "warm" (post-config): cancelled and was killed`,
		},
		{
			name: "signal",
			err:  &Error{Hook: "h", Phase: "shutdown", ExitCode: -1, Signal: "segmentation fault"},
			want: `hook "h" (shutdown): signal: segmentation fault`,
		},
		{
			name: "long tail line is shortened",
			err:  &Error{Hook: "h", Phase: "configure", ExitCode: 1, Tail: []string{"a" + long}},
			want: "hook \"h\" (configure): exit status 1; last lines of stderr:\n  a" + long[:maxTailLineLen-2] + "...",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() =\n%s\nwant\n%s", got, tt.want)
			}
			if tt.err.Err != nil && !errors.Is(tt.err, tt.err.Err) {
				t.Errorf("errors.Is(err, err.Err) = false")
			}
		})
	}
}
