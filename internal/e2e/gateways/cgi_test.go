package gateways

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// The tests of examples/app-cgi.

// cgiEnv parses env.sh's answer: NAME=value lines, and the body.
func cgiEnv(t *testing.T, a answer) map[string]string {
	t.Helper()
	if a.code != 200 || a.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("env.sh: %d %v %q", a.code, a.header, short(a.body))
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(a.body, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("env.sh: line %q in:\n%s", short(line), short(a.body))
		}
		env[k] = v
	}
	return env
}

// overLimit sends addr a POST to path that says its body is 8 MiB, far
// over app.max_body_size, and keeps sending it while it reads the answer:
// a 413, then the end of the connection (a FIN, sent with the answer),
// not a reset. Past the 256 KiB net/http reads and drops of a body the
// handler did not read, it half-closes the connection and closes it
// half a second later; a layer that hid the half-close from net/http (it
// finds it by a type assertion on the connection) left the client only
// the close, a reset with the body still coming, in which a client still
// sending can lose the answer.
func overLimit(t *testing.T, addr, path string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 8 << 20
	if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", path, addr, size); err != nil {
		t.Fatal(err)
	}
	go func() { // stops at the server's close, or at the test's
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	first := make([]byte, 1)
	if _, err := io.ReadFull(c, first); err != nil {
		t.Fatalf("a POST of 8 MiB over app.max_body_size: no answer: %v", err)
	}
	answered := time.Now()
	rest, err := io.ReadAll(c)
	ended := time.Since(answered)
	got := string(first) + string(rest)
	if !strings.HasPrefix(got, "HTTP/1.1 413 ") {
		t.Fatalf("a POST of 8 MiB over app.max_body_size: answered %q (%v), want 413", short(got), err)
	}
	// Without the FIN, the connection ends only at the close, 500 ms on.
	if err != nil || ended > 350*time.Millisecond {
		t.Errorf("a POST of 8 MiB over app.max_body_size: the connection ended %v after the 413 (%v); want a FIN with the answer", ended, err)
	}
}

// withArg returns the live processes below pid whose command line has an
// argument ending in suffix.
func withArg(pid int, suffix string) []int {
	var out []int
	for _, p := range e2e.Descendants(pid) {
		b, _ := os.ReadFile(filepath.Join("/proc", itoa(p), "cmdline"))
		for _, arg := range strings.Split(string(b), "\x00") {
			if arg != "" && strings.HasSuffix(arg, suffix) && e2e.Alive(p) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// TestCGIExample runs examples/app-cgi/phased.yaml, with app.cgi.timeout
// at 2s instead of 30s so that the timeout is seen soon, and
// app.max_body_size at 64K instead of 100M: the sh script
// sees RFC 3875's meta-variables and the headers as HTTP_*, and a POST's
// body on its stdin, 413 for a body over app.max_body_size; the Python form answers a POST; a file that is not
// executable is 403, a missing one 404, and the rest of the site static;
// a script that runs past the timeout is killed with what it started, and
// the client gets 504.
func TestCGIExample(t *testing.T) {
	e2e.Program(t, "/usr/bin/python3", "python3") // form.py's interpreter
	dir := example(t, "app-cgi")
	s := startExample(t, dir, "phased.yaml", "app.cgi.timeout=2s", "app.max_body_size=64K")
	_, port, _ := strings.Cut(s.Addr, ":")

	env := cgiEnv(t, do(t, "GET", s.URL("/cgi-bin/env.sh/some/path?a=1&b=two%20words"), "", "",
		"X-Test", "yes", "Accept-Language", "en, fr;q=0.5"))
	for k, v := range map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_SOFTWARE": "phased", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": port,
		"SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET", "REQUEST_URI": "/cgi-bin/env.sh/some/path?a=1&b=two%20words",
		"SCRIPT_NAME": "/cgi-bin/env.sh", "PATH_INFO": "/some/path", "QUERY_STRING": "a=1&b=two%20words",
		"CONTENT_LENGTH": "", "CONTENT_TYPE": "", "REMOTE_ADDR": "127.0.0.1", "DOCUMENT_ROOT": filepath.Join(dir, "public"),
		"HTTP_X_TEST": "yes", "HTTP_ACCEPT_LANGUAGE": "en, fr;q=0.5", "HTTP_HOST": s.Addr,
	} {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("env.sh saw %s=%q, want %q", k, got, v)
		}
	}
	if env["REMOTE_PORT"] == "" || env["REMOTE_PORT"] == port {
		t.Errorf("REMOTE_PORT=%q", env["REMOTE_PORT"])
	}

	env = cgiEnv(t, do(t, "POST", s.URL("/cgi-bin/env.sh"), "text/plain", "twelve bytes"))
	for k, v := range map[string]string{"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "12", "CONTENT_TYPE": "text/plain",
		"body": "twelve bytes", "PATH_INFO": "", "QUERY_STRING": ""} {
		if env[k] != v {
			t.Errorf("POST to env.sh: %s=%q, want %q", k, env[k], v)
		}
	}

	big := strings.Repeat("x", 64<<10)
	if env := cgiEnv(t, do(t, "POST", s.URL("/cgi-bin/env.sh"), "text/plain", big)); env["CONTENT_LENGTH"] != "65536" {
		t.Errorf("a POST of app.max_body_size: CONTENT_LENGTH=%q", env["CONTENT_LENGTH"])
	}
	expect(t, "POST over app.max_body_size", do(t, "POST", s.URL("/cgi-bin/env.sh"), "text/plain", big+"x"), 413)
	overLimit(t, s.Addr, "/cgi-bin/env.sh")
	expect(t, "GET /cgi-bin/form.py", get(t, s.URL("/cgi-bin/form.py")), 200, "<h1>A form, in Python</h1>", `<form method="post">`)
	expect(t, "POST /cgi-bin/form.py", post(t, s.URL("/cgi-bin/form.py"), url.Values{"name": {"Bob & Co"}, "x": {"1"}}), 200,
		`<p id="greeting">Hello, Bob &amp; Co!</p>`, "<p>2 fields, process ")
	expect(t, "GET /cgi-bin/lib.sh (not executable)", get(t, s.URL("/cgi-bin/lib.sh")), 403)
	expect(t, "GET /cgi-bin/missing.sh", get(t, s.URL("/cgi-bin/missing.sh")), 404)
	expect(t, "GET /cgi-bin/ (the folder)", get(t, s.URL("/cgi-bin/")), 403)
	expect(t, "GET /", get(t, s.URL("/")), 200, "<h1>phased + CGI</h1>")

	// Past the timeout: the script and its sleep are killed, and 504.
	type result struct {
		a    answer
		err  error
		took time.Duration
	}
	res := make(chan result, 1)
	start := time.Now()
	go func() {
		a, err := fetch("GET", s.URL("/cgi-bin/slow.sh?60"), "", "")
		res <- result{a, err, time.Since(start)}
	}()
	var script []int // sh running slow.sh, and its sleep
	for deadline := time.Now().Add(10 * time.Second); len(script) != 2; time.Sleep(10 * time.Millisecond) {
		if sh := withArg(s.PID(), "/slow.sh"); len(sh) == 1 {
			script = tree(sh[0])
		}
		if time.Now().After(deadline) {
			t.Fatalf("slow.sh and its sleep never ran (%v); log:\n%s", script, s.Log)
		}
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.a.code != 504 || r.took < 2*time.Second || r.took > 20*time.Second {
		t.Errorf("slow.sh?60: %d after %s, want 504 after app.cgi.timeout (2s)", r.a.code, r.took)
	}
	e2e.WaitGone(t, script, 5*time.Second)
	s.Log.Wait(t, "cgi: script timed out and was killed", 1, 5*time.Second)
	stop(t, s, nil)
}
