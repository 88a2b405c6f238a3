package logging

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
	}{
		{"debug", slog.LevelDebug},
		{"INFO", slog.LevelInfo},
		{"Notice", LevelNotice},
		{"warn", slog.LevelWarn},
		{"eRRor", slog.LevelError},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLevel(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseLevel(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "warning", "verbose", " info"} {
		t.Run("bad/"+bad, func(t *testing.T) {
			_, err := ParseLevel(bad)
			if err == nil {
				t.Fatalf("ParseLevel(%q) succeeded", bad)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("%q", bad)) || !strings.Contains(msg, "debug, info, notice, warn, error") {
				t.Errorf("error %q does not name the value and the valid levels", msg)
			}
		})
	}
}

func FuzzParseLevel(f *testing.F) {
	for _, s := range []string{"debug", "info", "notice", "warn", "error", "", "NOTICE", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLevel(s)
		if err != nil {
			return
		}
		back, err := ParseLevel(levelName(l))
		if err != nil || back != l {
			t.Fatalf("ParseLevel(%q) = %v, does not round-trip", s, l)
		}
	})
}

func levelName(l slog.Level) string {
	if l == LevelNotice {
		return "notice"
	}
	return strings.ToLower(l.String())
}

// decodeLines decodes each line of b as a JSON object.
func decodeLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func messages(recs []map[string]any) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprint(r["msg"]))
	}
	return out
}

func TestLevelFiltering(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		level slog.Level
		want  []string
	}{
		{slog.LevelDebug, []string{"debug", "info", "notice", "warn", "error"}},
		{slog.LevelInfo, []string{"info", "notice", "warn", "error"}},
		{LevelNotice, []string{"notice", "warn", "error"}},
		{slog.LevelWarn, []string{"notice", "warn", "error"}},
		{slog.LevelError, []string{"notice", "error"}},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			// Derived loggers must keep the notice rule: the handler is
			// re-wrapped by WithAttrs and WithGroup.
			for name, derive := range map[string]func(*slog.Logger) *slog.Logger{
				"plain":     func(l *slog.Logger) *slog.Logger { return l },
				"with":      func(l *slog.Logger) *slog.Logger { return l.With("phase", "post-config") },
				"group":     func(l *slog.Logger) *slog.Logger { return l.WithGroup("g") },
				"withgroup": func(l *slog.Logger) *slog.Logger { return l.WithGroup("g").With("pid", 1) },
			} {
				var buf bytes.Buffer
				l := derive(New(&buf, tt.level, "json"))
				l.Debug("debug")
				l.Info("info")
				l.Log(ctx, LevelNotice, "notice")
				l.Warn("warn")
				l.Error("error")
				got := messages(decodeLines(t, buf.Bytes()))
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("%s: logged %v, want %v", name, got, tt.want)
				}
			}
		})
	}
}

func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, slog.LevelDebug, "json")
	before := time.Now().Add(-time.Second)
	l.Log(context.Background(), LevelNotice, "resuming normal operations", "generation", 2)
	l.Info("child spawned", "pid", 42)
	l.WithGroup("hook").Log(context.Background(), LevelNotice, "ran", "name", "migrate")

	recs := decodeLines(t, buf.Bytes())
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3:\n%s", len(recs), buf.String())
	}
	for i, r := range recs {
		ts, ok := r["time"].(string)
		if !ok {
			t.Fatalf("record %d has no time: %v", i, r)
		}
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || tm.Before(before) {
			t.Errorf("record %d: time %q: %v", i, ts, err)
		}
	}
	want := []map[string]any{
		{"level": "NOTICE", "msg": "resuming normal operations", "generation": 2.0},
		{"level": "INFO", "msg": "child spawned", "pid": 42.0},
		{"level": "NOTICE", "msg": "ran", "hook": map[string]any{"name": "migrate"}},
	}
	for i, w := range want {
		delete(recs[i], "time")
		if fmt.Sprint(recs[i]) != fmt.Sprint(w) {
			t.Errorf("record %d = %v, want %v", i, recs[i], w)
		}
	}
}

func TestTextFormat(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, slog.LevelInfo, "TEXT")
	l.Log(context.Background(), LevelNotice, "caught SIGTERM, shutting down", "pid", 7)
	l.Info("listening", "addr", "127.0.0.1:8080")
	l.Debug("hidden")

	re := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (\S+) (.*)$`)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := [][2]string{
		{"NOTICE", "caught SIGTERM, shutting down pid=7"},
		{"INF", "listening addr=127.0.0.1:8080"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, line := range lines {
		m := re.FindStringSubmatch(line)
		if m == nil || m[1] != want[i][0] || m[2] != want[i][1] {
			t.Errorf("line %d = %q, want level %s and %q", i, line, want[i][0], want[i][1])
		}
	}
	if strings.Contains(buf.String(), "\x1b") {
		t.Errorf("text output to a non-terminal is coloured: %q", buf.String())
	}
}

func TestAutoFormatIsJSONOffTerminal(t *testing.T) {
	for _, format := range []string{"auto", "", "bogus"} {
		var buf bytes.Buffer
		New(&buf, slog.LevelInfo, format).Info("hello")
		if recs := decodeLines(t, buf.Bytes()); len(recs) != 1 || recs[0]["msg"] != "hello" {
			t.Errorf("format %q: got %q, want one JSON record", format, buf.String())
		}
	}
}

func TestOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "error.log")
	if err := os.WriteFile(path, []byte(`{"msg":"earlier"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(Options{Path: path, Level: "warn", Format: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	l.Logger().Info("dropped")
	l.Logger().Log(context.Background(), LevelNotice, "kept")
	l.Logger().Error("failed", "err", errors.New("boom"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	l.Logger().Error("after close") // dropped, must not panic

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := decodeLines(t, b)
	if got := messages(recs); fmt.Sprint(got) != "[earlier kept failed]" {
		t.Errorf("file holds %v", got)
	}
	if recs[2]["err"] != "boom" {
		t.Errorf("err attribute = %v", recs[2]["err"])
	}
}

func TestOpenStd(t *testing.T) {
	for _, path := range []string{"", "stderr", "stdout"} {
		l, err := Open(Options{Path: path, Format: "json"})
		if err != nil {
			t.Fatalf("Open(%q): %v", path, err)
		}
		if err := l.Reopen(); err != nil {
			t.Errorf("Reopen(%q): %v", path, err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("Close(%q): %v", path, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing", "error.log")
	tests := []struct {
		name string
		opts Options
		want string
		is   error
	}{
		{"missing dir", Options{Path: missing}, "opening error log " + missing + ": no such file or directory", fs.ErrNotExist},
		{"directory", Options{Path: dir}, "opening error log " + dir + ": is a directory", nil},
		{"level", Options{Level: "loud"}, `error log: unknown log level "loud" (valid: debug, info, notice, warn, error)`, nil},
		{"format", Options{Format: "xml"}, `error log: unknown log format "xml" (valid: auto, text, json)`, nil},
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(ro, "error.log")
		tests = append(tests, struct {
			name string
			opts Options
			want string
			is   error
		}{"permission", Options{Path: p}, "opening error log " + p + ": permission denied", fs.ErrPermission})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Open(tt.opts)
			if err == nil {
				l.Close()
				t.Fatal("Open succeeded")
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

// TestReopenAfterRename plays logrotate while several goroutines log: write,
// rename the file away, Reopen, write. No line may be lost or torn, and lines
// after Reopen land in a new file at the old path.
func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "error.log")
	l, err := Open(Options{Path: path, Level: "info", Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	const writers = 8
	var (
		stop    atomic.Bool
		written atomic.Int64
		wg      sync.WaitGroup
	)
	for g := range writers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				l.Logger().Info("tick", "g", g, "i", i)
				written.Add(1)
			}
		})
	}
	waitFor := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for written.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d lines written", written.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}

	waitFor(200)
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	waitFor(written.Load() + 200)
	stop.Store(true)
	wg.Wait()
	l.Logger().Info("after rotation")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	oldB, err := os.ReadFile(rotated)
	if err != nil {
		t.Fatal(err)
	}
	newB, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	oldRecs, newRecs := decodeLines(t, oldB), decodeLines(t, newB)
	if got, want := int64(len(oldRecs)+len(newRecs)), written.Load()+1; got != want {
		t.Errorf("files hold %d lines (%d rotated, %d new), want %d", got, len(oldRecs), len(newRecs), want)
	}
	if len(oldRecs) == 0 || len(newRecs) < 2 {
		t.Errorf("rotated file has %d lines, new file %d", len(oldRecs), len(newRecs))
	}
	if last := newRecs[len(newRecs)-1]["msg"]; last != "after rotation" {
		t.Errorf("last line of the new file is %v", last)
	}
	// Each goroutine's sequence must be complete and in order across files.
	next := make(map[float64]float64)
	for _, r := range append(oldRecs, newRecs...) {
		if r["msg"] != "tick" {
			continue
		}
		g, i := r["g"].(float64), r["i"].(float64)
		if i != next[g] {
			t.Fatalf("goroutine %v: line %v follows %v", g, i, next[g]-1)
		}
		next[g] = i + 1
	}
}

func TestReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "logs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "error.log")
	l, err := Open(Options{Path: path, Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(sub, moved); err != nil {
		t.Fatal(err)
	}
	err = l.Reopen()
	if want := "reopening error log " + path + ": no such file or directory"; err == nil || err.Error() != want {
		t.Fatalf("Reopen = %v, want %q", err, want)
	}
	l.Logger().Info("still here")
	l.Close()
	b, err := os.ReadFile(filepath.Join(moved, "error.log"))
	if err != nil {
		t.Fatal(err)
	}
	if got := messages(decodeLines(t, b)); fmt.Sprint(got) != "[still here]" {
		t.Errorf("old file holds %v", got)
	}
}

func TestReopenClosed(t *testing.T) {
	l, err := Open(Options{Path: filepath.Join(t.TempDir(), "error.log")})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := l.Reopen(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Reopen after Close = %v, want os.ErrClosed", err)
	}
}

func TestAutoFormatOnTerminalIsColouredText(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(&buf, slog.LevelInfo, formatAuto, true)
	l.Log(context.Background(), LevelNotice, "hello")
	if got := buf.String(); !strings.Contains(got, "\x1b[96mNOTICE\x1b[0m hello") {
		t.Errorf("got %q, want a cyan NOTICE label and the message", got)
	}
}
