package langs

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// TestSlowBootingApp: an app server that takes 11 s to boot (a large Rails
// or Django app), more than the master's own 10 s for a generation to
// become ready, is waited for up to its app.start_timeout: phased starts
// and serves it, where it used to give up ("did not become ready within
// 10s") and exit.
func TestSlowBootingApp(t *testing.T) {
	t.Parallel()
	e2e.Binary(t)
	python := e2e.Program(t, "python3", "python3")
	script, err := filepath.Abs("testdata/slowboot.py")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	s := e2e.StartServer(t, fmt.Sprintf(`mpm: {name: worker, start_servers: 1, threads_per_child: 4, min_spare_threads: 1, max_spare_threads: 8}
app:
  type: http
  command: [%q, %q]
  start_timeout: 30s
  env: {BOOT_SECONDS: "11"}
`, python, script))
	if code, body, err := e2e.Get(s.URL("/")); code != 200 || body != "booted in 11 s\n" {
		t.Fatalf("GET / = %d %q %v", code, body, err)
	}
	t.Logf("serving %s after the start", time.Since(began).Round(time.Millisecond))
}
