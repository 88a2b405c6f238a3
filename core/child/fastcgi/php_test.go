package fastcgi

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/core/child/internal/testkit"
	"github.com/phasedhq/phased/internal/e2e"
)

// The PHP scripts of the integration tests.
var phpScripts = map[string]string{
	"info.php": `<?php
header('Content-Type: application/json');
$s = [];
foreach (['SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_INFO', 'PATH_TRANSLATED', 'PHP_SELF', 'REQUEST_URI',
          'QUERY_STRING', 'REQUEST_METHOD', 'CONTENT_LENGTH', 'CONTENT_TYPE', 'DOCUMENT_ROOT',
          'HTTP_X_TEST', 'HTTP_PROXY', 'REMOTE_ADDR', 'SERVER_PORT', 'GATEWAY_INTERFACE'] as $k) {
    if (isset($_SERVER[$k])) $s[$k] = $_SERVER[$k];
}
$in = file_get_contents('php://input');
echo json_encode(['server' => (object)$s, 'get' => (object)$_GET, 'post' => (object)$_POST,
    'input_len' => strlen($in), 'input_md5' => md5($in)]);
`,
	"sub/index.php": `<?php echo "sub index";`,
	"redirect.php":  `<?php header('Location: /target?from=php'); echo "moved";`,
	"notfound.php":  `<?php http_response_code(404); echo "no such thing";`,
	"errorlog.php":  `<?php error_log("hello from error_log"); echo "logged";`,
	"big.php":       `<?php echo str_repeat("0123456789abcdef", 5 << 16);`,
	"hello.php":     `<?php echo "hello";`,
	"sleep.php":     `<?php touch($_GET['mark']); sleep(30); echo "woke";`,
	"flush.php": `<?php
while (ob_get_level()) ob_end_flush();
header('Content-Type: text/plain');
for ($i = 0; $i < 3; $i++) {
    echo "tick $i\n";
    flush();
    $f = $_GET['dir'] . "/go$i";
    for ($n = 0; !file_exists($f) && $n < 500; $n++) usleep(10000);
}
`,
}

// phpCGI is Debian's php-cgi (installed when missing, as root; see
// e2e.Program).
func phpCGI(t testing.TB) string { return e2e.Program(t, "php-cgi", "php-cgi") }

// phpServer is a php-cgi -b process the test started.
type phpServer struct {
	t       testing.TB
	cmd     *exec.Cmd
	network string
	addr    string
	stderr  *bytes.Buffer
	killed  sync.Once
}

// kill kills php-cgi's process group, by its leader's PID, and returns
// once every process of it is gone.
func (s *phpServer) kill() {
	s.killed.Do(func() {
		pgid := s.cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGKILL)
		s.cmd.Wait()
		if left := testkit.WaitGroupGone(pgid, 10*time.Second); len(left) > 0 {
			s.t.Errorf("php-cgi processes %v outlived SIGKILL", left)
		}
	})
}

// startPHP starts php-cgi -b on a unix socket in the test's folder, or on a
// free port of 127.0.0.1 when network is "tcp", with children php-cgi
// workers each serving maxRequests requests; the whole process group is
// killed, by the parent's PID, at the test's end.
func startPHP(t testing.TB, network string, children, maxRequests int) *phpServer {
	t.Helper()
	bin := phpCGI(t)
	s := &phpServer{t: t, network: network, stderr: new(bytes.Buffer)}
	if network == "unix" {
		s.addr = filepath.Join(t.TempDir(), "php.sock")
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.addr = ln.Addr().String()
		ln.Close()
	}
	s.cmd = exec.Command(bin, "-b", s.addr)
	s.cmd.Env = []string{
		"PATH=/usr/bin:/bin",
		fmt.Sprintf("PHP_FCGI_CHILDREN=%d", children),
		fmt.Sprintf("PHP_FCGI_MAX_REQUESTS=%d", maxRequests),
	}
	s.cmd.Stderr = s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.kill()
		if network == "unix" {
			os.Remove(s.addr)
		}
	})
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial(network, s.addr)
		if err == nil {
			c.Close()
			return s
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("php-cgi -b %s did not listen: %v\n%s", s.addr, err, s.stderr)
		}
	}
}

// phpSite is a document root with the PHP scripts and a handler serving it
// through a php-cgi, behind a real HTTP server.
type phpSite struct {
	root  string
	php   *phpServer
	h     *Handler
	srv   *httptest.Server
	log   *testkit.Recorder
	dials atomic.Int64
}

func newPHPSite(t testing.TB, network string, keep bool) *phpSite {
	t.Helper()
	root := t.TempDir()
	testkit.Tree(t, root, phpScripts)
	root, _ = filepath.EvalSymlinks(root)
	php := startPHP(t, network, 2, 500)
	log, rec := testkit.New()
	s := &phpSite{root: root, php: php, log: rec}
	dial := func(ctx context.Context) (net.Conn, error) {
		s.dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, php.addr)
	}
	h, err := New(Options{Network: network, Address: php.addr, Dial: dial, Root: root, KeepConn: keep, Logger: log, Static: staticStub})
	if err != nil {
		t.Fatal(err)
	}
	s.h, s.srv = h, httptest.NewServer(h)
	t.Cleanup(func() {
		s.srv.Close()
		h.Close()
	})
	return s
}

// info is what info.php answers.
type info struct {
	Server   map[string]string
	Get      map[string]any
	Post     map[string]any
	InputLen int    `json:"input_len"`
	InputMD5 string `json:"input_md5"`
}

func (s *phpSite) info(t *testing.T, method, path, ctype string, body io.Reader) info {
	t.Helper()
	req, _ := http.NewRequest(method, s.srv.URL+path, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("X-Test", "header value")
	req.Header.Set("Proxy", "http://evil.invalid")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s: %d %s\n%s", method, path, resp.StatusCode, b, s.log)
	}
	var in info
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return in
}

// TestPHP runs the real php-cgi, on a unix socket and on TCP, with and
// without kept connections.
func TestPHP(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		for _, keep := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s keep=%v", network, keep), func(t *testing.T) {
				testPHP(t, newPHPSite(t, network, keep))
			})
		}
	}
}

func testPHP(t *testing.T, s *phpSite) {
	t.Run("GET with query and PATH_INFO", func(t *testing.T) {
		in := s.info(t, "GET", "/info.php/foo/bar?x=1&y=two", "", nil)
		for k, v := range map[string]string{
			"SCRIPT_NAME": "/info.php", "SCRIPT_FILENAME": s.root + "/info.php", "PATH_INFO": "/foo/bar",
			"PATH_TRANSLATED": s.root + "/foo/bar", "PHP_SELF": "/info.php/foo/bar", "REQUEST_URI": "/info.php/foo/bar?x=1&y=two",
			"QUERY_STRING": "x=1&y=two", "REQUEST_METHOD": "GET", "DOCUMENT_ROOT": s.root, "HTTP_X_TEST": "header value",
			"REMOTE_ADDR": "127.0.0.1", "GATEWAY_INTERFACE": "CGI/1.1",
		} {
			if in.Server[k] != v {
				t.Errorf("$_SERVER[%s] = %q, want %q", k, in.Server[k], v)
			}
		}
		if _, ok := in.Server["HTTP_PROXY"]; ok {
			t.Error("httpoxy: HTTP_PROXY reached PHP")
		}
		if in.Get["x"] != "1" || in.Get["y"] != "two" {
			t.Errorf("$_GET = %v", in.Get)
		}
	})
	t.Run("POST form", func(t *testing.T) {
		in := s.info(t, "POST", "/info.php", "application/x-www-form-urlencoded", strings.NewReader(url.Values{"name": {"Zoë"}, "n": {"42"}}.Encode()))
		if in.Post["name"] != "Zoë" || in.Post["n"] != "42" {
			t.Errorf("$_POST = %v", in.Post)
		}
	})
	t.Run("POST 1 MiB", func(t *testing.T) {
		body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
		in := s.info(t, "POST", "/info.php", "application/octet-stream", bytes.NewReader(body))
		if in.InputLen != len(body) || in.Server["CONTENT_LENGTH"] != "1048576" || in.InputMD5 != fmt.Sprintf("%x", md5.Sum(body)) {
			t.Errorf("php://input: %d bytes, md5 %s, CONTENT_LENGTH %s", in.InputLen, in.InputMD5, in.Server["CONTENT_LENGTH"])
		}
	})
	t.Run("POST chunked", func(t *testing.T) {
		body := bytes.Repeat([]byte("z"), 300000)
		in := s.info(t, "POST", "/info.php", "application/octet-stream", io.MultiReader(bytes.NewReader(body))) // no length: chunked
		if in.InputLen != len(body) || in.Server["CONTENT_LENGTH"] != "300000" {
			t.Errorf("php://input: %d bytes, CONTENT_LENGTH %s", in.InputLen, in.Server["CONTENT_LENGTH"])
		}
	})
	t.Run("index", func(t *testing.T) {
		code, body, _ := get(t, s.srv.URL+"/sub/")
		if code != 200 || body != "sub index" {
			t.Errorf("%d %q", code, body)
		}
	})
	t.Run("Location", func(t *testing.T) {
		resp, err := noRedirects.Get(s.srv.URL + "/redirect.php")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 302 || resp.Header.Get("Location") != "/target?from=php" || string(b) != "moved" {
			t.Errorf("%d %q %q", resp.StatusCode, resp.Header.Get("Location"), b)
		}
	})
	t.Run("http_response_code", func(t *testing.T) {
		code, body, _ := get(t, s.srv.URL+"/notfound.php")
		if code != 404 || body != "no such thing" {
			t.Errorf("%d %q", code, body)
		}
	})
	t.Run("missing script", func(t *testing.T) {
		if code, _, _ := get(t, s.srv.URL+"/nope.php"); code != 404 {
			t.Errorf("status %d", code)
		}
	})
	t.Run("error_log", func(t *testing.T) {
		code, body, _ := get(t, s.srv.URL+"/errorlog.php")
		if code != 200 || body != "logged" {
			t.Errorf("%d %q", code, body)
		}
		found := false
		for _, r := range s.log.Find("fastcgi stderr") {
			found = found || strings.Contains(r.Attrs["line"], "hello from error_log") && r.Attrs["script"] == "/errorlog.php"
		}
		if !found {
			t.Errorf("error_log line not logged:\n%s", s.log)
		}
	})
	t.Run("5 MiB", func(t *testing.T) {
		code, body, _ := get(t, s.srv.URL+"/big.php")
		if code != 200 || body != strings.Repeat("0123456789abcdef", 5<<16) {
			t.Errorf("%d, %d bytes", code, len(body))
		}
	})
	t.Run("flush", func(t *testing.T) {
		dir := t.TempDir()
		resp, err := http.Get(s.srv.URL + "/flush.php?dir=" + url.QueryEscape(dir))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		testkit.ReadTicks(t, resp.Body, "tick %d\n", 3, testkit.GoAhead(t, dir))
	})
	t.Run("connections", func(t *testing.T) {
		before := s.dials.Load()
		for range 10 {
			if code, body, _ := get(t, s.srv.URL+"/hello.php"); code != 200 || body != "hello" {
				t.Fatalf("%d %q", code, body)
			}
		}
		dials := s.dials.Load() - before
		if keep := s.h.Client().KeepConn; keep && dials > 1 || !keep && dials != 10 {
			t.Fatalf("10 requests took %d connections with KeepConn %v", dials, keep)
		}
	})
	t.Run("static", func(t *testing.T) {
		if _, body, _ := get(t, s.srv.URL+"/style.css"); body != "static /style.css" {
			t.Errorf("%q", body)
		}
	})
}

func get(t *testing.T, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// TestPHPKilled: php-cgi killed while a script runs is 502 for its
// request, and logged.
func TestPHPKilled(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			s := newPHPSite(t, "unix", keep)
			mark := filepath.Join(t.TempDir(), "running")
			killed := make(chan struct{})
			go func() {
				defer close(killed)
				for range 500 {
					if _, err := os.Stat(mark); err == nil {
						s.php.kill()
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			code, _, _ := get(t, s.srv.URL+"/sleep.php?mark="+url.QueryEscape(mark))
			if code != 502 {
				t.Fatalf("status %d, want 502", code)
			}
			if len(s.log.Find("fastcgi: bad response")) != 1 {
				t.Fatalf("log:\n%s", s.log)
			}
			// Once the server is gone, the next request cannot connect.
			<-killed
			if code, _, _ := get(t, s.srv.URL+"/hello.php"); code != 503 {
				t.Fatalf("after the kill: %d, want 503\n%s", code, s.log)
			}
		})
	}
}

// TestPHPRecycled: php-cgi's workers exit after PHP_FCGI_MAX_REQUESTS
// requests and are replaced; kept connections to them are replaced too,
// with no request failing.
func TestPHPRecycled(t *testing.T) {
	root := t.TempDir()
	testkit.Tree(t, root, phpScripts)
	php := startPHP(t, "unix", 1, 3)
	h, err := New(Options{Network: "unix", Address: php.addr, Root: root, KeepConn: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for i := range 12 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/hello.php", nil))
		if w.Code != 200 || w.Body.String() != "hello" {
			t.Fatalf("request %d: %d %q", i, w.Code, w.Body)
		}
	}
	vals, err := h.Client().GetValues(t.Context(), "FCGI_MAX_CONNS", "FCGI_MPXS_CONNS")
	if err != nil || vals["FCGI_MPXS_CONNS"] != "0" || vals["FCGI_MAX_CONNS"] == "" {
		t.Fatalf("GetValues: %v, %v", vals, err)
	}
}
