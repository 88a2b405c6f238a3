package zerodowntime

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// underLoad runs clients against s while op runs, then checks that nothing
// was lost.
func underLoad(t *testing.T, s *e2e.Server, keepAlive bool, op func()) e2e.LoadResult {
	t.Helper()
	stop := make(chan struct{})
	res := make(chan e2e.LoadResult)
	go func() { res <- e2e.Load(s.Addr, "/hello.txt", 4, keepAlive, 1000000, stop) }()
	time.Sleep(300 * time.Millisecond)
	op()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	r := <-res
	t.Logf("load: %s", r)
	if r.Errors != 0 || r.Non2xx != 0 || r.Requests < 100 {
		t.Fatalf("lost requests: %s\nlog:\n%s", r, s.Log)
	}
	return r
}

// TestRecycleIsARollingRestart: `phased -k recycle` replaces every child of
// the current generation, one at a time, each replacement ready before its
// predecessor drains; no configuration is read (a broken file does not
// matter) and nothing is lost.
func TestRecycleIsARollingRestart(t *testing.T) {
	for _, ka := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepalive=%v", ka), func(t *testing.T) {
			s := e2e.StartServer(t, "")
			old := e2e.Workers(s.PID())
			good, _ := os.ReadFile(s.Conf)
			underLoad(t, s, ka, func() {
				os.WriteFile(s.Conf, []byte("this: is not\n  valid: [yaml"), 0o644)
				defer os.WriteFile(s.Conf, good, 0o644)
				code, out, errOut := e2e.Run(t, s.Dir, nil, "-c", "pid_file="+s.Dir+"/run/phased.pid", "-k", "recycle")
				if code != 0 || !strings.Contains(out, "2 children of generation 1 recycled") {
					t.Fatalf("-k recycle: %d %s %s", code, out, errOut)
				}
				e2e.WaitGone(t, old, 10*time.Second)
			})
			now := e2e.Workers(s.PID())
			if len(now) != 2 || slices.Contains(now, old[0]) || slices.Contains(now, old[1]) {
				t.Fatalf("children %v after recycling %v", now, old)
			}
			if st := s.Status(t); st["generation"].(float64) != 1 {
				t.Fatalf("generation changed: %v", st["generation"])
			}
			// One at a time: each child's replacement is ready (and the
			// child told to drain) before the next child's replacement starts.
			var steps []string
			for _, line := range strings.Split(s.Log.String(), "\n") {
				switch {
				case strings.Contains(line, `"recycling a child"`):
					steps = append(steps, "start")
				case strings.Contains(line, `"replacement ready; the retiring child drains"`):
					steps = append(steps, "handed")
				}
			}
			if !slices.Equal(steps, []string{"start", "handed", "start", "handed"}) {
				t.Fatalf("recycle steps %v, want one child at a time\n%s", steps, s.Log)
			}
		})
	}
}

// TestSignalOneChild: SIGTERM (or SIGUSR1) sent by hand to one child
// retires it gracefully, its replacement starts and is ready before the
// child stops accepting, and the clients see nothing. The
// server has one child, so a child that stopped accepting first would leave
// nobody accepting until its replacement came up. min_spare_threads is 1 so
// that the load (4 clients) never leaves the child short of idle threads:
// a child spawned by maintenance would be a second child the test did not
// ask for.
func TestSignalOneChild(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGUSR1} {
		for _, ka := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/keepalive=%v", sig, ka), func(t *testing.T) {
				s := e2e.StartServer(t, "mpm: {name: worker, start_servers: 1, threads_per_child: 25, min_spare_threads: 1, max_spare_threads: 75}\n")
				kids := e2e.Workers(s.PID())
				if len(kids) != 1 {
					t.Fatalf("children %v, want one", kids)
				}
				r := underLoad(t, s, ka, func() {
					e2e.Kill(t, kids[0], sig)
					s.Log.Wait(t, "replacement ready; the retiring child drains", 1, 10*time.Second)
					e2e.WaitGone(t, kids[:1], 10*time.Second)
				})
				asked := s.Log.Records("child asked to retire; starting its replacement first")
				handed := s.Log.Records("replacement ready; the retiring child drains")
				if len(asked) != 1 || len(handed) != 1 || asked[0]["pid"] != float64(kids[0]) ||
					handed[0]["pid"] != float64(kids[0]) || handed[0]["replacement"] != asked[0]["replacement"] {
					t.Fatalf("hand-over records: asked %v, handed %v\n%s", asked, handed, s.Log)
				}
				now := e2e.Workers(s.PID())
				if len(now) != 1 || now[0] != int(handed[0]["replacement"].(float64)) {
					t.Fatalf("children %v after retiring %d, want its replacement %v", now, kids[0], handed[0]["replacement"])
				}
				if s.Log.Count("child exited unexpectedly") != 0 {
					t.Fatal("a retirement by hand was logged as a crash")
				}
				t.Logf("slowest request across the hand-over: %s", r.MaxLatency)
			})
		}
	}
}

// TestGracefulRestartReopensLogs is what examples/logrotate relies on: after
// the files are renamed, a graceful restart writes to new files at the
// configured paths while the old generation finishes into the old ones.
func TestGracefulRestartReopensLogs(t *testing.T) {
	s := e2e.StartServer(t, "", func(dir string) {
		os.MkdirAll(dir+"/logs", 0o755)
	})
	// The master in start() logs to stderr; this one logs to a file too.
	conf := strings.Replace(e2e.Config(s.Addr, ""), "path: stderr", "path: logs/error.log", 1)
	os.WriteFile(s.Conf, []byte(conf), 0o644)
	if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("graceful: %s", errOut)
	}
	for i := range 3 {
		e2e.Get(s.URL(fmt.Sprintf("/hello.txt?before=%d", i)))
	}
	for _, f := range []string{"access.log", "error.log"} {
		if err := os.Rename(s.Dir+"/logs/"+f, s.Dir+"/logs/"+f+".1"); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("graceful: %s", errOut)
	}
	e2e.Get(s.URL("/hello.txt?after=1"))
	time.Sleep(400 * time.Millisecond) // the access log flushes every 200 ms
	access, _ := os.ReadFile(s.Dir + "/logs/access.log")
	rotated, _ := os.ReadFile(s.Dir + "/logs/access.log.1")
	errlog, _ := os.ReadFile(s.Dir + "/logs/error.log")
	if !strings.Contains(string(access), "after=1") || strings.Contains(string(access), "before=") {
		t.Fatalf("new access.log:\n%s", access)
	}
	if strings.Count(string(rotated), "before=") != 3 {
		t.Fatalf("rotated access.log.1:\n%s", rotated)
	}
	if !strings.Contains(string(errlog), "graceful restart done") {
		t.Fatalf("new error.log:\n%s", errlog)
	}
}

// TestBinaryUpgrade is nginx's and Unicorn's USR2 without their gaps: the
// new master serves before the old one stops accepting, the pid file and
// the control socket pass to it, and no request is lost.
func TestBinaryUpgrade(t *testing.T) {
	for _, how := range []string{"-k upgrade", "SIGUSR2"} {
		t.Run(how, func(t *testing.T) {
			s := e2e.StartServer(t, "")
			oldPID := s.PID()
			var newPID int
			t.Cleanup(func() {
				for _, p := range append(e2e.Descendants(newPID), newPID) {
					if p > 0 && e2e.Alive(p) {
						e2e.Kill(t, p, syscall.SIGKILL)
					}
				}
			})
			// An unfinished request keeps one old child draining after the
			// hand-over, for the new master to show.
			held, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			fmt.Fprintf(held, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
			underLoad(t, s, true, func() {
				if how == "SIGUSR2" {
					s.Signal(t, syscall.SIGUSR2)
				} else {
					code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "upgrade")
					if code != 0 || !strings.Contains(out, "serving") {
						t.Fatalf("-k upgrade: %d %s %s", code, out, errOut)
					}
					// The old master handed over its state: the new one
					// numbers its generation on, shows the old children
					// still draining, and its totals go on.
					st := s.Status(t)
					draining := 0
					for _, c := range st["children"].([]any) {
						c := c.(map[string]any)
						if strings.HasPrefix(c["state"].(string), fmt.Sprintf("draining (old master %d)", oldPID)) && c["generation"] == float64(1) {
							draining++
						}
					}
					if st["generation"] != float64(2) || st["pid"] == float64(oldPID) || draining != 1 {
						t.Fatalf("new master's status after the upgrade: %v", st)
					}
					_, metrics, _ := e2e.Get(s.URL("/metrics"))
					if !strings.Contains(metrics, `phased_children_events_total{event="spawned"} 4`+"\n") {
						t.Fatalf("spawned total does not go on from the old master's (2 + 2):\n%s", metrics)
					}
				}
				held.Close() // the old child may go now
				if c := s.WaitExit(t, 15*time.Second); c != 0 {
					t.Fatalf("old master exit %d", c)
				}
			})
			b, _ := os.ReadFile(s.Dir + "/run/phased.pid")
			fmt.Sscanf(string(b), "%d", &newPID)
			if newPID == 0 || newPID == oldPID || !e2e.Alive(newPID) {
				t.Fatalf("pid file holds %d (old %d)", newPID, oldPID)
			}
			if s.Log.Count("binary upgrade: took over from the old master") != 1 {
				t.Fatalf("new master did not log its take-over:\n%s", s.Log)
			}
			if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
				t.Fatalf("new master not serving: %d %v", code, err)
			}
			code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "stop")
			if code != 0 {
				t.Fatalf("-k stop of the new master: %d %s", code, errOut)
			}
			e2e.WaitGone(t, []int{newPID}, 10*time.Second)
		})
	}
}

// TestFailedUpgradeKeepsTheOldMaster: the new binary cannot start (here its
// configuration pass fails); the old master never stopped serving.
func TestFailedUpgradeKeepsTheOldMaster(t *testing.T) {
	s := e2e.StartServer(t, "hooks:\n  - {name: migrate, phase: post-config, exec: [./failing.sh]}\n", e2e.FailingScript(t))
	e2e.WriteFile(t, s.Dir, "fail", "")
	underLoad(t, s, false, func() {
		code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "upgrade")
		if code != 1 || !strings.Contains(errOut, "binary upgrade failed") || !strings.Contains(errOut, `hook "migrate"`) ||
			!strings.Contains(errOut, "old master keeps serving") {
			t.Fatalf("-k upgrade: %d %s", code, errOut)
		}
	})
	if s.Exited() {
		t.Fatal("old master exited")
	}
	st := s.Status(t)
	if int(st["pid"].(float64)) != s.PID() {
		t.Fatalf("status answered by pid %v, want %d", st["pid"], s.PID())
	}
}

// TestDrainIsBoundedAndCounted: an old generation gets
// graceful_shutdown_timeout to drain. A connection still open then (here a
// client that never finishes its request headers) is cut and counted in the
// log; a child that does not stop at all (SIGSTOP) gets SIGINT, then
// SIGKILL, and the master says so. Apache has no bound on a graceful
// restart.
func TestDrainIsBoundedAndCounted(t *testing.T) {
	s := e2e.StartServer(t, "graceful_shutdown_timeout: 1s\n")
	kids := e2e.Workers(s.PID())
	// A request whose headers never end holds a connection on some child
	// (read_header is 10s, past the bound).
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
	time.Sleep(100 * time.Millisecond)
	// Which child holds it: the one whose scoreboard slot reads it.
	var st struct {
		Workers []struct {
			PID   int    `json:"pid"`
			State string `json:"state"`
		} `json:"workers"`
	}
	_, js, _ := e2e.Get(s.URL("/server-status?json"))
	json.Unmarshal([]byte(js), &st)
	var holder int
	for _, w := range st.Workers {
		if w.State == "R" {
			holder = w.PID
		}
	}
	if holder == 0 || !slices.Contains(kids, holder) {
		t.Fatalf("no child is reading the unfinished request (children %v)\n%s", kids, s.Log)
	}
	var stuck int
	for _, k := range kids {
		if k != holder {
			stuck = k
		}
	}
	e2e.Kill(t, stuck, syscall.SIGSTOP)
	t.Cleanup(func() { e2e.Kill(t, stuck, syscall.SIGKILL) })

	began := time.Now()
	if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("graceful: %s", errOut)
	}
	e2e.WaitGone(t, []int{holder}, 5*time.Second)
	cut := s.Log.Records("drain timed out; connections cut")
	if len(cut) != 1 || cut[0]["connections_cut"] != float64(1) {
		t.Fatalf("cut records %v, want one with connections_cut=1\n%s", cut, s.Log)
	}
	if d := time.Since(began); d < time.Second {
		t.Fatalf("the holding child was gone after %s, before graceful_shutdown_timeout", d)
	}
	if _, m, _ := e2e.Get(s.URL("/metrics")); !strings.Contains(m, "phased_connections_cut_total 1\n") {
		t.Fatalf("the cut connection is not counted in /metrics:\n%s", m)
	}
	e2e.WaitGone(t, []int{stuck}, 12*time.Second)
	// The master's record of the SIGKILL may reach the log a moment after
	// the process is gone.
	for deadline := time.Now().Add(5 * time.Second); len(s.Log.Records("generation did not drain in time")) < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	late := s.Log.Records("generation did not drain in time")
	if len(late) != 2 || late[0]["signal"] != "interrupt" || late[1]["signal"] != "killed" {
		t.Fatalf("escalation records %v, want SIGINT then SIGKILL\n%s", late, s.Log)
	}
	if code, _, _ := e2e.Get(s.URL("/hello.txt")); code != 200 {
		t.Fatalf("the new generation does not serve: %d", code)
	}
}
