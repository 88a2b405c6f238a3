package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// TestAccessLogOnStdout: access_log.path stdout (or stderr) writes the
// children's lines to the master's stdout (stderr), where a container's
// log collector reads them, every line whole; it used to create a file
// named "stdout" in the working folder and write there.
func TestAccessLogOnStdout(t *testing.T) {
	for _, path := range []string{"stdout", "stderr"} {
		t.Run(path, func(t *testing.T) {
			s := e2e.StartServer(t, "access_log: {path: "+path+", format: json}\nerror_log: {path: stderr, format: json, level: notice}\n")
			r := e2e.Load(s.Addr, "/hello.txt", 8, false, 3000, nil)
			if r.Errors+r.Non2xx > 0 || r.Requests != 3000 {
				t.Fatalf("load: %v", r)
			}
			s.Signal(t, syscall.SIGTERM)
			s.WaitExit(t, 15*time.Second)
			time.Sleep(200 * time.Millisecond) // the last lines through the pipe
			n := 0
			for line := range strings.SplitSeq(s.Log.String(), "\n") {
				if line == "" {
					continue
				}
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("a line that is not JSON (interleaved writes?): %q", line)
				}
				if rec["request"] == "GET /hello.txt HTTP/1.1" {
					n++
				}
			}
			if n != 3000 {
				t.Errorf("%d access-log lines on %s, want 3000", n, path)
			}
			if _, err := os.Stat(filepath.Join(s.Dir, path)); err == nil {
				t.Errorf("a file named %q was created", path)
			}
		})
	}
}

// TestLongTMPDIR: a TMPDIR so long that the plugin sockets phased makes
// below it cannot be bound fails the start naming TMPDIR; it failed with
// go-plugin's "bind: invalid argument" and a page about the plugin's
// architecture and dynamic libraries.
func TestLongTMPDIR(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(e2e.ProcessTempDir(t), strings.Repeat("x", 80))
	if err := os.MkdirAll(long, 0o777); err != nil {
		t.Fatal(err)
	}
	e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(e2e.FreePort(t), "access_log: {path: \"\"}\n"))
	code, _, errOut := e2e.Run(t, dir, []string{"TMPDIR=" + long}, "-f", conf)
	if code != 1 || !strings.Contains(errOut, "set TMPDIR to a shorter folder") || strings.Contains(errOut, "architecture") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if left, _ := os.ReadDir(long); len(left) > 0 {
		t.Errorf("left behind in TMPDIR: %v", left)
	}
}
