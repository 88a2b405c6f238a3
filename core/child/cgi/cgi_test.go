package cgi

import (
	"bufio"
	"crypto/md5"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/core/child/internal/testkit"
)

// The scripts of the tests, in the folder of the alias /cgi-bin/.
var scripts = map[string]string{
	"env.sh": "exec:#!/bin/sh\necho 'Content-Type: text/plain'\necho\nenv\n",
	"echo.pl": `exec:#!/usr/bin/perl
use Digest::MD5 qw(md5_hex);
binmode STDIN; my $body = ''; read(STDIN, $body, $ENV{CONTENT_LENGTH} || 0);
print "Content-Type: text/plain\r\n\r\n";
print length($body), " ", md5_hex($body), " $ENV{CONTENT_TYPE}\n";
`,
	"stderr.sh":    "exec:#!/bin/sh\necho 'first complaint' >&2\necho 'Content-Type: text/plain'\necho\necho out\necho 'second complaint' >&2\n",
	"status.sh":    "exec:#!/bin/sh\nprintf 'Status: 404 Not Found\\r\\nContent-Type: text/plain\\r\\n\\r\\nno such page'\n",
	"redirect.sh":  "exec:#!/bin/sh\nprintf 'Location: http://example.invalid/elsewhere\\r\\n\\r\\n'\n",
	"badstatus.sh": "exec:#!/bin/sh\nprintf 'Status: xx\\r\\n\\r\\n'\n",
	"silent.sh":    "exec:#!/bin/sh\nexit 0\n",
	"noexec.sh":    "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho ran\n",
	"sub/deep.sh":  "exec:#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"deep $PATH_INFO\"\n",
	"fifo":         "fifo:",
	"emptydir/x":   "",
	"link-in.sh":   "symlink:env.sh",
	"link-out.sh":  "symlink:../outside/evil.sh",
	"dir-out":      "symlink:../outside",
	// hang.sh starts a grandchild, writes both PIDs to the folder named
	// by the query, sends its headers first when the query ends in
	// "&early-output", and sleeps past any timeout.
	"hang.sh": `exec:#!/bin/sh
dir=${QUERY_STRING%%&*}
sleep 300 &
echo $! > "$dir/grandchild"
echo $$ > "$dir/script"
case "$QUERY_STRING" in *'&early-output') printf 'Content-Type: text/plain\r\n\r\nstarted\n';; esac
sleep 300
`,
	// ticks.sh writes a line, then waits for the test's go-ahead file.
	"ticks.sh": `exec:#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
for i in 0 1 2; do
  echo "tick $i"
  n=0; while [ ! -e "$QUERY_STRING/go$i" ] && [ $n -lt 500 ]; do sleep 0.01; n=$((n+1)); done
done
`,
}

// site is a folder of CGI scripts next to a folder that must stay out of
// reach, served by a Handler behind a real HTTP server.
type site struct {
	dir string // the scripts, symlinks resolved
	h   *Handler
	srv *httptest.Server
	log *testkit.Recorder
}

func newSite(t *testing.T, opts Options) *site {
	t.Helper()
	base := t.TempDir()
	testkit.Tree(t, filepath.Join(base, "cgi-bin"), scripts)
	testkit.Tree(t, filepath.Join(base, "outside"), map[string]string{"evil.sh": "exec:#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho escaped\n"})
	dir, _ := filepath.EvalSymlinks(filepath.Join(base, "cgi-bin"))
	log, rec := testkit.New()
	if opts.Aliases == nil {
		opts.Aliases = []Alias{{Prefix: "/cgi-bin/", Dir: dir}}
	}
	opts.Logger = log
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &site{dir: dir, h: h, srv: srv, log: rec}
}

// noRedirects is an HTTP client that returns redirects as they are.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (s *site) do(t *testing.T, method, path string, body io.Reader, hdr ...string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// env runs env.sh and returns its environment.
func (s *site) env(t *testing.T, path string, body io.Reader, hdr ...string) map[string]string {
	t.Helper()
	resp, out, err := s.do(t, "POST", path, body, hdr...)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %q %v\n%s", resp.StatusCode, out, err, s.log)
	}
	env := map[string]string{}
	for line := range strings.Lines(out) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		env[k] = v
	}
	return env
}

// TestEnv: the environment a script gets is RFC 3875's, the allow-listed
// variables and the configured ones, and nothing else of the child's.
func TestEnv(t *testing.T) {
	t.Setenv("PHASED_SECRET", "must not leak")
	t.Setenv("LD_LIBRARY_PATH", "/must/not/leak")
	t.Setenv("ALLOWED_ONE", "allowed")
	t.Setenv("TZ", "Europe/Paris")
	s := newSite(t, Options{
		InheritEnv:   []string{"PATH", "TZ", "ALLOWED_ONE", "NOT_SET"},
		Env:          []string{"APP_MODE=test", "SERVER_SOFTWARE=custom/1"},
		DocumentRoot: "/srv/www",
	})
	env := s.env(t, "/cgi-bin/env.sh/extra/path?a=1&b=2", strings.NewReader("x=1"),
		"Content-Type", "application/x-www-form-urlencoded", "X-Test", "yes", "Proxy", "http://evil.invalid", "Cookie", "c=1")
	want := map[string]string{
		"GATEWAY_INTERFACE":     "CGI/1.1",
		"SERVER_SOFTWARE":       "custom/1",
		"SERVER_PROTOCOL":       "HTTP/1.1",
		"SERVER_NAME":           "127.0.0.1",
		"SERVER_ADDR":           "127.0.0.1",
		"SERVER_PORT":           strings.TrimPrefix(s.srv.URL, "http://127.0.0.1:"),
		"REMOTE_ADDR":           "127.0.0.1",
		"REQUEST_METHOD":        "POST",
		"REQUEST_URI":           "/cgi-bin/env.sh/extra/path?a=1&b=2",
		"REQUEST_SCHEME":        "http",
		"QUERY_STRING":          "a=1&b=2",
		"CONTENT_TYPE":          "application/x-www-form-urlencoded",
		"CONTENT_LENGTH":        "3",
		"SCRIPT_NAME":           "/cgi-bin/env.sh",
		"SCRIPT_FILENAME":       filepath.Join(s.dir, "env.sh"),
		"PATH_INFO":             "/extra/path",
		"PATH_TRANSLATED":       "/srv/www/extra/path",
		"DOCUMENT_ROOT":         "/srv/www",
		"CONTEXT_PREFIX":        "/cgi-bin",
		"CONTEXT_DOCUMENT_ROOT": s.dir,
		"HTTP_X_TEST":           "yes",
		"HTTP_COOKIE":           "c=1",
		"HTTP_HOST":             strings.TrimPrefix(s.srv.URL, "http://"),
		"PATH":                  os.Getenv("PATH"),
		"TZ":                    "Europe/Paris",
		"ALLOWED_ONE":           "allowed",
		"APP_MODE":              "test",
		"PWD":                   s.dir, // the shell's, from the working folder
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	// What else there is: variables net/http/cgi sets, and those any
	// shell sets by itself.
	extra := map[string]bool{"REMOTE_HOST": true, "REMOTE_PORT": true, "HTTP_USER_AGENT": true, "HTTP_ACCEPT_ENCODING": true, "SHLVL": true, "_": true, "OLDPWD": true}
	for k, v := range env {
		if _, ok := want[k]; !ok && !extra[k] && k != "" {
			t.Errorf("unexpected %s=%q", k, v)
		}
	}
}

// TestEnvDefaults: without an allow-list, PATH and TZ only; without PATH
// in the child's environment, a default one.
func TestEnvDefaults(t *testing.T) {
	t.Setenv("PATH", "")
	os.Unsetenv("PATH")
	t.Setenv("HOME", "/root/secret")
	s := newSite(t, Options{})
	env := s.env(t, "/cgi-bin/env.sh", nil)
	if env["PATH"] != defaultPath {
		t.Errorf("PATH = %q", env["PATH"])
	}
	if v, ok := env["HOME"]; ok {
		t.Errorf("HOME = %q leaked", v)
	}
	if env["SERVER_SOFTWARE"] != "phased" || env["DOCUMENT_ROOT"] != "" {
		t.Errorf("SERVER_SOFTWARE %q, DOCUMENT_ROOT %q", env["SERVER_SOFTWARE"], env["DOCUMENT_ROOT"])
	}
}

// TestScripts: what the client gets for each script, and for each path
// that names no script to run.
func TestScripts(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "next %s", r.URL.Path) })
	s := newSite(t, Options{Next: next})
	for _, tc := range []struct {
		path string
		code int
		body string
		hdr  string
	}{
		{path: "/cgi-bin/sub/deep.sh/x", code: 200, body: "deep /x\n"},
		{path: "/cgi-bin/link-in.sh", code: 200},
		{path: "/cgi-bin/status.sh", code: 404, body: "no such page"},
		{path: "/cgi-bin/redirect.sh", code: 302, hdr: "Location: http://example.invalid/elsewhere"},
		{path: "/cgi-bin/badstatus.sh", code: 500},
		{path: "/cgi-bin/silent.sh", code: 500},
		{path: "/cgi-bin/noexec.sh", code: 403},
		{path: "/cgi-bin/fifo", code: 403},
		{path: "/cgi-bin/emptydir", code: 403},
		{path: "/cgi-bin/emptydir/", code: 403},
		{path: "/cgi-bin/", code: 403},
		{path: "/cgi-bin/missing.sh", code: 404},
		{path: "/cgi-bin/missing/x.sh", code: 404},
		{path: "/cgi-bin/link-out.sh", code: 404},
		{path: "/cgi-bin/dir-out/evil.sh", code: 404},
		{path: "/cgi-bin/../outside/evil.sh", code: 404},
		{path: "/cgi-bin/sub/../../outside/evil.sh", code: 404},
		{path: "/cgi-bin/%2e%2e/outside/evil.sh", code: 404},
		{path: "/cgi-bin/env.sh/../../outside/evil.sh", code: 404},
		{path: "/cgi-bin", code: 200, body: "next /cgi-bin"},
		{path: "/other/env.sh", code: 200, body: "next /other/env.sh"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.path, nil)
			w := httptest.NewRecorder()
			s.h.ServeHTTP(w, r)
			if w.Code != tc.code || tc.body != "" && w.Body.String() != tc.body {
				t.Fatalf("%d %q, want %d %q\n%s", w.Code, w.Body, tc.code, tc.body, s.log)
			}
			if strings.Contains(w.Body.String(), "escaped") {
				t.Fatal("ran a script outside the folder")
			}
			if tc.hdr != "" {
				k, v, _ := strings.Cut(tc.hdr, ": ")
				if w.Header().Get(k) != v {
					t.Fatalf("%s: %q", k, w.Header().Get(k))
				}
			}
		})
	}
}

// TestPost: a body reaches the script whole, of known length or chunked.
func TestPost(t *testing.T) {
	s := newSite(t, Options{})
	body := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	want := fmt.Sprintf("%d %x application/octet-stream\n", len(body), md5.Sum([]byte(body)))
	for name, r := range map[string]io.Reader{
		"known length": strings.NewReader(body),
		"chunked":      io.MultiReader(strings.NewReader(body)),
	} {
		t.Run(name, func(t *testing.T) {
			resp, out, err := s.do(t, "POST", "/cgi-bin/echo.pl", r, "Content-Type", "application/octet-stream")
			if err != nil || resp.StatusCode != 200 || out != want {
				t.Fatalf("%d %q %v, want %q\n%s", resp.StatusCode, out, err, want, s.log)
			}
		})
	}
}

// TestStderr: a script's stderr goes to the log, tagged, never into the
// response.
func TestStderr(t *testing.T) {
	s := newSite(t, Options{})
	resp, out, _ := s.do(t, "GET", "/cgi-bin/stderr.sh", nil)
	if resp.StatusCode != 200 || out != "out\n" {
		t.Fatalf("%d %q", resp.StatusCode, out)
	}
	var lines []string
	for _, r := range s.log.Find("cgi stderr") {
		if r.Attrs["script"] != "/cgi-bin/stderr.sh" || r.Level.String() != "WARN" {
			t.Errorf("record %v", r)
		}
		lines = append(lines, r.Attrs["line"])
	}
	if strings.Join(lines, "|") != "first complaint|second complaint" {
		t.Fatalf("logged %q\n%s", lines, s.log)
	}
}

// TestStreams: each line a script writes reaches the client while it runs.
func TestStreams(t *testing.T) {
	s := newSite(t, Options{})
	dir := t.TempDir()
	resp, err := http.Get(s.srv.URL + "/cgi-bin/ticks.sh?" + dir)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	testkit.ReadTicks(t, resp.Body, "tick %d\n", 3, testkit.GoAhead(t, dir))
}

// TestTimeout: a script that runs past the timeout is killed with its
// whole process group, a grandchild included, and the client gets 504 if
// nothing was sent yet, or a cut connection if it was.
func TestTimeout(t *testing.T) {
	s := newSite(t, Options{Timeout: 500 * time.Millisecond})
	for _, headers := range []bool{false, true} {
		t.Run(fmt.Sprintf("headers sent %v", headers), func(t *testing.T) {
			dir := t.TempDir()
			q := dir
			if headers {
				q += "&early-output"
			}
			start := time.Now()
			resp, out, err := s.do(t, "GET", "/cgi-bin/hang.sh?"+q, nil)
			took := time.Since(start)
			if took > 5*time.Second {
				t.Fatalf("took %v", took)
			}
			if headers {
				if resp.StatusCode != 200 || err == nil {
					t.Fatalf("%d %q %v: want a cut connection", resp.StatusCode, out, err)
				}
			} else if resp.StatusCode != 504 {
				t.Fatalf("%d %q, want 504", resp.StatusCode, out)
			}
			script, grandchild := readPid(t, dir, "script"), readPid(t, dir, "grandchild")
			if left := testkit.WaitGroupGone(script, 2*time.Second); len(left) > 0 {
				t.Fatalf("processes %v of the script's group outlived the timeout", left)
			}
			if testkit.Alive(script) || testkit.Alive(grandchild) {
				t.Fatalf("script %d alive %v, grandchild %d alive %v", script, testkit.Alive(script), grandchild, testkit.Alive(grandchild))
			}
			if len(s.log.Find("cgi: script timed out and was killed")) == 0 {
				t.Fatalf("log:\n%s", s.log)
			}
		})
	}
}

func readPid(t *testing.T, dir, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestClientGone: a client that leaves kills the script's process group.
func TestClientGone(t *testing.T) {
	s := newSite(t, Options{Timeout: time.Minute})
	dir := t.TempDir()
	resp, err := http.Get(s.srv.URL + "/cgi-bin/hang.sh?" + dir + "&early-output")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != "started\n" {
		t.Fatalf("%q", line)
	}
	resp.Body.Close()
	script := readPid(t, dir, "script")
	if left := testkit.WaitGroupGone(script, 5*time.Second); len(left) > 0 {
		t.Fatalf("processes %v outlived the client", left)
	}
}

// TestLauncher: the test binary, linked with this package, is the
// launcher: started with its argument, it says on stderr which process
// group the script runs in, a group and a session of its own, and runs the
// script with the environment it got, less the LD_LIBRARY_PATH that the
// handler blanked.
func TestLauncher(t *testing.T) {
	dir := t.TempDir()
	testkit.Tree(t, dir, map[string]string{"pg.sh": "exec:#!/bin/sh\nps -o pid=,pgid=,sid= -p $$\nenv\n"})
	exe, _ := selfExe()
	cmd := exec.Command(exe, launchArg, filepath.Join(dir, "pg.sh"))
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LD_LIBRARY_PATH=", "KEPT="}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s %s", err, out, stderr.String())
	}
	ids := strings.Fields(strings.SplitN(string(out), "\n", 2)[0])
	if len(ids) != 3 || ids[0] != ids[1] || ids[0] != ids[2] || ids[0] != strconv.Itoa(cmd.Process.Pid) {
		t.Fatalf("pid, pgid, sid: %q (launcher pid %d)", ids, cmd.Process.Pid)
	}
	if pgid, ok := parsePidLine(stderr.String()); !ok || strconv.Itoa(pgid) != ids[1] {
		t.Fatalf("stderr %q", stderr.String())
	}
	if strings.Contains(string(out), "LD_LIBRARY_PATH") || !strings.Contains(string(out), "KEPT=\n") {
		t.Fatalf("environment:\n%s", out)
	}
	// A script that cannot run: 127, and why on stderr.
	cmd = exec.Command(exe, launchArg, filepath.Join(dir, "missing"))
	stderr.Reset()
	cmd.Stderr = &stderr
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 127 || !strings.Contains(stderr.String(), "cannot run") {
		t.Fatalf("%v, %q", err, stderr.String())
	}
}

func TestNewErrors(t *testing.T) {
	for _, opts := range []Options{
		{},
		{Aliases: []Alias{{Prefix: "cgi-bin/", Dir: "/srv"}}},
		{Aliases: []Alias{{Prefix: "/cgi-bin", Dir: "/srv"}}},
		{Aliases: []Alias{{Prefix: "/cgi-bin/"}}},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("New(%+v) did not fail", opts)
		}
	}
}

// TestLongestPrefix: the longest alias that matches wins.
func TestLongestPrefix(t *testing.T) {
	base := t.TempDir()
	testkit.Tree(t, base, map[string]string{
		"a/x.sh": "exec:#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\na'\n",
		"b/x.sh": "exec:#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nb'\n",
	})
	h, err := New(Options{Aliases: []Alias{{"/cgi/", filepath.Join(base, "a")}, {"/cgi/b/", filepath.Join(base, "b")}}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/cgi/x.sh": "a", "/cgi/b/x.sh": "b"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Body.String() != want {
			t.Errorf("%s: %d %q", path, w.Code, w.Body)
		}
	}
}
