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
