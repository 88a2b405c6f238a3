package plugins

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// The MPM plugin of these tests, testdata/faultmpm, keeps two worker
// children; its Maintain hangs while MPM_HANG exists in server_root, and it
// exits at start while MPM_CRASH_AT_START does. The first Maintain each
// process answers logs "faultmpm maintains" with its pid.

// startFaultMPM starts a master on faultmpm and returns it with the pid of
// the plugin process that maintains it.
func startFaultMPM(t *testing.T) (*e2e.Server, string, int) {
	t.Helper()
	bin := e2e.Build(t, "./internal/e2e/plugins/testdata/faultmpm")
	s := e2e.StartMPM(t, "mpm: {name: "+bin+"}\n")
	return s, bin, waitMaintainer(t, s, 1)
}

// waitMaintainer waits for the nth "faultmpm maintains" record and returns
// the plugin pid it names.
func waitMaintainer(t *testing.T, s *e2e.Server, n int) int {
	t.Helper()
	s.Log.Wait(t, `"msg":"faultmpm maintains"`, n, 10*time.Second)
	var pid int
	fmt.Sscan(s.Log.Records("faultmpm maintains")[n-1]["plugin_pid"].(string), &pid)
	return pid
}

// poll fetches /hello.txt every 50 ms until stop is closed, and sends how
// many requests failed (anything but a 200) and the first failure.
func poll(s *e2e.Server, stop <-chan struct{}) <-chan string {
	out := make(chan string, 1)
	go func() {
		fails, n, first := 0, 0, ""
		for {
			select {
			case <-stop:
				out <- fmt.Sprintf("%d of %d requests failed %s", fails, n, first)
				return
			case <-time.After(50 * time.Millisecond):
			}
			n++
			if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
				if fails++; first == "" {
					first = fmt.Sprintf("(first: %d %v)", code, err)
				}
			}
		}
	}()
	return out
}

// clientSawNoFailure stops the poller and fails t if a request failed.
func clientSawNoFailure(t *testing.T, stop chan struct{}, res <-chan string) {
	t.Helper()
	close(stop)
	if r := <-res; !strings.HasPrefix(r, "0 of") {
		t.Fatalf("client: %s", r)
	}
}

// TestMPMMaintainNeverAnswers: an MPM plugin whose Maintain never answers,
// whether only the call hangs or the whole process is wedged (stopped),
// hits the master's own bound each tick. The master logs each failure
// naming the plugin, the children serve on, and after three failures in a
// row it kills the plugin and relaunches it; the new process maintains.
func TestMPMMaintainNeverAnswers(t *testing.T) {
	for _, tt := range []struct {
		name  string
		wedge func(t *testing.T, s *e2e.Server, pid int)
		heal  func(t *testing.T, s *e2e.Server)
	}{
		{"call hangs", func(t *testing.T, s *e2e.Server, _ int) { e2e.WriteFile(t, s.Dir, "MPM_HANG", "") },
			func(t *testing.T, s *e2e.Server) { os.Remove(filepath.Join(s.Dir, "MPM_HANG")) }},
		{"process stopped", func(t *testing.T, _ *e2e.Server, pid int) { e2e.Kill(t, pid, syscall.SIGSTOP) },
			func(*testing.T, *e2e.Server) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, bin, first := startFaultMPM(t)
			kids := e2e.Sorted(e2e.Workers(s.PID()))
			stop := make(chan struct{})
			res := poll(s, stop)
			// The master's event loop never waits for the plugin: while each
			// tick's call hangs for its 1 s bound, control commands are
			// answered as fast as before the hang. A loop blocked in the call
			// would hold each for what is left of the hang, half a second on
			// average; the median of nine is compared with the median before
			// the hang, not with a fixed figure, so that a loaded machine
			// (slow everywhere) does not fail it.
			statusTimes := func() ([]time.Duration, time.Duration) {
				var took []time.Duration
				for range 9 {
					began := time.Now()
					s.Status(t)
					took = append(took, time.Since(began).Round(time.Millisecond))
					time.Sleep(100 * time.Millisecond)
				}
				sorted := slices.Clone(took)
				slices.Sort(sorted)
				return took, sorted[len(sorted)/2]
			}
			_, before := statusTimes()
			tt.wedge(t, s, first)
			s.Log.Wait(t, `"msg":"MPM maintenance failed; children keep serving"`, 1, 10*time.Second)
			if took, during := statusTimes(); during > before+250*time.Millisecond {
				t.Fatalf("phased status took %v (median %v, %v before) while the MPM hung: the event loop waits for the plugin", took, during, before)
			}
			s.Log.Wait(t, `"msg":"MPM maintenance failed; children keep serving"`, 3, 10*time.Second)
			tt.heal(t, s) // the relaunched process may answer
			for i, r := range s.Log.Records("MPM maintenance failed; children keep serving")[:3] {
				if r["plugin"] != "mpm "+filepath.Base(bin) || fmt.Sprint(r["pid"]) != fmt.Sprint(first) ||
					!strings.Contains(fmt.Sprint(r["err"]), "did not answer within 1s") || fmt.Sprint(r["failures"]) != fmt.Sprint(i+1) {
					t.Fatalf("failure record %d does not name the plugin, its pid and the bound: %v", i+1, r)
				}
			}
			s.Log.Wait(t, "MPM plugin relaunched", 1, 10*time.Second)
			killed := s.Log.Records("MPM plugin keeps failing; killing and relaunching it, children keep serving")
			if len(killed) != 1 || killed[0]["level"] != "NOTICE" || killed[0]["plugin"] != "mpm "+filepath.Base(bin) || fmt.Sprint(killed[0]["pid"]) != fmt.Sprint(first) {
				t.Fatalf("kill notice: %v\nlog:\n%s", killed, s.Log)
			}
			if n := len(s.Log.Records("MPM plugin exited; children keep serving, relaunching it")); n != 0 {
				t.Errorf("a plugin the master killed is also reported as exited by itself (%d)", n)
			}
			e2e.WaitGone(t, []int{first}, 3*time.Second)
			if next := waitMaintainer(t, s, 2); next == first || !e2e.Alive(next) {
				t.Fatalf("maintained by pid %d after the relaunch, want a new live process (was %d)", next, first)
			}
			clientSawNoFailure(t, stop, res)
			if now := e2e.Sorted(e2e.Workers(s.PID())); !slices.Equal(now, kids) {
				t.Fatalf("children changed from %v to %v", kids, now)
			}
		})
	}
}

// TestMPMRelaunchBacksOff: an MPM plugin that dies, and then crashes at
// start each time it is relaunched, is retried with exponential back-off
// (each wait twice the last), said in the log, while the children keep
// serving; once it starts again it maintains.
func TestMPMRelaunchBacksOff(t *testing.T) {
	s, bin, first := startFaultMPM(t)
	stop := make(chan struct{})
	res := poll(s, stop)
	e2e.WriteFile(t, s.Dir, "MPM_CRASH_AT_START", "")
	e2e.Kill(t, first, syscall.SIGKILL)
	const msg = "MPM plugin relaunch failed; backing off"
	s.Log.Wait(t, `"msg":"`+msg+`"`, 3, 15*time.Second)
	os.Remove(filepath.Join(s.Dir, "MPM_CRASH_AT_START"))
	recs := s.Log.Records(msg)[:3]
	var at []time.Time
	for i, r := range recs {
		want := (500 * time.Millisecond << i).String()
		if r["retry_in"] != want || r["plugin"] != "mpm "+filepath.Base(bin) || !strings.Contains(fmt.Sprint(r["err"]), "failed at start") {
			t.Fatalf("back-off record %d: want retry_in %s, the plugin and why: %v", i+1, want, r)
		}
		ts, err := time.Parse(time.RFC3339Nano, r["time"].(string))
		if err != nil {
			t.Fatal(err)
		}
		at = append(at, ts)
	}
	for i := 1; i < len(at); i++ {
		if waited, want := at[i].Sub(at[i-1]), 500*time.Millisecond<<(i-1); waited < want-50*time.Millisecond {
			t.Fatalf("attempt %d came %s after the one before, which said to wait %s", i+1, waited, want)
		}
	}
	if !strings.Contains(s.Log.String(), "crashing at start, as MPM_CRASH_AT_START asks") {
		t.Fatal("the plugin's own last words are not in the error log")
	}
	if n := len(s.Log.Records("MPM plugin exited; children keep serving, relaunching it")); n != 1 {
		t.Fatalf("%d exit notices, want one however many relaunches fail", n)
	}
	s.Log.Wait(t, "MPM plugin relaunched", 1, 10*time.Second)
	if next := waitMaintainer(t, s, 2); next == first {
		t.Fatalf("maintained by the killed pid %d", first)
	}
	clientSawNoFailure(t, stop, res)
}

// TestMPMPluginCrashIsSurvived: the MPM runs as a plugin process; killed,
// it is relaunched while the children keep serving, and maintenance goes on.
func TestMPMPluginCrashIsSurvived(t *testing.T) {
	s := e2e.StartMPM(t, "mpm: {name: worker, start_servers: 1, threads_per_child: 2, min_spare_threads: 2, max_spare_threads: 4, server_limit: 5, max_request_workers: 10}\n")
	plugins := e2e.Plugins(s.PID())
	if len(plugins) != 1 {
		t.Fatalf("%d MPM plugin processes, want 1", len(plugins))
	}
	e2e.Kill(t, plugins[0], syscall.SIGKILL)
	if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
		t.Fatalf("not serving without its MPM: %d %v", code, err)
	}
	s.Log.Wait(t, "MPM plugin relaunched", 1, 10*time.Second)
	recs := s.Log.Records("MPM plugin exited; children keep serving, relaunching it")
	if len(recs) != 1 || recs[0]["level"] != "NOTICE" {
		t.Fatalf("notice: %v", recs)
	}
	if now := e2e.Plugins(s.PID()); len(now) != 1 || now[0] == plugins[0] {
		t.Fatalf("plugin processes after the relaunch: %v (killed %d)", now, plugins[0])
	}
	// The relaunched MPM still maintains: held connections make it grow.
	e2e.HoldConnections(t, s.Addr, 3)
	s.WaitChildren(t, 3, 10*time.Second)
}

// TestQuietStartAndCheck: a start and a -t log nothing at info about the
// plugin processes phased stops itself (the double start's rehearsal, the
// check's MPM).
func TestQuietStartAndCheck(t *testing.T) {
	s := e2e.StartServer(t, "")
	if recs := s.Log.Records("plugin process exited"); len(recs) != 0 {
		t.Fatalf("start logged %v", recs)
	}
	code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-t")
	if code != 0 || strings.Contains(errOut, "plugin process exited") || strings.Contains(errOut, "failed to exit gracefully") {
		t.Fatalf("-t: exit %d, stderr %q", code, errOut)
	}
}
