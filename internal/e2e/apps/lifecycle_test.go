package apps

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
	"github.com/phasedhq/phased/internal/procfs"
)

// traceHook is an exec hook for child-init and child-exit: it appends what
// it was told, and its child's pid, to trace.log, where the app writes its
// start and its stop signal too.
const traceHook = `#!/bin/sh
echo "hook $PHASED_PHASE child=$PPID slot=${PHASED_SLOT-unset} generation=${PHASED_GENERATION-unset}" >> trace.log
`

// traceLines returns trace.log's lines that mention any of pids (as
// child= or pid=).
func traceLines(t *testing.T, dir string, pids ...int) []string {
	t.Helper()
	var out []string
	for _, line := range e2e.ReadTrace(t, dir) {
		for _, p := range pids {
			if strings.Contains(line, fmt.Sprintf("child=%d ", p)) || strings.Contains(line, fmt.Sprintf("pid=%d ", p)) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}

// inFlight starts a GET of path on a fresh connection and returns nil when
// it is answered 200, else what went wrong.
func inFlight(s *e2e.Server, path string) <-chan error {
	done := make(chan error, 1)
	go func() {
		// Longer than e2e.Get's 5 s: a request may be held through a
		// graceful restart.
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(s.URL(path))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("%d %q", resp.StatusCode, body)
			}
		}
		done <- err
	}()
	return done
}

// waitBusy waits until phased status shows a request in flight.
func waitBusy(t *testing.T, s *e2e.Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Status(t)["busy_workers"].(float64) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no request in flight after 5s: %v", s.Status(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitTrace waits until trace.log has a line that matches re.
func waitTrace(t *testing.T, s *e2e.Server, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range e2e.ReadTrace(t, s.Dir) {
			if re.MatchString(line) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace.log has no line like %s:\n%s\nlog:\n%s", re, strings.Join(e2e.ReadTrace(t, s.Dir), "\n"), s.Log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHTTPAppLifecycle: an app server lives inside its child's life. The
// child-init hooks run before it starts and the child-exit hooks after it
// stopped, with the child's slot and generation; its output is in the
// error log tagged with the child; a child that retires (SIGUSR1 to it, or
// -k graceful) finishes its request in flight, and only then does the app
// get its stop signal (QUIT here); an app that ignores the signal is killed
// after stop_timeout.
func TestHTTPAppLifecycle(t *testing.T) {
	app := nodeApp(t, nil, "  stop_signal: QUIT\n  stop_timeout: 1s\n  env: {APP_TRACE: trace.log}\n")
	// One child at most: with a request in flight prefork would spawn
	// another, and this test follows one child and one app at a time.
	s := e2e.StartServer(t, `mpm: {name: prefork, start_servers: 1, min_spare_servers: 1, max_spare_servers: 2, server_limit: 1}
hooks:
  - {name: trace-init, phase: child-init, exec: [./hook.sh]}
  - {name: trace-exit, phase: child-exit, exec: [./hook.sh]}
`+app, func(dir string) {
		e2e.WriteFile(t, dir, "hook.sh", traceHook)
		os.Chmod(filepath.Join(dir, "hook.sh"), 0o755)
	})
	kids := e2e.Workers(s.PID())
	if len(kids) != 1 {
		t.Fatalf("children %v, want 1", kids)
	}
	child := kids[0]
	st := stats(t, s)
	if !slices.Contains(e2e.Children(child), st.PID) {
		t.Fatalf("the app (pid %d) is not the child's (%d, children %v)", st.PID, child, e2e.Children(child))
	}
	e2e.EqualLines(t, "trace of the first child", traceLines(t, s.Dir, child, st.PID), []string{
		fmt.Sprintf("hook child-init child=%d slot=0 generation=1", child),
		fmt.Sprintf("app-start pid=%d slot=0 generation=1", st.PID),
	})

	// The app's output, a line at a time, tagged with its child.
	if code, _, err := e2e.Get(s.URL("/log?msg=tagged")); code != 200 {
		t.Fatalf("/log: %d %v", code, err)
	}
	for _, stream := range []string{"stdout", "stderr"} {
		s.Log.Wait(t, "app "+stream+": tagged", 1, 5*time.Second)
		recs := s.Log.Records("app " + stream + ": tagged")
		if len(recs) != 1 || num(recs[0], "pid") != child || num(recs[0], "slot") != 0 || num(recs[0], "app_pid") != st.PID || recs[0]["stream"] != stream {
			t.Errorf("the app's %s line in the error log: %v; want it tagged with child %d, slot 0, app %d", stream, recs, child, st.PID)
		}
	}

	// A line longer than the log takes in one record (2 MiB) comes in
	// pieces, and the output goes on.
	if code, _, err := e2e.Get(s.URL("/log?msg=long&pad=2097152")); code != 200 {
		t.Fatalf("/log with a long line: %d %v", code, err)
	}
	if code, _, err := e2e.Get(s.URL("/log?msg=after-long")); code != 200 {
		t.Fatalf("/log after a long line: %d %v", code, err)
	}
	for _, stream := range []string{"stdout", "stderr"} {
		s.Log.Wait(t, "app "+stream+": after-long", 1, 5*time.Second)
		if recs := s.Log.Records("app " + stream + ": after-long"); len(recs) != 1 || num(recs[0], "app_pid") != st.PID {
			t.Errorf("after a 2 MiB line the app's %s is %v", stream, recs)
		}
	}

	// SIGUSR1 to the child with a request in flight: the request ends,
	// then the app gets QUIT, then the child-exit hook runs.
	req := inFlight(s, "/hold?group=retire&ms=1500")
	waitBusy(t, s)
	e2e.Kill(t, child, syscall.SIGUSR1)
	if err := <-req; err != nil {
		t.Fatalf("the request in flight when its child retired: %v", err)
	}
	waitTrace(t, s, regexp.MustCompile(fmt.Sprintf(`^hook child-exit child=%d `, child)))
	e2e.EqualLines(t, "trace of the retired child", traceLines(t, s.Dir, child, st.PID), []string{
		fmt.Sprintf("hook child-init child=%d slot=0 generation=1", child),
		fmt.Sprintf("app-start pid=%d slot=0 generation=1", st.PID),
		fmt.Sprintf("app-stop pid=%d slot=0 signal=SIGQUIT busy=0 ignored=false", st.PID),
		fmt.Sprintf("hook child-exit child=%d slot=0 generation=1", child),
	})
	s.Log.Wait(t, fmt.Sprintf("app %d: got SIGQUIT", st.PID), 1, 5*time.Second)
	e2e.WaitGone(t, []int{child, st.PID}, 5*time.Second)

	// -k graceful with a request in flight and an app that ignores its stop
	// signal: the request ends, the app gets QUIT, ignores it, and is
	// killed stop_timeout later; then the child-exit hook runs.
	apps := waitApps(t, s, 1, []int{st.PID}, 10*time.Second)
	old := e2e.Workers(s.PID())
	e2e.WriteFile(t, s.Dir, "ignore-stop", "")
	// The request is held until the file "release" is there: -k graceful
	// starts a generation with its app first, which takes seconds on a
	// loaded machine.
	req = inFlight(s, "/hold?group=graceful&ms=0&file=release")
	waitBusy(t, s)
	if code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("-k graceful: %d %s %s", code, out, errOut)
	}
	select { // -k graceful returns as the old generation starts to drain
	case err := <-req:
		t.Fatalf("the request in flight ended (%v) before its child began to drain", err)
	case <-time.After(300 * time.Millisecond):
	}
	e2e.WriteFile(t, s.Dir, "release", "")
	if err := <-req; err != nil {
		t.Fatalf("the request in flight during -k graceful: %v", err)
	}
	s.Log.Wait(t, "app server did not stop in time; killing it", 1, 10*time.Second)
	os.Remove(filepath.Join(s.Dir, "ignore-stop"))
	e2e.WaitGone(t, append(old, apps...), 5*time.Second)
	rec := s.Log.Records("app server did not stop in time; killing it")[0]
	if num(rec, "app_pid") != apps[0] || rec["after"] != "1s" || rec["signal"] != "quit" {
		t.Errorf("the kill of the app that ignored its stop signal was logged as %v; want app %d, after 1s, signal quit", rec, apps[0])
	}
	// The app said it ignored QUIT; the kill came stop_timeout after.
	ignored := s.Log.Records(fmt.Sprintf("app %d: got SIGQUIT, ignoring it", apps[0]))
	if len(ignored) != 1 {
		t.Fatalf("the app's own word on its QUIT: %v", ignored)
	}
	if d := logTime(t, rec).Sub(logTime(t, ignored[0])); d < 900*time.Millisecond || d > 3*time.Second {
		t.Errorf("the app ignored QUIT and was killed %s later; want stop_timeout, 1s", d)
	}
	waitTrace(t, s, regexp.MustCompile(fmt.Sprintf(`^hook child-exit child=%d `, old[0])))
	got := traceLines(t, s.Dir, old[0], apps[0])
	want := []*regexp.Regexp{
		regexp.MustCompile(fmt.Sprintf(`^hook child-init child=%d slot=\d generation=1$`, old[0])),
		regexp.MustCompile(fmt.Sprintf(`^app-start pid=%d slot=\d generation=1$`, apps[0])),
		regexp.MustCompile(fmt.Sprintf(`^app-stop pid=%d slot=\d signal=SIGQUIT busy=0 ignored=true$`, apps[0])),
		regexp.MustCompile(fmt.Sprintf(`^hook child-exit child=%d slot=\d generation=1$`, old[0])),
	}
	if len(got) != len(want) {
		t.Fatalf("trace of the child that drained on -k graceful: %q", got)
	}
	for i, re := range want {
		if !re.MatchString(got[i]) {
			t.Fatalf("trace of the child that drained on -k graceful: line %d %q, want %s; all: %q", i, got[i], re, got)
		}
	}
	// The new generation's app serves.
	if now := stats(t, s); now.Env["PHASED_GENERATION"] != "2" {
		t.Errorf("after -k graceful the app is of generation %q; trace:\n%s", now.Env["PHASED_GENERATION"], strings.Join(e2e.ReadTrace(t, s.Dir), "\n"))
	}
}

// logTime is when a log record was written.
func logTime(t *testing.T, rec map[string]any) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["time"]))
	if err != nil {
		t.Fatalf("log record %v: %v", rec, err)
	}
	return at
}

// TestHTTPAppFailures: under prefork an app process never has more than
// one request at a time; max_memory_per_child counts the app's memory; an
// app that crashes while serving takes its child with it, logged with its
// exit status and its last stderr lines, and the child is replaced with a
// new app; children whose app cannot start are replaced with a back-off.
func TestHTTPAppFailures(t *testing.T) {
	s := e2e.StartServer(t, `mpm: {name: prefork, start_servers: 2, min_spare_servers: 1, max_spare_servers: 3, server_limit: 3, max_memory_per_child: 100M}
`+nodeApp(t, nil, ""))

	t.Run("PreforkOneAtATime", func(t *testing.T) {
		var mu sync.Mutex
		pids := map[string]int{}
		maxes := map[string]int{}
		var wg sync.WaitGroup
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 12 {
					resp, err := client.Get(s.URL("/hold?group=prefork&ms=15"))
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					mu.Lock()
					pids[resp.Header.Get("X-App-Pid")]++
					maxes[resp.Header.Get("X-App-Max")]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(maxes) != 1 || maxes["1"] != 72 || len(pids) < 2 {
			t.Errorf("6 clients, 72 requests under prefork: the apps (%v) counted at most %v at once; want 1 always, in 2 apps or more", pids, maxes)
		}
	})

	t.Run("MaxMemoryCountsTheApp", func(t *testing.T) {
		before := waitApps(t, s, 2, nil, 5*time.Second)
		resp, err := oneShot.Get(s.URL("/alloc?mb=200"))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("/alloc: %v %v", resp, err)
		}
		resp.Body.Close()
		fat, _ := strconv.Atoi(resp.Header.Get("X-App-Pid"))
		// The child alone is well under the limit; its app is over it.
		for _, c := range appStatus(t, s) {
			if c.AppPID == fat {
				own, app := procfs.Memory(c.PID), procfs.Memory(fat)
				if app == 0 {
					break // already retired (the master checks every second): the record below tells
				}
				if own >= 100<<20 || app < 200<<20 {
					t.Errorf("child %d has %d bytes of its own, its app %d has %d", c.PID, own, fat, app)
				}
			}
		}
		s.Log.Wait(t, "child exceeds max_memory_per_child, retiring it", 1, 10*time.Second)
		e2e.WaitGone(t, []int{fat}, 10*time.Second)
		// Retired with a replacement, or (when the child's slot is not yet
		// free) without one, which the MPM makes up for next tick.
		recs := append(s.Log.Records("child exceeds max_memory_per_child, retiring it"),
			s.Log.Records("child exceeds max_memory_per_child, retiring it without a replacement: no free slot")...)
		if len(recs) == 0 {
			t.Fatalf("no retirement record:\n%s", s.Log)
		}
		rec := recs[0]
		mem, _ := strconv.ParseInt(fmt.Sprint(rec["memory"]), 10, 64)
		// Over the 100M limit, which the child alone is far under: the
		// app's memory counted (the master may look while the app is still
		// filling its 200 MiB, so not necessarily all of it).
		if mem <= 100<<20 {
			t.Errorf("the child was retired at %d bytes: the app's memory is not counted", mem)
		}
		waitApps(t, s, 2, []int{fat}, 10*time.Second)
		t.Logf("apps %v; the one that kept 200 MiB (%d) went with its child at %d bytes", before, fat, mem)
	})

	t.Run("CrashWhileServing", func(t *testing.T) {
		before := waitApps(t, s, 2, nil, 5*time.Second)
		if code, body, err := e2e.Get(s.URL("/crash?why=boom-while-serving")); err == nil && code != 502 && code != 503 {
			t.Errorf("a request whose app crashed got %d %q", code, body)
		}
		s.Log.Wait(t, "app server exited unexpectedly", 1, 5*time.Second)
		rec := s.Log.Records("app server exited unexpectedly; this child exits and is replaced")[0]
		crashed := num(rec, "app_pid")
		if rec["status"] != "exit status 7" || !strings.Contains(fmt.Sprint(rec["stderr"]), "crashing on purpose: boom-while-serving") ||
			!slices.Contains(before, crashed) {
			t.Errorf("the crash was logged as %v; want app %v, exit status 7 and its stderr", rec, before)
		}
		after := waitApps(t, s, 2, []int{crashed}, 10*time.Second)
		t.Logf("app %d crashed; apps now %v", crashed, after)
	})

	t.Run("CrashLoopBacksOff", func(t *testing.T) {
		before := waitApps(t, s, 2, nil, 5*time.Second)
		flag := e2e.WriteFile(t, s.Dir, "crash-at-start", "")
		e2e.Get(s.URL("/crash?why=start-a-loop"))
		// The replacements' apps exit at start: their children fail
		// child-init, again and again, with a growing back-off.
		deadline := time.Now().Add(15 * time.Second)
		for {
			st := s.Status(t)
			if st["crashes"].(float64) >= 3 && strings.Contains(fmt.Sprint(st["last_exit"]), "child-init failed") && st["backoff_until"] != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("phased status during the crash loop: crashes %v, last exit %q, back-off until %v", st["crashes"], st["last_exit"], st["backoff_until"])
			}
			time.Sleep(50 * time.Millisecond)
		}
		s.Log.Wait(t, "children keep dying early; backing off", 2, 5*time.Second)
		s.Log.Wait(t, "crash-at-start is there; exiting", 2, 5*time.Second)
		os.Remove(flag)
		after := waitApps(t, s, 2, nil, 15*time.Second)
		t.Logf("apps %v, crash loop, apps %v", before, after)
	})
}
