package gateways

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// example copies examples/name into a new folder of the test and returns
// it; execute bits are kept.
func example(t *testing.T, name string) string {
	t.Helper()
	e2e.Binary(t) // skips with -short
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "..", "examples", name))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startExample runs phased on dir/conf as shipped, but for its listen
// address (a free loopback port), its error log (JSON, for the test to
// read) and the -c overrides in more, and waits until it serves.
func startExample(t *testing.T, dir, conf string, more ...string) *e2e.Server {
	t.Helper()
	addr := e2e.FreePort(t)
	path := filepath.Join(dir, conf)
	args := []string{"-f", path, "-c", "listen=" + addr, "-c", "error_log.format=json"}
	for _, m := range more {
		args = append(args, "-c", m)
	}
	if code, out, errOut := e2e.Run(t, dir, nil, append(args, "-t")...); code != 0 {
		t.Fatalf("phased -t on %s: %d %s %s", conf, code, out, errOut)
	}
	s := &e2e.Server{Proc: e2e.Start(t, dir, nil, args...), Addr: addr, Conf: path}
	s.WaitLog(t, "resuming normal operations", 1, 30*time.Second)
	return s
}

// ctl runs phased with a -k verb (or status) against s, whose pid file it
// finds through its config.
func ctl(t *testing.T, s *e2e.Server, args ...string) string {
	t.Helper()
	code, out, errOut := e2e.Run(t, s.Dir, nil, append([]string{"-f", s.Conf}, args...)...)
	if code != 0 {
		t.Fatalf("phased %v: %d %s %s", args, code, out, errOut)
	}
	return out
}

// answer is a response read whole.
type answer struct {
	code   int
	header http.Header
	body   string
}

// do sends one request on a fresh connection; header is name, value
// pairs. It fails t when there is no response.
func do(t *testing.T, method, u, contentType, body string, header ...string) answer {
	t.Helper()
	a, err := fetch(method, u, contentType, body, header...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// fetch is do for another goroutine than the test's: it returns the error.
func fetch(method, u, contentType, body string, header ...string) (answer, error) {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: reading the body: %w", method, u, err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}, nil
}

// get is do for a GET.
func get(t *testing.T, u string) answer { return do(t, "GET", u, "", "") }

// post is do for a POST of a form.
func post(t *testing.T, u string, form url.Values) answer {
	return do(t, "POST", u, "application/x-www-form-urlencoded", form.Encode())
}

// expect fails t unless a has code and its body contains each of want.
func expect(t *testing.T, what string, a answer, code int, want ...string) {
	t.Helper()
	if a.code != code {
		t.Errorf("%s: %d, want %d; body %q", what, a.code, code, short(a.body))
		return
	}
	for _, w := range want {
		if !strings.Contains(a.body, w) {
			t.Errorf("%s: the body lacks %q:\n%s", what, w, a.body)
		}
	}
}

// short is s cut to 300 bytes, for a failure message.
func short(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// child is one child in phased status --json, with its app.
type child struct {
	PID    int    `json:"pid"`
	Gen    int    `json:"generation"`
	Slot   int    `json:"slot"`
	State  string `json:"state"`
	AppPID int    `json:"app_pid"`
	AppMem int64  `json:"app_memory_bytes"`
}

// children returns the children phased status --json lists.
func children(t *testing.T, s *e2e.Server) []child {
	t.Helper()
	var st struct {
		Children []child `json:"children"`
	}
	out := ctl(t, s, "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("phased status --json: %v\n%s", err, out)
	}
	return st.Children
}

// readyApps waits until n children of generation gen are ready, each with
// a live app, and returns them.
func readyApps(t *testing.T, s *e2e.Server, gen, n int) []child {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ready []child
		for _, c := range children(t, s) {
			if c.Gen == gen && c.State == "ready" && c.AppPID != 0 && e2e.Alive(c.AppPID) {
				ready = append(ready, c)
			}
		}
		if len(ready) >= n {
			return ready
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s %d children of generation %d are ready with their app, want %d: %v\nlog:\n%s",
				len(ready), gen, n, children(t, s), s.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// argv0 is the program a process runs, as its command line names it.
func argv0(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	first, _, _ := strings.Cut(string(b), "\x00")
	return filepath.Base(first)
}

// tree is pid and every live process below it.
func tree(pid int) []int {
	var out []int
	for _, p := range append([]int{pid}, e2e.Descendants(pid)...) {
		if e2e.Alive(p) {
			out = append(out, p)
		}
	}
	return out
}

// named returns the live processes below pid whose program is prog.
func named(pid int, prog string) []int {
	var out []int
	for _, p := range e2e.Descendants(pid) {
		if e2e.Alive(p) && argv0(p) == prog {
			out = append(out, p)
		}
	}
	return out
}

// load runs e2e.Load on path of s in the background, bounded by limit
// requests, until the returned stop function is called, which returns what
// the clients saw.
func load(s *e2e.Server, path string, clients, limit int) (stop func() e2e.LoadResult) {
	done := make(chan struct{})
	res := make(chan e2e.LoadResult, 1)
	go func() { res <- e2e.Load(s.Addr, path, clients, true, limit, done) }()
	return func() e2e.LoadResult {
		close(done)
		return <-res
	}
}

// graceful runs -k graceful on s and waits until generation gen (the old
// one) has finished draining.
func graceful(t *testing.T, s *e2e.Server, gen int) {
	t.Helper()
	ctl(t, s, "-k", "graceful")
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, rec := range s.Log.Records("generation finished") {
			if n, _ := rec["generation"].(float64); int(n) == gen {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("generation %d did not finish within 30s of -k graceful; log:\n%s", gen, s.Log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop stops s with SIGTERM, waits for it to exit 0, and checks that no
// process of pids is left.
func stop(t *testing.T, s *e2e.Server, pids []int) {
	t.Helper()
	e2e.Kill(t, s.PID(), 15)
	if code := s.WaitExit(t, 30*time.Second); code != 0 {
		t.Fatalf("stop: exit %d; log:\n%s", code, s.Log)
	}
	e2e.WaitGone(t, pids, 5*time.Second)
}

func itoa(n int) string { return strconv.Itoa(n) }

// union returns the sorted pids of both, once each.
func union(a, b []int) []int {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
