package gateways

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// The tests of examples/app-php.

// phpPages checks what the example's site answers on s, run by sapi
// (cgi-fcgi for php-cgi, fpm-fcgi for php-fpm): its pages, PATH_INFO, the
// form, the stylesheet phased serves itself, and what is never run or
// served.
func phpPages(t *testing.T, s *e2e.Server, dir, sapi string) {
	t.Helper()
	expect(t, "GET /", get(t, s.URL("/")), 200, "<h1>phased + PHP</h1>", "("+sapi+"), process ")
	expect(t, "GET /index.php", get(t, s.URL("/index.php")), 200, "<h1>phased + PHP</h1>")
	expect(t, "GET /page.php/hello/world?lang=en", get(t, s.URL("/page.php/hello/world?lang=en")), 200,
		`<code id="path-info">/hello/world</code>`, `<code id="script-name">/page.php</code>`,
		`<code id="query">lang=en</code>`, "<li>hello</li>\n<li>world</li>")
	expect(t, "GET /form.php", get(t, s.URL("/form.php")), 200, `<form method="post" action="/form.php">`)
	posted := post(t, s.URL("/form.php"), url.Values{"name": {"Ann <b>"}, "message": {"twelve bytes"}})
	expect(t, "POST /form.php", posted, 200, `<p id="greeting">Hello, Ann &lt;b&gt;!</p>`, "Your message has 12 bytes.")
	css := get(t, s.URL("/style.css"))
	want, _ := os.ReadFile(filepath.Join(dir, "public/style.css"))
	if css.code != 200 || css.body != string(want) || css.header.Get("Content-Type") != "text/css; charset=utf-8" ||
		css.header.Get("Last-Modified") == "" {
		t.Errorf("GET /style.css: %d %v %q; want the file as phased serves static files", css.code, css.header, css.body)
	}
	for path, code := range map[string]int{
		"/missing.php":           404, // no script: never sent to PHP
		"/missing.php/x":         404,
		"/style.css/x.php":       404, // a file on the way is not a folder
		"/.user.ini":             403, // PHP's settings, not served
		"/lib/layout.php":        404, // outside the document root
		"/../lib/layout.php":     404,
		"/%2e%2e/lib/layout.php": 404,
	} {
		a := get(t, s.URL(path))
		if a.code != code {
			t.Errorf("GET %s: %d, want %d; body %q", path, a.code, code, a.body)
		}
	}
}

// phpWorkers returns the php-cgi processes under app, php-cgi's parent.
func phpWorkers(app int) []int { return named(app, "php-cgi") }

// TestPHPExample runs examples/app-php/phased.yaml: each child's php-cgi
// has PHP_FCGI_CHILDREN (8) PHP processes and shows in phased status;
// the site answers its pages; two graceful restarts under load lose no
// request, and each retiring child's php-cgi is gone, workers and all,
// once its generation finished; a stop leaves no php-cgi process.
func TestPHPExample(t *testing.T) {
	e2e.Program(t, "php-cgi", "php-cgi")
	dir := example(t, "app-php")
	s := startExample(t, dir, "phased.yaml")
	phpPages(t, s, dir, "cgi-fcgi")

	apps := readyApps(t, s, 1, 2)
	var gen1 []int // every php-cgi process of generation 1
	for _, c := range apps {
		if got := argv0(c.AppPID); got != "php-cgi" {
			t.Errorf("child %d's app %d runs %q, want php-cgi", c.PID, c.AppPID, got)
		}
		workers := phpWorkers(c.AppPID)
		if len(workers) != 8 {
			t.Errorf("child %d's php-cgi (%d) has %d PHP processes %v, want PHP_FCGI_CHILDREN=8", c.PID, c.AppPID, len(workers), workers)
		}
		if c.AppMem <= 0 {
			t.Errorf("child %d: app memory %d in phased status", c.PID, c.AppMem)
		}
		gen1 = append(gen1, tree(c.AppPID)...)
	}
	if out := ctl(t, s, "status"); !regexp.MustCompile(`APP PID\s+APP MEM`).MatchString(out) ||
		!bytes.Contains([]byte(out), []byte(strconv.Itoa(apps[0].AppPID))) {
		t.Errorf("phased status does not show the apps:\n%s", out)
	}

	// Two graceful restarts while 4 clients keep asking for a PHP page.
	done := load(s, "/page.php/load", 4, 20000)
	graceful(t, s, 1)
	e2e.WaitGone(t, gen1, 5*time.Second) // php-cgi stopped with its child: workers too
	gen2 := readyApps(t, s, 2, 2)
	var gen2PIDs []int
	for _, c := range gen2 {
		gen2PIDs = append(gen2PIDs, tree(c.AppPID)...)
	}
	graceful(t, s, 2)
	e2e.WaitGone(t, gen2PIDs, 5*time.Second)
	time.Sleep(200 * time.Millisecond) // requests on generation 3 too
	res := done()
	t.Logf("two graceful restarts under load: %s", res)
	if res.Errors != 0 || res.Non2xx != 0 || res.Requests < 50 {
		t.Errorf("graceful restarts under load: %s; want no error and no failed request", res)
	}

	last := readyApps(t, s, 3, 2)
	var left []int
	for _, c := range last {
		left = append(left, tree(c.AppPID)...)
	}
	left = union(left, named(s.PID(), "php-cgi"))
	stop(t, s, left)
}

// TestPHPKeptConnections: with PHP_FCGI_CHILDREN (8) at least the child's
// slots (8), each child keeps its connections to its php-cgi between
// requests (after a load a child holds some, where it held none), and with
// PHP_FCGI_MAX_REQUESTS at 5 (a PHP process replaced every 5 requests,
// closing the connection it served) 8 clients sending GETs and form POSTs
// for 3 s lose nothing: a GET that meets a closed connection is sent again
// on a new one, and a POST never rides a kept connection
// (TestClientKeepConn).
func TestPHPKeptConnections(t *testing.T) {
	e2e.Program(t, "php-cgi", "php-cgi")
	dir := example(t, "app-php")
	s := startExample(t, dir, "phased.yaml", "app.env.PHP_FCGI_MAX_REQUESTS=5")
	apps := readyApps(t, s, 1, 2)
	sockets := func(pid int) int {
		n := 0
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, e := range ents {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
				n++
			}
		}
		return n
	}
	before := map[int]int{}
	for _, c := range apps {
		before[c.PID] = sockets(c.PID)
	}
	var failed, served atomic.Int32
	var firstErr atomic.Value
	var wg sync.WaitGroup
	end := time.Now().Add(3 * time.Second)
	for i := range 8 {
		wg.Go(func() {
			form := url.Values{"name": {"Ann"}, "message": {"twelve bytes"}}.Encode()
			for n := 0; time.Now().Before(end); n++ {
				var a answer
				var err error
				if (n+i)%2 == 0 {
					a, err = fetch("GET", s.URL("/page.php/load"), "", "")
				} else {
					a, err = fetch("POST", s.URL("/form.php"), "application/x-www-form-urlencoded", form)
				}
				if err != nil || a.code != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %v %s", a.code, err, short(a.body)))
					continue
				}
				served.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests served, %d failed, with PHP processes replaced every 5 requests", served.Load(), failed.Load())
	if failed.Load() != 0 || served.Load() < 100 {
		t.Fatalf("%d requests failed (first: %v), %d served; want none failed", failed.Load(), firstErr.Load(), served.Load())
	}
	// Once the load's own connections are closed, what the children hold
	// beyond what they held before it is their kept connections to php-cgi.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		kept := 0
		for _, c := range apps {
			kept += sockets(c.PID) - before[c.PID]
		}
		if kept >= 1 && kept <= 16 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the children hold %d more sockets after the load than before it, want 1 to 16 kept connections to their php-cgi", kept)
		}
	}
	if n := s.Log.Count(`"msg":"fastcgi: `); n != 0 {
		t.Errorf("%d FastCGI failures logged:\n%s", n, s.Log)
	}
}

// TestPHPSendfile: examples/app-php with app.sendfile_paths: a script that
// answers with X-Sendfile naming a file below them gets it sent by phased
// (and a Range of it), the script told it may (HTTP_X_SENDFILE_TYPE) and
// never by the client; a file outside is 403 and logged.
func TestPHPSendfile(t *testing.T) {
	e2e.Program(t, "php-cgi", "php-cgi")
	dir := example(t, "app-php")
	e2e.WriteFile(t, dir, "files/report.csv", "a,b\n1,2\n")
	e2e.WriteFile(t, dir, "private.txt", "SECRET\n")
	e2e.WriteFile(t, dir, "public/download.php", `<?php
header('Content-Type: text/csv');
header('X-Told: ' . ($_SERVER['HTTP_X_SENDFILE_TYPE'] ?? 'nothing'));
header('X-Sendfile: ' . $_GET['file']);
`)
	s := startExample(t, dir, "phased.yaml", "app.sendfile_paths=files")
	a := do(t, "GET", s.URL("/download.php?file="+url.QueryEscape(filepath.Join(dir, "files", "report.csv"))), "", "", "X-Sendfile-Type", "X-Accel-Redirect")
	if a.code != 200 || a.body != "a,b\n1,2\n" || a.header.Get("X-Told") != "X-Sendfile" || a.header.Get("X-Sendfile") != "" ||
		!strings.HasPrefix(a.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("X-Sendfile of a file below app.sendfile_paths: %d %v %q", a.code, a.header, a.body)
	}
	a = do(t, "GET", s.URL("/download.php?file="+url.QueryEscape(filepath.Join(dir, "files", "report.csv"))), "", "", "Range", "bytes=4-6")
	if a.code != 206 || a.body != "1,2" {
		t.Fatalf("a Range of it: %d %q", a.code, a.body)
	}
	a = do(t, "GET", s.URL("/download.php?file="+url.QueryEscape(filepath.Join(dir, "private.txt"))), "", "")
	if a.code != 403 || strings.Contains(a.body, "SECRET") {
		t.Fatalf("X-Sendfile of a file outside: %d %q", a.code, a.body)
	}
	s.WaitLog(t, "X-Sendfile: the file the app named cannot be sent", 1, 5*time.Second)
}

// TestPHPChildKilled: a child killed with SIGKILL cannot stop its php-cgi;
// the kernel kills php-cgi's parent (its parent-death signal), which leaves
// its PHP processes behind, still holding the child's socket. The master
// ends them as it reaps the child, and the replacement has a php-cgi of its
// own. With app.max_body_size at 64K (not 100M), a POST over it is 413
// before it reaches PHP.
func TestPHPChildKilled(t *testing.T) {
	e2e.Program(t, "php-cgi", "php-cgi")
	dir := example(t, "app-php")
	s := startExample(t, dir, "phased.yaml", "app.max_body_size=64K")
	message := strings.Repeat("x", 60<<10)
	expect(t, "POST under app.max_body_size", post(t, s.URL("/form.php"), url.Values{"message": {message}}), 200,
		"Your message has 61440 bytes.")
	expect(t, "POST over app.max_body_size", post(t, s.URL("/form.php"), url.Values{"message": {message + message}}), 413)
	apps := readyApps(t, s, 1, 2)
	victim := apps[0]
	php := tree(victim.AppPID)
	if len(php) != 9 {
		t.Fatalf("child %d's php-cgi tree is %v, want php-cgi and 8 PHP processes", victim.PID, php)
	}
	e2e.Kill(t, victim.PID, syscall.SIGKILL)
	e2e.WaitGone(t, php, 5*time.Second)
	if s.Exited() {
		t.Fatalf("the master exited; log:\n%s", s.Log)
	}
	now := readyApps(t, s, 1, 2)
	for _, c := range now {
		if c.PID == victim.PID || c.AppPID == victim.AppPID {
			t.Fatalf("the killed child or its app is still listed: %v", now)
		}
	}
	expect(t, "GET / after the child was replaced", get(t, s.URL("/")), 200, "phased + PHP")
	stop(t, s, named(s.PID(), "php-cgi"))
}

// TestPHPTooLargeAnswered: a client that sends a body over
// app.max_body_size whole before it reads, and asks to close the
// connection (Go's client without keep-alive), gets the 413 every time.
// Closed with the body unread, the connection sent it a reset that could
// come before the answer: Go's client reported a broken pipe for 16 to 27
// of 300 such requests, and TestPHPChildKilled failed now and then.
func TestPHPTooLargeAnswered(t *testing.T) {
	e2e.Program(t, "php-cgi", "php-cgi")
	dir := example(t, "app-php")
	s := startExample(t, dir, "phased.yaml", "app.max_body_size=64K")
	message := strings.Repeat("x", 120<<10)
	for i := range 40 {
		a, err := fetch("POST", s.URL("/form.php"), "application/x-www-form-urlencoded", url.Values{"message": {message}}.Encode())
		if err != nil || a.code != 413 {
			t.Fatalf("POST %d over app.max_body_size: %v %v, want 413", i, a.code, err)
		}
	}
	stop(t, s, named(s.PID(), "php-cgi"))
}

// fpm is a php-fpm the test started.
type fpm struct {
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// startFPM runs Debian's php-fpm on the example's php-fpm.conf in dir, its
// prefix: its pid file, log and socket in dir/run, in the foreground (its
// log on stderr too, -O), with -R
// when the test runs as root (php-fpm refuses root without it). It is
// killed by its PID, its process group with it, at the test's end.
func startFPM(t *testing.T, dir string) *fpm {
	t.Helper()
	bin := e2e.Program(t, "/usr/sbin/php-fpm*", "php-fpm")
	args := []string{"-y", filepath.Join(dir, "php-fpm.conf"), "-p", dir, "-F", "-O"}
	if os.Getuid() == 0 {
		args = append(args, "-R")
	}
	f := &fpm{cmd: exec.Command(bin, args...), log: new(bytes.Buffer), done: make(chan struct{})}
	f.cmd.Dir = dir
	f.cmd.Stdout, f.cmd.Stderr = f.log, f.log
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.cmd.Wait(); close(f.done) }()
	pid := f.cmd.Process.Pid
	t.Cleanup(func() {
		kids := e2e.Descendants(pid)
		syscall.Kill(-pid, syscall.SIGKILL)
		<-f.done
		e2e.WaitGone(t, append(kids, pid), 5*time.Second)
	})
	sock := filepath.Join(dir, "run/php-fpm.sock")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return f
		}
		select {
		case <-f.done:
			t.Fatalf("php-fpm exited: %v\n%s", f.cmd.ProcessState, f.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("php-fpm does not listen on %s after 15s:\n%s", sock, f.log)
		}
	}
}

// TestPHPFPMExample runs examples/app-php/phased-fpm.yaml against a php-fpm
// the test starts on the example's php-fpm.conf: the same site, each
// script run by one of php-fpm's processes (which are not phased's); when
// php-fpm stops (QUIT, its graceful stop), scripts are 503 while static
// files are still served.
func TestPHPFPMExample(t *testing.T) {
	dir := example(t, "app-php")
	f := startFPM(t, dir)
	s := startExample(t, dir, "phased-fpm.yaml")
	phpPages(t, s, dir, "fpm-fcgi")

	a := get(t, s.URL("/"))
	m := regexp.MustCompile(`process (\d+)`).FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("GET / names no process: %q", a.body)
	}
	pid, _ := strconv.Atoi(m[1])
	fpmPID := f.cmd.Process.Pid
	if !containsPID(e2e.Children(fpmPID), pid) {
		t.Errorf("the script ran in process %d, not one of php-fpm's (%d: %v)", pid, fpmPID, e2e.Children(fpmPID))
	}
	for _, c := range readyApps(t, s, 1, 0) {
		if c.AppPID != 0 {
			t.Errorf("child %d lists an app %d; with app.fastcgi.address it runs none", c.PID, c.AppPID)
		}
	}
	if n := len(named(s.PID(), "php-cgi")) + len(named(s.PID(), filepath.Base(f.cmd.Path))); n != 0 {
		t.Errorf("%d PHP processes below phased", n)
	}

	kids := e2e.Descendants(fpmPID)
	e2e.Kill(t, fpmPID, syscall.SIGQUIT)
	select {
	case <-f.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("php-fpm did not stop on QUIT:\n%s", f.log)
	}
	e2e.WaitGone(t, kids, 5*time.Second)
	expect(t, "GET / with php-fpm stopped", get(t, s.URL("/")), 503)
	expect(t, "GET /style.css with php-fpm stopped", get(t, s.URL("/style.css")), 200, "font-family")
	if s.Log.Count("fastcgi: cannot connect") == 0 {
		t.Errorf("the error log does not say why /: %s", s.Log)
	}
	stop(t, s, nil)
}

func containsPID(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

// TestPHPReadTimeout: app.read_timeout bounds each wait for the FastCGI
// server too: a script that sleeps 4 s before it writes anything, under
// a bound of 1s, gets its client a 504 after about a second, logged with
// the bound; the site's pages still answer.
func TestPHPReadTimeout(t *testing.T) {
	e2e.Program(t, "php-cgi", "php-cgi")
	dir := example(t, "app-php")
	e2e.WriteFile(t, filepath.Join(dir, "public"), "sleepy.php", "<?php sleep(4); echo \"late\\n\";\n")
	s := startExample(t, dir, "phased.yaml", "app.read_timeout=1s")
	start := time.Now()
	a := get(t, s.URL("/sleepy.php"))
	if took := time.Since(start); a.code != 504 || took < time.Second || took > 3*time.Second {
		t.Fatalf("GET /sleepy.php: %d after %v, want 504 after about 1s; body %q", a.code, took, a.body)
	}
	s.WaitLog(t, `"read_timeout":"1s"`, 1, 5*time.Second)
	expect(t, "GET /", get(t, s.URL("/")), 200, "<h1>phased + PHP</h1>")
	stop(t, s, named(s.PID(), "php-cgi"))
}
