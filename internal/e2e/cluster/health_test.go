package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
	"github.com/phasedhq/phased/internal/procfs"
)

// sample is one probe or request: when it was sent, and its status or
// error.
type sample struct {
	at   time.Time
	code int
	err  error
}

// poller sends GET path to addr on a new connection every interval until
// stopped, keeping every answer.
type poller struct {
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	done    chan struct{}
}

func poll(addr, path string, interval time.Duration) *poller {
	p := &poller{stop: make(chan struct{}), done: make(chan struct{})}
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		defer close(p.done)
		for {
			at := time.Now()
			code, err := 0, error(nil)
			resp, err := c.Get("http://" + addr + path)
			if err == nil {
				code = resp.StatusCode
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			p.mu.Lock()
			p.samples = append(p.samples, sample{at, code, err})
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(interval):
			}
		}
	}()
	return p
}

// end stops the poller and returns what it saw.
func (p *poller) end() []sample {
	close(p.stop)
	<-p.done
	return p.samples
}

// get answers GET path on a new connection: the status, or 0 and the error.
func get(addr, path string) (int, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// logTime returns the time of the master's first log record msg.
func logTime(t *testing.T, s *e2e.Server, msg string) time.Time {
	t.Helper()
	recs := s.Log.Records(msg)
	if len(recs) == 0 {
		t.Fatalf("no %q in the log", msg)
	}
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(recs[0]["time"]))
	if err != nil {
		t.Fatalf("%q's time: %v", msg, err)
	}
	return at
}

// halfRequest opens a connection to addr and sends a request's first
// header lines: a request in flight until finish sends the rest and reads
// the answer.
func halfRequest(t *testing.T, addr string) (finish func() (*http.Response, error)) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
	return func() (*http.Response, error) {
		fmt.Fprintf(c, "\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		return http.ReadResponse(bufio.NewReader(c), nil)
	}
}

// TestReadinessDrainDelay: a graceful stop (SIGTERM with sigterm:
// graceful-stop, as a container runtime sends it, or -k graceful-stop)
// turns readiness to 503 at once, and for health.drain_delay everything
// else serves as before, new connections included; only then do the
// listeners close: new connections are refused while a request in flight
// is still answered; then the master exits 0.
func TestReadinessDrainDelay(t *testing.T) {
	const delay = 2 * time.Second
	for _, how := range []string{"SIGTERM", "-k graceful-stop"} {
		t.Run(how, func(t *testing.T) {
			s := e2e.StartServer(t, "sigterm: graceful-stop\ngraceful_shutdown_timeout: 10s\nhealth: {drain_delay: 2s}\n")
			if code, err := get(s.Addr, "/readyz"); code != 200 {
				t.Fatalf("readiness before the stop: %d %v", code, err)
			}
			ready := poll(s.Addr, "/readyz", 20*time.Millisecond)
			reqs := poll(s.Addr, "/hello.txt", 10*time.Millisecond)
			time.Sleep(200 * time.Millisecond)
			start := time.Now()
			if how == "SIGTERM" {
				s.Signal(t, syscall.SIGTERM)
			} else {
				go e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful-stop")
			}
			s.Log.Wait(t, "readiness answers 503", 1, 5*time.Second)
			// A request in flight across the end of the delay.
			finish := halfRequest(t, s.Addr)
			s.Log.Wait(t, "drain delay over; draining", 1, 10*time.Second)
			if d := time.Since(start); d < delay-100*time.Millisecond {
				t.Fatalf("the drain delay ended after %s, not %s", d, delay)
			}
			// When the children were told to drain, by the log's clock;
			// what was sent up to a moment before it must have been served.
			over := logTime(t, s, "drain delay over; draining").Add(-50 * time.Millisecond)
			rs, qs := ready.end(), reqs.end()

			// Readiness: 200 before the stop, then 503 from within a
			// moment of it until the delay's end, never 200 again.
			first503 := time.Time{}
			for _, r := range rs {
				switch {
				case r.err != nil && r.at.Before(over):
					t.Fatalf("readiness probe at +%s failed: %v", r.at.Sub(start), r.err)
				case r.code == 503 && first503.IsZero():
					first503 = r.at
				case r.code == 200 && !first503.IsZero():
					t.Fatalf("readiness 200 again at +%s after 503 at +%s", r.at.Sub(start), first503.Sub(start))
				}
			}
			// Within a moment: -k graceful-stop first starts a phased
			// process (a race-detector binary), which took over a second
			// on a loaded machine.
			if first503.IsZero() || first503.Sub(start) > 2*time.Second {
				t.Fatalf("readiness did not turn 503 within 2 s of the stop: %v", first503.Sub(start))
			}
			// Requests: every one sent before the delay's end answered 200.
			served := 0
			for _, q := range qs {
				if q.at.Before(over) {
					if q.err != nil || q.code != 200 {
						t.Fatalf("request at +%s during the drain delay: %d %v", q.at.Sub(start), q.code, q.err)
					}
					if q.at.After(start) {
						served++
					}
				}
			}
			if served < 20 {
				t.Fatalf("only %d requests served during the drain delay", served)
			}
			// The listeners close: a new connection is refused, while
			// the request in flight is still to be answered.
			refused := false
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && !refused; time.Sleep(20 * time.Millisecond) {
				c, err := net.DialTimeout("tcp", s.Addr, time.Second)
				if err == nil {
					c.Close()
					continue
				}
				refused = errors.Is(err, syscall.ECONNREFUSED)
			}
			if !refused {
				t.Fatal("new connections are not refused after the drain delay")
			}
			resp, err := finish()
			if err != nil || resp.StatusCode != 200 || !resp.Close {
				t.Fatalf("the request in flight: %v %v", resp, err)
			}
			if code := s.WaitExit(t, 15*time.Second); code != 0 {
				t.Fatalf("master exit %d", code)
			}
		})
	}
}

// TestReadinessThroughUpgrade: a binary upgrade keeps readiness 200 all
// along, even with a drain delay: the new master serves the very sockets
// the old one listened on, so the instance never stops being ready, and no
// probe or request fails.
func TestReadinessThroughUpgrade(t *testing.T) {
	s := e2e.StartServer(t, "health: {drain_delay: 2s}\n")
	ready := poll(s.Addr, "/readyz", 20*time.Millisecond)
	reqs := poll(s.Addr, "/hello.txt", 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "upgrade")
	if code != 0 {
		t.Fatalf("-k upgrade: exit %d %q %q", code, out, errOut)
	}
	s.WaitExit(t, 15*time.Second) // the old master drained and left
	time.Sleep(300 * time.Millisecond)
	for what, samples := range map[string][]sample{"readiness": ready.end(), "request": reqs.end()} {
		if len(samples) < 10 {
			t.Fatalf("only %d %s samples", len(samples), what)
		}
		for _, x := range samples {
			if x.err != nil || x.code != 200 {
				t.Fatalf("%s at %s during the upgrade: %d %v", what, x.at.Format("15:04:05.000"), x.code, x.err)
			}
		}
	}
	if s.Log.Count("readiness answers 503") > 0 {
		t.Fatal("the old master said it was stopping")
	}
	// The new master is not the test's child: stop it by its pid file.
	b, err := os.ReadFile(filepath.Join(s.Dir, "run/phased.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	kids := e2e.Descendants(pid)
	t.Cleanup(func() {
		for _, p := range append(kids, pid) {
			if p > 1 {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})
	e2e.Kill(t, pid, syscall.SIGTERM)
}

// TestLiveness: liveness answers 200 while the master runs, and 503 once
// its event loop has gone silent (a stopped master) while its children
// still serve; readiness follows; both come back with the master.
func TestLiveness(t *testing.T) {
	s := e2e.StartServer(t, "")
	for _, p := range []string{"/livez", "/readyz"} {
		if code, err := get(s.Addr, p); code != 200 {
			t.Fatalf("%s: %d %v", p, code, err)
		}
	}
	s.Signal(t, syscall.SIGSTOP)
	stopped := time.Now()
	defer s.Signal(t, syscall.SIGCONT)
	for code := 200; code != 503; time.Sleep(200 * time.Millisecond) {
		if time.Since(stopped) > 20*time.Second {
			t.Fatal("liveness still 200 20s after the master stopped")
		}
		code, _ = get(s.Addr, "/livez")
	}
	if d := time.Since(stopped); d < 9*time.Second {
		t.Fatalf("liveness failed %s after the master stopped, before its 10s bound", d)
	}
	if code, _ := get(s.Addr, "/readyz"); code != 503 {
		t.Fatalf("readiness with a silent master: %d", code)
	}
	if code, err := get(s.Addr, "/hello.txt"); code != 200 {
		t.Fatalf("the children no longer serve: %d %v", code, err)
	}
	s.Signal(t, syscall.SIGCONT)
	for code := 503; code != 200; time.Sleep(50 * time.Millisecond) {
		if time.Since(stopped) > 40*time.Second {
			t.Fatal("liveness did not come back")
		}
		code, _ = get(s.Addr, "/livez")
	}
}

// TestHealthPathsAndAllow: the paths are the configured ones (the old ones
// go to the document root), a client outside health.allow gets 403, and
// the endpoints answer whatever the MPM.
func TestHealthPathsAndAllow(t *testing.T) {
	s := e2e.StartServer(t, "health: {liveness_path: /-/healthy, readiness_path: /-/ready}\nmpm: {name: prefork, start_servers: 2}\n")
	for path, want := range map[string]int{"/-/healthy": 200, "/-/ready": 200, "/livez": 404, "/readyz": 404} {
		if code, err := get(s.Addr, path); code != want {
			t.Errorf("%s: %d %v, want %d", path, code, err, want)
		}
	}
	s = e2e.StartServer(t, "health: {allow: [10.0.0.0/8]}\nmpm: {name: event, start_servers: 1}\n")
	for _, path := range []string{"/livez", "/readyz"} {
		resp, err := http.Get(s.URL(path))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(b), "not open to your address") {
			t.Errorf("%s from outside health.allow: %d %q", path, resp.StatusCode, b)
		}
	}
}

// TestUpgradeRefusedAsPID1: a master that is PID 1 of its PID namespace (a
// container's init) refuses a binary upgrade, naming why, and serves on:
// the old master's exit would end the whole namespace, the new master
// with it. (Before, -k upgrade answered "new master serving" and the
// container went down a moment later.)
func TestUpgradeRefusedAsPID1(t *testing.T) {
	unshare := e2e.Program(t, "unshare", "util-linux")
	dir := t.TempDir()
	addr := e2e.FreePort(t)
	e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, "access_log: {path: \"\"}\n"))
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", e2e.Binary(t), "-f", conf)
	cmd.Dir, cmd.Env = dir, e2e.Environ(t)
	cmd.Stderr = new(lockedBuffer)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	top := cmd.Process.Pid
	t.Cleanup(func() {
		for _, p := range append(procfs.Descendants(top), top) {
			syscall.Kill(p, syscall.SIGKILL)
		}
		cmd.Wait()
	})
	e2e.WaitServing(t, "http://"+addr+"/hello.txt", 20*time.Second)
	code, _, errOut := e2e.Run(t, dir, nil, "-f", conf, "-k", "upgrade")
	if code != 1 || !strings.Contains(errOut, "PID 1") {
		t.Fatalf("-k upgrade of PID 1: exit %d %q", code, errOut)
	}
	time.Sleep(500 * time.Millisecond)
	if code, err := get(addr, "/hello.txt"); code != 200 {
		t.Fatalf("not serving after the refused upgrade: %d %v", code, err)
	}
}
