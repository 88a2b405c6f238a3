package apps

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// The tests of app.type: http run testdata/httpapp/app.js, a node HTTP
// server, as each child's app server.

// nodeApp returns the app: section that runs testdata/httpapp/app.js with
// args in each child, with more, extra keys of the section (indented by
// two). A machine without node skips the test, and fails it under CI=true.
func nodeApp(t *testing.T, args []string, more string) string {
	t.Helper()
	e2e.Binary(t) // skips with -short
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is needed for the app.type: http tests: %v", err)
		}
		t.Skipf("node is needed for the app.type: http tests: %v", err)
	}
	script, err := filepath.Abs("testdata/httpapp/app.js")
	if err != nil {
		t.Fatal(err)
	}
	var quoted []string // {port} and the like are YAML's flow mappings unquoted
	for _, a := range append([]string{"node", script}, args...) {
		quoted = append(quoted, strconv.Quote(a))
	}
	return fmt.Sprintf("app:\n  type: http\n  command: [%s]\n%s", strings.Join(quoted, ", "), more)
}

// echoed is what the app's /echo saw of a request.
type echoed struct {
	PID        int               `json:"pid"`
	Method     string            `json:"method"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers"`
	RawHeaders []string          `json:"rawHeaders"`
	Trailers   map[string]string `json:"trailers"`
	BodyLength int64             `json:"bodyLength"`
	BodySha256 string            `json:"bodySha256"`
}

// appStats is what the app's /stats says.
type appStats struct {
	PID      int              `json:"pid"`
	Seen     []string         `json:"seen"`
	Max      map[string]int   `json:"max"`
	Finished map[string]int64 `json:"finished"` // unix milliseconds
	ArgPort  string           `json:"argPort"`
	Env      map[string]string
}

// stats asks s's app for /stats on a fresh connection.
func stats(t *testing.T, s *e2e.Server) appStats {
	t.Helper()
	code, body, err := e2e.Get(s.URL("/stats"))
	var st appStats
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("GET /stats = %d %v %q", code, err, body)
	}
	return st
}

// raw is a client connection that writes requests byte for byte, as no
// HTTP client library would let a test (hop-by-hop headers, half bodies,
// Expect without a body).
type raw struct {
	net.Conn
	br *bufio.Reader
	t  *testing.T
}

// dial opens a raw connection to s; it is closed when t ends.
func dial(t *testing.T, s *e2e.Server) *raw {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &raw{Conn: c, br: bufio.NewReader(c), t: t}
}

// send writes s as it is ("\n" becomes "\r\n" in the head: pass the body
// with sendBytes).
func (r *raw) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r, strings.ReplaceAll(s, "\n", "\r\n")); err != nil {
		r.t.Fatalf("writing the request: %v", err)
	}
}

func (r *raw) sendBytes(b []byte) {
	r.t.Helper()
	if _, err := r.Write(b); err != nil {
		r.t.Fatalf("writing the body: %v", err)
	}
}

// response reads one response; its body is read whole.
func (r *raw) response(method string) (*http.Response, []byte) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatalf("reading the response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		r.t.Fatalf("reading the response body: %v", err)
	}
	return resp, body
}

// echo reads a response from /echo and decodes it.
func (r *raw) echo() echoed {
	r.t.Helper()
	resp, body := r.response("POST")
	var e echoed
	if resp.StatusCode != 200 || json.Unmarshal(body, &e) != nil {
		r.t.Fatalf("/echo answered %s %q", resp.Status, body)
	}
	return e
}

// sha is the hex SHA-256 of b.
func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// pattern is the body of the app's /big: byte i is (7i + i>>13) mod 256.
func pattern(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + i>>13)
	}
	return b
}

// childStatus is one child in `phased status --json`, with its app.
type childStatus struct {
	PID      int    `json:"pid"`
	Slot     int    `json:"slot"`
	State    string `json:"state"`
	AppPID   int    `json:"app_pid"`
	AppBytes int64  `json:"app_memory_bytes"`
	CPUs     string `json:"cpus"`
}

// appStatus returns the children `phased status --json` lists. It finds
// the master by its pid file, whatever the configuration file says now.
func appStatus(t *testing.T, s *e2e.Server) []childStatus {
	t.Helper()
	code, out, errOut := e2e.Run(t, s.Dir, nil, "-c", "pid_file="+filepath.Join(s.Dir, "run/phased.pid"), "status", "--json")
	var st struct {
		Children []childStatus `json:"children"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("phased status --json: %d %s %s", code, out, errOut)
	}
	return st.Children
}

// appPIDs returns the app pids `phased status` lists for ready children.
func appPIDs(t *testing.T, s *e2e.Server) []int {
	t.Helper()
	var out []int
	for _, c := range appStatus(t, s) {
		if c.State == "ready" && c.AppPID != 0 {
			out = append(out, c.AppPID)
		}
	}
	slices.Sort(out)
	return out
}

// waitApps waits until n or more ready children each show an app server
// that is alive and none of not, and returns their app pids.
func waitApps(t *testing.T, s *e2e.Server, n int, not []int, within time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		pids := appPIDs(t, s)
		ok := len(pids) >= n
		for _, p := range pids {
			ok = ok && e2e.Alive(p) && !slices.Contains(not, p)
		}
		if ok {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the ready children's apps are %v; want %d or more, none of %v; log:\n%s", within, pids, n, not, s.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// num reads a JSON number of a log record as an int.
func num(rec map[string]any, key string) int {
	f, _ := rec[key].(float64)
	return int(f)
}
