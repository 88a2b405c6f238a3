package e2e

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Server is a phased master started by a test, with the address it listens
// on and its configuration file; its folder is Dir.
type Server struct {
	*Proc
	Addr string
	Conf string
}

// URL returns the URL of path on s.
func (s *Server) URL(path string) string { return "http://" + s.Addr + path }

// Config returns the tests' usual configuration on addr: a pid file in
// run/, document root public/, the error log as JSON on stderr, the access
// log in logs/, a 5 s graceful_shutdown_timeout and two worker children of
// 25 threads; then extra. A top-level key that extra sets replaces the
// default's (e.g. mpm: for other than two worker children); {addr} in extra
// is addr (listen: [{address: "{addr}", accept_filter: none}]).
func Config(addr, extra string) string {
	extra = strings.ReplaceAll(extra, "{addr}", addr)
	base := []string{
		fmt.Sprintf("listen: [%q]\n", addr),
		"pid_file: run/phased.pid\n",
		"document_root: public\n",
		"graceful_shutdown_timeout: 5s\n",
		"error_log: {path: stderr, level: info, format: json}\n",
		"access_log: {path: logs/access.log}\n",
		"mpm:\n  name: worker\n  start_servers: 2\n  threads_per_child: 25\n  min_spare_threads: 25\n  max_spare_threads: 75\n",
	}
	var b strings.Builder
	for _, l := range base {
		key, _, _ := strings.Cut(l, ":")
		if !strings.HasPrefix(extra, key+":") && !strings.Contains(extra, "\n"+key+":") {
			b.WriteString(l) // extra does not set it
		}
	}
	return b.String() + extra
}

// MPMConfig returns Config(addr, "") with mpm in place of its mpm section.
func MPMConfig(addr, mpm string) string {
	c := Config(addr, "")
	i := strings.Index(c, "mpm:\n")
	return c[:i] + mpm
}

// StartServer writes Config(addr, extra) on a free loopback address into a
// new folder, with a document root holding hello.txt and a logs/ folder,
// runs setup on the folder, and starts a master on it, waiting until it
// serves.
func StartServer(t testing.TB, extra string, setup ...func(dir string)) *Server {
	t.Helper()
	dir := t.TempDir()
	for _, f := range setup {
		f(dir)
	}
	addr := FreePort(t)
	WriteFile(t, dir, "public/hello.txt", "hello\n")
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	conf := WriteFile(t, dir, "phased.yaml", Config(addr, extra))
	p := Start(t, dir, nil, "-f", conf)
	s := &Server{Proc: p, Addr: addr, Conf: conf}
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	return s
}

// StartMPM is StartServer on MPMConfig: the usual configuration with the
// process model mpm (an mpm: section).
func StartMPM(t testing.TB, mpm string) *Server {
	t.Helper()
	dir := t.TempDir()
	addr := FreePort(t)
	WriteFile(t, dir, "public/hello.txt", "hello\n")
	os.MkdirAll(dir+"/logs", 0o755)
	conf := WriteFile(t, dir, "phased.yaml", MPMConfig(addr, mpm))
	p := Start(t, dir, nil, "-f", conf)
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	return &Server{Proc: p, Addr: addr, Conf: conf}
}

// Status asks the running master for its status (phased status --json).
func (s *Server) Status(t testing.TB) map[string]any {
	t.Helper()
	code, out, errOut := Run(t, s.Dir, nil, "-f", s.Conf, "status", "--json")
	if code != 0 {
		t.Fatalf("status: %d %s", code, errOut)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status json: %v\n%s", err, out)
	}
	return st
}

// WaitChildren waits until the master has n serving children (Workers).
func (s *Server) WaitChildren(t testing.TB, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(Workers(s.PID())) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d children, want %d; log:\n%s", len(Workers(s.PID())), n, s.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// HoldConnections opens n keep-alive connections, makes one request on each
// and leaves them open: in the worker and prefork models each holds a slot.
func HoldConnections(t testing.TB, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		t.Cleanup(func() { c.Close() })
	}
	// Requests go out on all at once: some wait in the backlog for a child.
	for _, c := range conns {
		fmt.Fprintf(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("held connection %d: %v", i, err)
		}
		resp.Body.Close()
	}
	return conns
}

// failing is a hook script that fails while the file "fail" exists.
const failing = `#!/bin/sh
if [ -f "$(dirname "$0")/fail" ]; then echo "refusing: $PHASED_PHASE" >&2; exit 4; fi
`

// FailingScript returns a setup function for StartServer that writes
// failing.sh, an exec hook that fails (exit status 4, "refusing: PHASE" on
// stderr) while a file named fail is beside it, and succeeds otherwise.
func FailingScript(t testing.TB) func(dir string) {
	return func(dir string) {
		WriteFile(t, dir, "failing.sh", failing)
		os.Chmod(filepath.Join(dir, "failing.sh"), 0o755)
	}
}

// ReadTrace returns the lines of trace.log in dir, the file the tests'
// trace hooks (exec scripts and the tracehook plugin) append a line to each
// time they run; one empty line while there is none.
func ReadTrace(t testing.TB, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "trace.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// EqualLines fails t, naming what was compared, unless got equals want.
func EqualLines(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// Sorted returns a sorted copy of s, for lines or pids whose order does
// not matter (children start and exit at the same time).
func Sorted[T cmp.Ordered](s []T) []T {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
