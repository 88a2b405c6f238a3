package mpm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

func TestKilledChildIsReplaced(t *testing.T) {
	s := e2e.StartServer(t, "")
	kids := e2e.Workers(s.PID())
	if len(kids) != 2 {
		t.Fatalf("%d children, want 2", len(kids))
	}
	e2e.Kill(t, kids[0], syscall.SIGKILL)
	s.Log.Wait(t, "child exited unexpectedly", 1, 5*time.Second)
	recs := s.Log.Records("child exited unexpectedly; replacing it")
	if len(recs) != 1 || recs[0]["level"] != "NOTICE" || !strings.Contains(fmt.Sprint(recs[0]["status"]), "killed") ||
		fmt.Sprint(recs[0]["pid"]) != fmt.Sprint(kids[0]) {
		t.Fatalf("notice record: %v", recs)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		now := e2e.Workers(s.PID())
		if len(now) == 2 && now[0] != kids[0] && now[1] != kids[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("children %v, want two without %d", now, kids[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 20 {
		if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
			t.Fatalf("GET after replace: %d %v", code, err)
		}
	}
}

func TestStartServersPerMPM(t *testing.T) {
	// Each child's GOMAXPROCS: 1 for prefork; the Go default (unset) for
	// one threaded child alone; a threaded child with siblings its share
	// of the cores.
	share := strconv.Itoa((runtime.GOMAXPROCS(0) + 1) / 2)
	for _, tt := range []struct {
		name, mpm, letters string
		children           int
		procs              string
	}{
		{"prefork", "mpm: {name: prefork, start_servers: 3, min_spare_servers: 1, max_spare_servers: 5}\n", "___", 3, "1"},
		{"worker", "mpm: {name: worker, start_servers: 2, threads_per_child: 4, min_spare_threads: 2, max_spare_threads: 8, server_limit: 4, max_request_workers: 16}\n", "________", 2, share},
		{"event", "mpm: {name: event, start_servers: 1, threads_per_child: 3, min_spare_threads: 1, max_spare_threads: 6, server_limit: 2, max_request_workers: 6}\n", "___", 1, ""},
		{"event-siblings", "mpm: {name: event, start_servers: 2, threads_per_child: 3, min_spare_threads: 1, max_spare_threads: 6, server_limit: 2, max_request_workers: 6}\n", "______", 2, share},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := e2e.StartMPM(t, tt.mpm)
			s.WaitChildren(t, tt.children, 5*time.Second)
			st := s.Status(t)
			model, _, _ := strings.Cut(tt.name, "-")
			if st["mpm"] != model || !strings.HasPrefix(st["scoreboard"].(string), tt.letters) {
				t.Fatalf("status: mpm %v scoreboard %q, want %s %q...", st["mpm"], st["scoreboard"], model, tt.letters)
			}
			if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
				t.Fatalf("GET: %d %v", code, err)
			}
			// No child takes turns through a lock by default: a prefork
			// child waits in an epoll set of its own (EPOLLEXCLUSIVE)
			// beside its runtime's; a threaded one uses the runtime's.
			for _, k := range e2e.Workers(s.PID()) {
				if holdsLockFile(k) {
					t.Fatalf("child %d holds an accept lock file", k)
				}
				if got, want := epollSets(k), map[bool]int{true: 2, false: 1}[tt.name == "prefork"]; got != want {
					t.Fatalf("child %d has %d epoll sets, want %d", k, got, want)
				}
				if got := e2e.Env(t, k, "GOMAXPROCS"); got != tt.procs {
					t.Fatalf("child %d: GOMAXPROCS=%q, want %q", k, got, tt.procs)
				}
			}
		})
	}
}

// TestChildGOMAXPROCSFromEnvironment: a GOMAXPROCS in the master's
// environment reaches every child unchanged, prefork too.
func TestChildGOMAXPROCSFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	addr := e2e.FreePort(t)
	e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
	os.MkdirAll(dir+"/logs", 0o755)
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.MPMConfig(addr, "mpm: {name: prefork, start_servers: 2, min_spare_servers: 1, max_spare_servers: 3}\n"))
	p := e2e.Start(t, dir, []string{"GOMAXPROCS=3"}, "-f", conf)
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	kids := e2e.Workers(p.PID())
	if len(kids) == 0 {
		t.Fatal("no children")
	}
	for _, k := range kids {
		if got := e2e.Env(t, k, "GOMAXPROCS"); got != "3" {
			t.Fatalf("child %d: GOMAXPROCS=%q, want the master's 3", k, got)
		}
	}
}

// epollSets counts pid's epoll instances.
func epollSets(pid int) int {
	n := 0
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); target == "anon_inode:[eventpoll]" {
			n++
		}
	}
	return n
}

// holdsLockFile reports whether pid has an accept mutex lock file open.
func holdsLockFile(pid int) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if strings.Contains(target, "/accept-1.lock.") {
			return true
		}
	}
	return false
}

// TestWorkerGrowsAndShrinks is Apache's maintenance end to end: held
// connections use up idle slots, the master spawns children until the
// minimum of spare slots is back, and retires them one a tick once the
// connections close.
func TestWorkerGrowsAndShrinks(t *testing.T) {
	s := e2e.StartMPM(t, "mpm: {name: worker, start_servers: 1, threads_per_child: 2, min_spare_threads: 2, max_spare_threads: 4, server_limit: 5, max_request_workers: 10}\n")
	s.WaitChildren(t, 1, 5*time.Second)
	conns := e2e.HoldConnections(t, s.Addr, 5)
	// 5 held slots + at least 2 idle = 4 children of 2 threads.
	s.WaitChildren(t, 4, 10*time.Second)
	for _, c := range conns {
		c.Close()
	}
	// 8 idle slots > 4: one child retired per tick, down to 2 (4 idle).
	s.WaitChildren(t, 2, 10*time.Second)
	if s.Log.Count("MPM retires a child") < 2 {
		t.Fatalf("no retirements logged:\n%s", s.Log)
	}
}

func TestPreforkGrowsAndShrinks(t *testing.T) {
	s := e2e.StartMPM(t, "mpm: {name: prefork, start_servers: 1, min_spare_servers: 1, max_spare_servers: 2, server_limit: 6, max_request_workers: 6}\n")
	s.WaitChildren(t, 1, 5*time.Second)
	conns := e2e.HoldConnections(t, s.Addr, 3)
	s.WaitChildren(t, 4, 10*time.Second)
	for _, c := range conns {
		c.Close()
	}
	s.WaitChildren(t, 2, 10*time.Second)
}

func TestMaxRequestWorkersIsLoggedEachTime(t *testing.T) {
	// The held connections are kept alive for 30 s: with the default 5 s
	// a loaded machine's ticks can come too late for three of them.
	s := e2e.StartMPM(t, "timeouts: {idle: 30s}\nmpm: {name: worker, start_servers: 1, threads_per_child: 2, min_spare_threads: 2, max_spare_threads: 4, server_limit: 2, max_request_workers: 4}\n")
	conns := e2e.HoldConnections(t, s.Addr, 4)
	s.Log.Wait(t, "reached max_request_workers", 3, 20*time.Second)
	for _, c := range conns {
		c.Close()
	}
	// The MPM said so in its response too (protocol field reached_max), and
	// the status page counts it, as PHP-FPM's "max children reached".
	var st struct {
		Max uint64 `json:"max_children_reached"`
	}
	for deadline := time.Now().Add(5 * time.Second); st.Max < 3; time.Sleep(100 * time.Millisecond) {
		_, js, _ := e2e.Get(s.URL("/server-status?json"))
		json.Unmarshal([]byte(js), &st)
		if time.Now().After(deadline) {
			t.Fatalf("max_children_reached %d, want at least 3:\n%s", st.Max, js)
		}
	}
}

// TestRecyclingLosesNothing retires children every few connections under a
// continuous load: each child's replacement starts before it drains.
func TestRecyclingLosesNothing(t *testing.T) {
	for _, tt := range []struct{ name, mpm string }{
		{"connections", "mpm: {name: worker, start_servers: 2, threads_per_child: 4, min_spare_threads: 2, max_spare_threads: 16, max_connections_per_child: 40, max_connections_per_child_jitter: 10}\n"},
		{"memory", "mpm: {name: prefork, start_servers: 2, min_spare_servers: 1, max_spare_servers: 4, max_memory_per_child: 1M}\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := e2e.StartMPM(t, tt.mpm)
			stop := make(chan struct{})
			res := make(chan e2e.LoadResult)
			go func() { res <- e2e.Load(s.Addr, "/hello.txt", 4, false, 2000, stop) }()
			var r e2e.LoadResult
			select {
			case r = <-res:
			case <-time.After(60 * time.Second):
				close(stop)
				r = <-res
			}
			t.Logf("load: %s", r)
			if r.Errors != 0 || r.Non2xx != 0 {
				t.Fatalf("recycling lost requests: %s", r)
			}
			switch tt.name {
			case "connections":
				// Each child stops at its own limit, 40 plus a jitter of up
				// to 10. Here a child lives for less time than its
				// replacement takes to start (race detector), so when no
				// sibling accepts, a child serves on past its limit until
				// the replacement is ready rather than leave nobody
				// accepting: fewer recycles than 2000/50.
				recs := s.Log.Records("child reached max_connections_per_child; asking to retire; serving until the replacement is ready")
				limits := map[float64]bool{}
				for _, r := range recs {
					n, _ := r["connections"].(float64)
					if n < 40 || n > 50 {
						t.Fatalf("a child retired at %v connections, want 40-50\n%s", n, s.Log)
					}
					limits[n] = true
				}
				if len(recs) < 5 || len(limits) < 2 {
					t.Fatalf("%d recycles at limits %v for 2000 connections at 40-50 each\n%s", len(recs), limits, s.Log)
				}
				t.Logf("%d recycles, %d different limits", len(recs), len(limits))
			case "memory":
				s.Log.Wait(t, `"reason":"memory"`, 2, 10*time.Second)
			}
		})
	}
}

// TestMPMSwitchOnGracefulRestart changes the process model under load, which
// Apache refuses.
func TestMPMSwitchOnGracefulRestart(t *testing.T) {
	s := e2e.StartMPM(t, "mpm: {name: prefork, start_servers: 2, min_spare_servers: 1, max_spare_servers: 4}\n")
	stop := make(chan struct{})
	res := make(chan e2e.LoadResult)
	go func() { res <- e2e.Load(s.Addr, "/hello.txt", 3, true, 1000000, stop) }()
	for i, m := range []string{
		"mpm: {name: worker, start_servers: 2, threads_per_child: 4, min_spare_threads: 2, max_spare_threads: 16}\n",
		"mpm: {name: event, start_servers: 1, threads_per_child: 4, min_spare_threads: 1, max_spare_threads: 16}\n",
		"mpm: {name: prefork, start_servers: 2, min_spare_servers: 1, max_spare_servers: 4}\n",
	} {
		time.Sleep(300 * time.Millisecond)
		os.WriteFile(s.Conf, []byte(e2e.MPMConfig(s.Addr, m)), 0o644)
		if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
			t.Fatalf("switch %d: %s", i, errOut)
		}
		s.Log.Wait(t, `"generation finished"`, i+1, 15*time.Second)
	}
	close(stop)
	r := <-res
	t.Logf("load: %s", r)
	if r.Errors != 0 || r.Non2xx != 0 || r.Requests < 100 {
		t.Fatalf("MPM switches lost requests: %s", r)
	}
	if st := s.Status(t); st["mpm"] != "prefork" {
		t.Fatalf("mpm after switches: %v", st["mpm"])
	}
}

func TestBadMPMSettingIsAConfigError(t *testing.T) {
	dir := t.TempDir()
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.MPMConfig("127.0.0.1:8080", "mpm: {name: worker, threads_per_chlid: 4}\n"))
	code, _, errOut := e2e.Run(t, dir, nil, "-f", conf, "-t")
	if code != 1 || !strings.Contains(errOut, "threads_per_chlid") {
		t.Fatalf("-t: %d %s", code, errOut)
	}
	conf = e2e.WriteFile(t, dir, "phased.yaml", e2e.MPMConfig("127.0.0.1:8080", "mpm: {name: turbo}\n"))
	code, _, errOut = e2e.Run(t, dir, nil, "-f", conf, "-t")
	if code != 1 || !strings.Contains(errOut, `mpm.name: "turbo"`) {
		t.Fatalf("-t: %d %s", code, errOut)
	}
}

// TestCrashNoticeNamesLastRequest: a child killed by a signal is logged at
// notice with the request line it served last, from the scoreboard.
func TestCrashNoticeNamesLastRequest(t *testing.T) {
	s := e2e.StartMPM(t, "mpm: {name: prefork, start_servers: 1, min_spare_servers: 1, max_spare_servers: 2}\n")
	if code, _, err := e2e.Get(s.URL("/hello.txt?before-the-crash")); code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	kids := e2e.Workers(s.PID())
	for _, k := range kids {
		e2e.Kill(t, k, syscall.SIGKILL)
	}
	s.Log.Wait(t, "child exited unexpectedly", len(kids), 5*time.Second)
	found := false
	for _, r := range s.Log.Records("child exited unexpectedly; replacing it") {
		if r["level"] == "NOTICE" && r["last_request"] == "GET /hello.txt?before-the-crash HTTP/1.1" &&
			strings.Contains(fmt.Sprint(r["status"]), "killed") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no notice with the last request line:\n%s", s.Log)
	}
}

// TestCrashLoopBackOffIsVisible: children that die at once are restarted
// with growing delays, and `phased status` says so.
func TestCrashLoopBackOffIsVisible(t *testing.T) {
	s := e2e.StartServer(t, "hooks:\n  - {name: open-pool, phase: child-init, exec: [./failing.sh]}\n", e2e.FailingScript(t))
	e2e.WriteFile(t, s.Dir, "fail", "")
	for _, k := range e2e.Workers(s.PID()) {
		e2e.Kill(t, k, syscall.SIGKILL)
	}
	s.Log.Wait(t, "backing off", 3, 15*time.Second)
	code, out, _ := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "status")
	if code != 0 || !strings.Contains(out, "children keep dying") || !strings.Contains(out, "child-init failed") {
		t.Fatalf("status during a crash loop:\n%s", out)
	}
	// Exponential: each wait at least the one before, and the third more
	// than the first (two children die per round, so waits may repeat).
	var waits []time.Duration
	for _, r := range s.Log.Records("children keep dying early; backing off") {
		d, err := time.ParseDuration(fmt.Sprint(r["retry_in"]))
		if err != nil {
			t.Fatalf("retry_in %v: %v", r["retry_in"], err)
		}
		waits = append(waits, d)
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] < waits[i-1] {
			t.Fatalf("back-off shrank: %v", waits)
		}
	}
	if len(waits) < 3 || waits[2] <= waits[0] {
		t.Fatalf("back-off does not grow: %v", waits)
	}
}

func uidOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Uid:") {
			return strings.Fields(line)[1]
		}
	}
	return ""
}

// TestChildrenRunAsUser: with user: nobody the master stays root and the
// children drop to nobody; a document root nobody cannot read is a start
// error naming it, not a crash loop.
func TestChildrenRunAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run children as nobody")
	}
	for _, mpm := range []string{
		"mpm: {name: worker, start_servers: 2}\n",
		"mpm: {name: prefork, start_servers: 3, min_spare_servers: 1, max_spare_servers: 5}\n", // each child opens the accept mutex's lock file as nobody
		"mpm: {name: event, start_servers: 2}\n",
	} {
		t.Run(strings.TrimSuffix(strings.Fields(mpm)[2], ","), func(t *testing.T) {
			dir := e2e.OpenDir(t)
			addr := e2e.FreePort(t)
			e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
			os.Chmod(dir+"/public", 0o755)
			os.MkdirAll(dir+"/logs", 0o755)
			conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, "user: nobody\n"+mpm))
			p := e2e.Start(t, dir, nil, "-f", conf)
			p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
			kids := e2e.Workers(p.PID())
			if uidOf(p.PID()) != "0" || len(kids) == 0 {
				t.Fatalf("master uid %s, %d children", uidOf(p.PID()), len(kids))
			}
			for _, k := range append(kids, e2e.Plugins(p.PID())...) {
				if u := uidOf(k); u != "65534" {
					t.Fatalf("child or plugin %d runs as uid %s, want 65534 (nobody)", k, u)
				}
			}
			if len(e2e.Plugins(p.PID())) != 1 {
				t.Fatal("no MPM plugin process")
			}
			for range 10 {
				if code, body, err := e2e.Get("http://" + addr + "/hello.txt"); code != 200 || body != "hello\n" {
					t.Fatalf("GET as nobody: %d %q %v", code, body, err)
				}
			}
			if p.Log.Count("child exited unexpectedly") != 0 {
				t.Fatalf("children died as nobody:\n%s", p.Log)
			}
			p.Signal(t, syscall.SIGTERM)
			p.WaitExit(t, 10*time.Second)

			// What nobody cannot read is a start error, not a crash loop.
			os.Chmod(dir+"/public", 0o700)
			code, _, errOut := e2e.Run(t, dir, nil, "-f", conf)
			if code != 1 || !strings.Contains(errOut, "document_root") || !strings.Contains(errOut, "user nobody (uid 65534) cannot") {
				t.Fatalf("unreadable document root: exit %d %s", code, errOut)
			}
			os.Chmod(dir+"/public", 0o755)
			e2e.WriteFile(t, dir, "app.sh", "#!/bin/sh\nexit 0\n")
			os.Chmod(dir+"/app.sh", 0o700)
			conf = e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, "user: nobody\n"+mpm+"app: {command: [./app.sh]}\n"))
			code, _, errOut = e2e.Run(t, dir, nil, "-f", conf)
			if code != 1 || !strings.Contains(errOut, "app.command") || !strings.Contains(errOut, "user nobody (uid 65534) cannot") {
				t.Fatalf("app command nobody cannot run: exit %d %s", code, errOut)
			}
		})
	}
}

// TestEveryMPMRecyclesAndRecovers runs each process model through what the
// worker tests cover elsewhere: children recycled by connection count and by
// memory all along a continuous load, with nothing lost, and a child killed
// with SIGKILL logged at notice and replaced.
func TestEveryMPMRecyclesAndRecovers(t *testing.T) {
	for _, tt := range []struct{ name, mpm string }{
		{"prefork", "mpm: {name: prefork, start_servers: 3, min_spare_servers: 1, max_spare_servers: 6, max_connections_per_child: 30, max_connections_per_child_jitter: 0, max_memory_per_child: 1M}\n"},
		{"worker", "mpm: {name: worker, start_servers: 2, threads_per_child: 4, min_spare_threads: 2, max_spare_threads: 16, max_connections_per_child: 30, max_connections_per_child_jitter: 0, max_memory_per_child: 1M}\n"},
		{"event", "mpm: {name: event, start_servers: 2, threads_per_child: 4, min_spare_threads: 2, max_spare_threads: 16, max_connections_per_child: 30, max_connections_per_child_jitter: 0, max_memory_per_child: 1M}\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := e2e.StartMPM(t, tt.mpm)
			// The load runs at least 2.5 s (the memory check runs on the
			// master's 1 s tick) and until both kinds of recycling have
			// happened under it, at most 10 s: a memory retire aimed at a
			// child that asked to retire for its connection count in the
			// same tick is rightly dropped, so one tick may show none.
			conns := func() int { return s.Log.Count("reached max_connections_per_child") }
			memory := func() int { return s.Log.Count(`"reason":"memory"`) }
			stop := make(chan struct{})
			go func() {
				defer close(stop)
				start := time.Now()
				for time.Since(start) < 10*time.Second {
					if time.Since(start) >= 2500*time.Millisecond && conns() >= 3 && memory() >= 1 {
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}()
			r := e2e.Load(s.Addr, "/hello.txt", 3, false, 1000000, stop)
			t.Logf("load: %s", r)
			if r.Errors != 0 || r.Non2xx != 0 || r.Requests < 300 {
				t.Fatalf("recycling lost requests: %s\n%s", r, s.Log)
			}
			if conns, memory := conns(), memory(); conns < 3 || memory < 1 {
				t.Fatalf("%d recycles by connections, %d by memory\n%s", conns, memory, s.Log)
			}
			// A ready child killed between two maintenance ticks: children
			// are retired for memory on every tick, and a retiring child's
			// death is expected, not a crash. So the kill follows a tick's
			// retire at once; should a tick still get there first (a loaded
			// machine), the next tick is tried.
			const retires = `"msg":"MPM retires a child"`
			crashed := 0
			for attempt := 0; attempt < 3 && crashed == 0; attempt++ {
				s.Log.Wait(t, retires, s.Log.Count(retires)+1, 5*time.Second)
				victim := 0
				for _, c := range s.Status(t)["children"].([]any) {
					if c := c.(map[string]any); c["state"] == "ready" {
						victim = int(c["pid"].(float64))
					}
				}
				if victim == 0 {
					continue
				}
				e2e.Kill(t, victim, syscall.SIGKILL)
				for deadline := time.Now().Add(5 * time.Second); crashed == 0; time.Sleep(20 * time.Millisecond) {
					if exitedAs(s.Log.Records("child exited unexpectedly; replacing it"), victim) {
						crashed = victim
					} else if exitedAs(s.Log.Records("child exited"), victim) {
						t.Logf("child %d was retired by a tick before the kill landed; again", victim)
						break
					} else if time.Now().After(deadline) {
						t.Fatalf("no exit record for the killed child %d\n%s", victim, s.Log)
					}
				}
			}
			if crashed == 0 {
				t.Fatalf("three kills each raced a retire\n%s", s.Log)
			}
			for _, rec := range s.Log.Records("child exited unexpectedly; replacing it") {
				if rec["level"] != "NOTICE" || rec["pid"] != float64(crashed) || !strings.Contains(fmt.Sprint(rec["status"]), "killed") {
					t.Fatalf("crash record %v", rec)
				}
			}
			for range 20 {
				if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
					t.Fatalf("GET after the kill: %d %v", code, err)
				}
			}
		})
	}
}

// TestEventGrowsOnSlowRequestsNotIdleConnections is the event model's point:
// idle keep-alive connections hold no slot, so several of them make no
// child spawn, until a child holds as many connections as it may
// (worker_connections, 6 here): then it accepts nothing and its idle
// workers are no spare capacity, so another child starts (Apache's
// not_accepting). Slow requests (clients that do not read a large response)
// hold a slot each, and the MPM grows until min_spare_threads are idle
// again, then shrinks when they end.
func TestEventGrowsOnSlowRequestsNotIdleConnections(t *testing.T) {
	s := e2e.StartMPM(t, "mpm: {name: event, start_servers: 1, threads_per_child: 2, min_spare_threads: 1, max_spare_threads: 4, server_limit: 5, max_request_workers: 10}\n"+
		"worker_connections: 6\n")
	big := make([]byte, 64<<20)
	if err := os.WriteFile(s.Dir+"/public/big.bin", big, 0o644); err != nil {
		t.Fatal(err)
	}
	s.WaitChildren(t, 1, 5*time.Second)
	// Idle keep-alive connections, one request each, one after the other.
	dial := func() net.Conn {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	keepAlive := func(n int) []net.Conn {
		var out []net.Conn
		for range n {
			c := dial()
			br := bufio.NewReader(c)
			fmt.Fprintf(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, err := http.ReadResponse(br, nil); err != nil {
				t.Fatal(err)
			} else {
				resp.Body.Close()
			}
			out = append(out, c)
		}
		return out
	}
	// Five: parked, no slot held, nothing to spawn.
	idle := keepAlive(5)
	time.Sleep(2500 * time.Millisecond) // two maintenance ticks
	if n := len(e2e.Workers(s.PID())); n != 1 {
		t.Fatalf("%d children with five idle keep-alive connections, want 1\n%s", n, s.Log.String())
	}
	// The sixth fills the child (worker_connections): a second child starts.
	idle = append(idle, keepAlive(1)...)
	s.WaitChildren(t, 2, 5*time.Second)
	for _, c := range idle {
		c.Close()
	}
	// Five slow requests on two children of two threads: four busy slots
	// and a fifth request waiting: at least one more child (one, unless a
	// tick comes while the closed connections are still being noticed).
	var slow []net.Conn
	for range 5 {
		c := dial()
		fmt.Fprintf(c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
		slow = append(slow, c)
	}
	for deadline := time.Now().Add(10 * time.Second); len(e2e.Workers(s.PID())) < 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			_, st, _ := e2e.Get(s.URL("/server-status?auto"))
			t.Fatalf("%d children with five slow requests, want 3 or more\n%s\n%s", len(e2e.Workers(s.PID())), st, s.Log)
		}
	}
	for _, c := range slow {
		c.Close()
	}
	// Idle slots above max_spare_threads 4: children retire, one a tick,
	// down to two.
	s.WaitChildren(t, 2, 10*time.Second)
}

// exitedAs reports whether one of recs is about pid.
func exitedAs(recs []map[string]any, pid int) bool {
	for _, rec := range recs {
		if rec["pid"] == float64(pid) {
			return true
		}
	}
	return false
}
