package apps

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// TestHTTPAppReadTimeout: with app.read_timeout at 1s, a request the app
// (testdata/httpapp, node) answers only after 4 s gets a 504 from the
// child after about a second, and the error log says which key bounded
// it; one answered in time, and a stream that pauses longer than the
// bound between its pieces once its head is out, reach the client whole.
func TestHTTPAppReadTimeout(t *testing.T) {
	app := nodeApp(t, nil, "  read_timeout: 1s\n")
	s := e2e.StartServer(t, `mpm:
  name: event
  start_servers: 1
  server_limit: 1
  threads_per_child: 4
  min_spare_threads: 1
  max_spare_threads: 4
  max_request_workers: 4
`+app)
	get := func(path string) (int, string, time.Duration) {
		t.Helper()
		start := time.Now()
		resp, err := http.Get(s.URL(path))
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: reading the body: %v", path, err)
		}
		return resp.StatusCode, string(b), time.Since(start)
	}
	for i := range 2 { // a new connection to the app, then a kept one
		code, body, took := get("/hold?ms=4000&group=late")
		if code != http.StatusGatewayTimeout || took < time.Second || took > 3*time.Second {
			t.Fatalf("request %d answered after 4 s: %d %q after %v, want 504 after about 1s", i, code, body, took)
		}
		if code, body, _ := get("/hold?ms=50&group=soon"); code != 200 || body != "held soon\n" {
			t.Fatalf("request %d answered in time: %d %q", i, code, body)
		}
	}
	s.WaitLog(t, "no answer within app.read_timeout (1s)", 2, 5*time.Second)
	code, body, took := get("/stream?n=3&ms=1500")
	if code != 200 || strings.Count(body, "piece ") != 3 || took < 3*time.Second {
		t.Fatalf("a stream pausing 1.5 s: %d after %v, %q", code, took, body)
	}
}
