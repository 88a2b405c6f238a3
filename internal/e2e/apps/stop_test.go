package apps

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// TestAppStopsWithKeptAliveConnections: an app server that, told to stop,
// waits until every connection it has is closed (as node's server.close
// does with a connection it did not see idle, and Python's and many
// others' servers with any) stops at once when its child has drained:
// the child closes its idle kept-alive connections to the app before it
// sends the stop signal. Without that, the app held on until
// app.stop_timeout killed it, and under load a generation took that long to
// finish.
func TestAppStopsWithKeptAliveConnections(t *testing.T) {
	e2e.Binary(t)
	py := e2e.Program(t, "python3", "python3")
	script, err := filepath.Abs("testdata/patientapp/app.py")
	if err != nil {
		t.Fatal(err)
	}
	s := e2e.StartServer(t, fmt.Sprintf(`mpm: {name: worker, start_servers: 1, threads_per_child: 4, min_spare_threads: 1, max_spare_threads: 8, server_limit: 1}
app:
  type: http
  command: [%q, %q]
  stop_signal: TERM
  stop_timeout: 20s
`, py, script))
	// Requests over several connections at once, so the child keeps more
	// than one connection to its app alive.
	for round := 0; round < 3; round++ {
		done := make(chan error, 4)
		for i := 0; i < 4; i++ {
			go func() {
				code, body, err := e2e.Get(s.URL("/"))
				if err == nil && (code != 200 || !strings.HasPrefix(body, "pid ")) {
					err = fmt.Errorf("%d %q", code, body)
				}
				done <- err
			}()
		}
		for i := 0; i < 4; i++ {
			if err := <-done; err != nil {
				t.Fatalf("GET /: %v", err)
			}
		}
	}
	s.Log.Wait(t, "listening", 1, 5*time.Second)
	start := time.Now()
	if code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("-k graceful: %d %s %s", code, out, errOut)
	}
	s.Log.Wait(t, "every connection closed", 1, 10*time.Second)
	s.Log.Wait(t, "app server stopped", 1, 5*time.Second)
	t.Logf("the old app stopped %s after -k graceful", time.Since(start).Round(time.Millisecond))
	recs := s.Log.Records("app server stopped")
	if len(recs) != 1 || recs[0]["status"] != "exit status 0" {
		t.Errorf("app server stopped: %v; want one, exit status 0", recs)
	}
	if n := s.Log.Count("did not stop in time"); n != 0 {
		t.Errorf("an app was killed at its stop_timeout:\n%s", s.Log)
	}
}
