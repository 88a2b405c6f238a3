package accesslog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

// recorder is an io.Writer that keeps each Write call apart.
type recorder struct {
	mu     sync.Mutex
	writes [][]byte
	err    error // returned by every Write while set
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recorder) calls() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.writes...)
}

// checkWhole fails unless every Write held only whole lines, and returns
// the lines.
func (r *recorder) checkWhole(t *testing.T) []string {
	t.Helper()
	var lines []string
	for i, w := range r.calls() {
		if len(w) == 0 || w[len(w)-1] != '\n' {
			t.Fatalf("write %d does not end a line: %q", i, w)
		}
		lines = append(lines, strings.Split(string(w[:len(w)-1]), "\n")...)
	}
	return lines
}

func (r *recorder) String() string {
	return string(bytes.Join(r.calls(), nil))
}

func TestWriterFlushAndClose(t *testing.T) {
	rec := &recorder{}
	w := NewWriter(rec, WriterOptions{FlushInterval: time.Hour})
	for i := range 3 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if n := len(rec.calls()); n != 0 {
		t.Fatalf("%d writes before Flush", n)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := rec.calls(); len(got) != 1 || string(got[0]) != "line 0\nline 1\nline 2\n" {
		t.Fatalf("Flush wrote %q, want one write of three lines", got)
	}
	if err := w.Flush(); err != nil || len(rec.calls()) != 1 {
		t.Fatalf("empty Flush: %v, %d writes", err, len(rec.calls()))
	}
	w.Write([]byte("no newline"))
	w.Write([]byte("two\nlines\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rec.calls(); len(got) != 2 || string(got[1]) != "no newline\ntwo\nlines\n" {
		t.Fatalf("Close wrote %q", got)
	}
	if n, err := w.Write([]byte("late\n")); n != 0 || !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %d, %v; want ErrClosed", n, err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := len(rec.calls()); n != 2 {
		t.Errorf("%d writes after Close", n)
	}
}

func TestWriterBatches(t *testing.T) {
	rec := &recorder{}
	w := NewWriter(rec, WriterOptions{BufferSize: 100, FlushInterval: -1})
	line := strings.Repeat("a", 29) + "\n" // 30 bytes: three fit, the fourth flushes
	for range 7 {
		w.Write([]byte(line))
	}
	big := strings.Repeat("b", 250)
	w.Write([]byte(big)) // larger than the buffer: written alone, after the batch
	w.Write([]byte(line))
	w.Close()

	var sizes []int
	for _, c := range rec.calls() {
		sizes = append(sizes, len(c))
	}
	if fmt.Sprint(sizes) != "[90 90 30 251 30]" {
		t.Errorf("write sizes %v, want [90 90 30 251 30]", sizes)
	}
	if got := rec.checkWhole(t); len(got) != 9 || got[7] != big {
		t.Errorf("lines %q", got)
	}
	if c := rec.calls(); string(c[3]) != big+"\n" {
		t.Errorf("big line written as %q", c[3])
	}
}

func TestWriterUnbuffered(t *testing.T) {
	rec := &recorder{}
	w := NewWriter(rec, WriterOptions{BufferSize: 1})
	w.Write([]byte("a\n"))
	w.Write([]byte("b\n"))
	if n := len(rec.calls()); n != 2 {
		t.Errorf("BufferSize 1: %d writes after two lines, want 2", n)
	}
	w.Close()
}

func TestWriterTimer(t *testing.T) {
	rec := &recorder{}
	w := NewWriter(rec, WriterOptions{FlushInterval: 5 * time.Millisecond})
	defer w.Close()
	for round := range 3 {
		w.Write([]byte("tick\n"))
		deadline := time.Now().Add(5 * time.Second)
		for len(rec.calls()) < round+1 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the timer never flushed", round)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func TestWriterDefaults(t *testing.T) {
	w := NewWriter(&recorder{}, WriterOptions{})
	defer w.Close()
	if w.interval != DefaultFlushInterval || w.size != DefaultBufferSize {
		t.Errorf("defaults: %v, %d", w.interval, w.size)
	}
}

func TestWriterErrors(t *testing.T) {
	boom := errors.New("disk full")
	rec := &recorder{err: boom}
	w := NewWriter(rec, WriterOptions{BufferSize: 10, FlushInterval: -1})
	w.Write([]byte("12345\n"))
	w.Write([]byte("67890\n")) // overflows: the first batch fails in the background
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Errorf("Flush = %v, want %v", err, boom)
	}
	if err := w.Flush(); err != nil {
		t.Errorf("second Flush = %v, want nil: the error was reported", err)
	}
	if _, err := w.Write([]byte(strings.Repeat("x", 20))); !errors.Is(err, boom) {
		t.Errorf("Write of a big line = %v, want %v", err, boom)
	}
	rec.mu.Lock()
	rec.err = nil
	rec.mu.Unlock()
	w.Write([]byte("ok\n"))
	if err := w.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if got := rec.String(); got != "ok\n" {
		t.Errorf("wrote %q", got)
	}
}

// checkedLine returns a self-checking line: its writer, its sequence number,
// a filler whose length depends on both, and that length.
func checkedLine(id, seq int) string {
	n := (seq*37 + id*11) % 300
	if seq%97 == 0 {
		n = 5000 // larger than the test buffers: written alone
	}
	return fmt.Sprintf("w=%d seq=%d %s %d\n", id, seq, strings.Repeat(string(rune('a'+(id+seq)%26)), n), n)
}

// checkLines verifies that data holds only whole lines from checkedLine, in
// order per writer, and returns how many came from each writer.
func checkLines(t *testing.T, data []byte) map[int]int {
	t.Helper()
	next := make(map[int]int)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var id, seq int
		if _, err := fmt.Sscanf(sc.Text(), "w=%d seq=%d ", &id, &seq); err != nil {
			t.Fatalf("torn line %.80q: %v", sc.Text(), err)
		}
		if want := checkedLine(id, seq); sc.Text()+"\n" != want {
			t.Fatalf("torn line %.80q", sc.Text())
		}
		if seq != next[id] {
			t.Fatalf("writer %d: line %d after %d", id, seq, next[id]-1)
		}
		next[id]++
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatal("data ends inside a line")
	}
	return next
}

func TestConcurrentWritersNeverTear(t *testing.T) {
	rec := &recorder{}
	w := NewWriter(rec, WriterOptions{BufferSize: 4096, FlushInterval: time.Millisecond})
	const goroutines, lines = 50, 400
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range lines {
				w.Write([]byte(checkedLine(g, i)))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rec.checkWhole(t)
	for i, c := range rec.calls() {
		if len(c) > 4096 && bytes.Count(c, []byte("\n")) != 1 {
			t.Fatalf("write %d is %d bytes and holds several lines", i, len(c))
		}
	}
	counts := checkLines(t, []byte(rec.String()))
	for g := range goroutines {
		if counts[g] != lines {
			t.Errorf("goroutine %d: %d lines, want %d", g, counts[g], lines)
		}
	}
}

const (
	helperEnv     = "ACCESSLOG_TEST_HELPER" // "append": run as an appending process
	helperPathEnv = "ACCESSLOG_TEST_PATH"
	helperIDEnv   = "ACCESSLOG_TEST_ID"
	helperLines   = 3000
)

// TestHelperProcess is not a test: it is the child of
// TestProcessesShareAppendFile, started by re-executing the test binary.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "append" {
		return
	}
	id, _ := strconv.Atoi(os.Getenv(helperIDEnv))
	f, err := os.OpenFile(os.Getenv(helperPathEnv), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := NewWriter(f, WriterOptions{BufferSize: 4096, FlushInterval: time.Millisecond})
	for i := range helperLines {
		w.Write([]byte(checkedLine(id, i)))
	}
	if err := w.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	f.Close()
	os.Exit(0)
}

// TestProcessesShareAppendFile has several processes append to one O_APPEND
// file through Writer, as the children of phased do, and checks that the
// file holds only whole lines.
func TestProcessesShareAppendFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const procs = 4
	var cmds []*exec.Cmd
	for id := range procs {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			helperEnv+"=append", helperPathEnv+"="+path, helperIDEnv+"="+strconv.Itoa(id))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() && stderr.Len() > 0 {
				t.Logf("helper %d: %s", id, stderr.String())
			}
		})
		cmds = append(cmds, cmd)
	}
	for id, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v", id, err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	counts := checkLines(t, data)
	for id := range procs {
		if counts[id] != helperLines {
			t.Errorf("process %d: %d lines, want %d", id, counts[id], helperLines)
		}
	}
}

// records returns the JSON records of an error log. The tests that use it
// write from their own goroutine alone (no flush timer), so a plain buffer
// does.
func records(t *testing.T, log *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestWriterReportsLostLines: lines lost to failed writes are never lost
// silently. The error log hears of each cause once, with the running
// count, and of the recovery with the total; OnDrop hears of every failed
// write; Dropped counts the lines.
func TestWriterReportsLostLines(t *testing.T) {
	enospc := &os.PathError{Op: "write", Path: "access.log", Err: syscall.ENOSPC}
	eio := &os.PathError{Op: "write", Path: "access.log", Err: syscall.EIO}
	rec := &recorder{err: enospc}
	logs := &bytes.Buffer{}
	var dropped, failures int
	w := NewWriter(rec, WriterOptions{FlushInterval: -1, Log: slog.New(slog.NewJSONHandler(logs, nil)),
		OnDrop: func(lines int, err error) { dropped += lines; failures++ }})
	setErr := func(err error) {
		rec.mu.Lock()
		rec.err = err
		rec.mu.Unlock()
	}
	batch := func(lines int) {
		for i := range lines {
			fmt.Fprintf(w, "line %d\n", i)
		}
		w.Flush()
	}
	batch(3) // ENOSPC: logged
	batch(4) // ENOSPC again: counted, not logged
	setErr(eio)
	batch(2) // EIO: a new cause, logged with the running count
	setErr(enospc)
	batch(1) // ENOSPC, already logged in this spell
	setErr(nil)
	batch(1) // writable again: logged with the spell's loss
	batch(1) // nothing more to say
	setErr(enospc)
	batch(5) // a new spell: ENOSPC is news again

	type rec2 struct {
		level, msg string
		lost       float64
	}
	var got []rec2
	for _, r := range records(t, logs) {
		lost, _ := r["lines_lost"].(float64)
		got = append(got, rec2{r["level"].(string), r["msg"].(string), lost})
	}
	const failed = "access log write failed; its lines are dropped until writes succeed again"
	want := []rec2{
		{"ERROR", failed, 3},
		{"ERROR", failed, 9},
		{"WARN", "access log writable again", 10},
		{"ERROR", failed, 5},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("error log:\n got  %v\n want %v", got, want)
	}
	if dropped != 15 || failures != 5 || w.Dropped() != 15 {
		t.Fatalf("OnDrop heard %d lines in %d failures, Dropped = %d; want 15 in 5", dropped, failures, w.Dropped())
	}
	if got := rec.String(); got != "line 0\nline 0\n" {
		t.Fatalf("written: %q", got)
	}
}

// TestWriterOnFullDevice writes to /dev/full, where every write fails with
// ENOSPC as on a full disk: every line is counted lost and the error log
// says so, once.
func TestWriterOnFullDevice(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer f.Close()
	logs := &bytes.Buffer{}
	w := NewWriter(f, WriterOptions{BufferSize: 64, FlushInterval: -1, Log: slog.New(slog.NewJSONHandler(logs, nil))})
	for i := range 100 {
		fmt.Fprintf(w, "GET /%d\n", i) // batches of up to 64 bytes fail as they fill
	}
	if err := w.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Close = %v, want ENOSPC", err)
	}
	if w.Dropped() != 100 {
		t.Fatalf("Dropped = %d, want 100", w.Dropped())
	}
	recs := records(t, logs)
	if len(recs) != 1 || recs[0]["level"] != "ERROR" || !strings.Contains(recs[0]["err"].(string), "no space left on device") {
		t.Fatalf("error log: %v; want one error naming ENOSPC", recs)
	}
}
