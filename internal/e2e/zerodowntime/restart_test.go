package zerodowntime

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

func TestGracefulRestartUnderLoadLosesNothing(t *testing.T) {
	for _, ka := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepalive=%v", ka), func(t *testing.T) {
			s := e2e.StartServer(t, "")
			stop := make(chan struct{})
			res := make(chan e2e.LoadResult)
			go func() { res <- e2e.Load(s.Addr, "/hello.txt", 4, ka, 200000, stop) }()
			time.Sleep(300 * time.Millisecond)
			// One of each: -k graceful, HUP, USR1.
			for i := range 3 {
				if i == 1 {
					s.Signal(t, syscall.SIGHUP)
				} else if i == 2 {
					s.Signal(t, syscall.SIGUSR1)
				} else {
					code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful")
					if code != 0 {
						t.Fatalf("-k graceful: exit %d %s %s", code, out, errOut)
					}
				}
				s.Log.Wait(t, "graceful restart done", i+1, 15*time.Second)
				time.Sleep(300 * time.Millisecond)
			}
			// Let the last old generation finish draining under load.
			s.Log.Wait(t, `"generation finished"`, 3, 15*time.Second)
			close(stop)
			r := <-res
			t.Logf("load: %s", r)
			if r.Errors != 0 || r.Non2xx != 0 || r.Requests < 100 {
				t.Fatalf("load during graceful restarts: %s\nlog:\n%s", r, s.Log)
			}
			kids := e2e.Workers(s.PID())
			if len(kids) != 2 {
				t.Fatalf("%d children after restarts, want 2", len(kids))
			}
		})
	}
}

func TestBadConfigOnGracefulKeepsServing(t *testing.T) {
	s := e2e.StartServer(t, "")
	kids := e2e.Workers(s.PID())
	os.WriteFile(s.Conf, []byte(e2e.Config(s.Addr, "bogus_key: 1\n")), 0o644)
	// The client finds the control socket in the broken file and lets the
	// master fail the pass...
	code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful")
	if code != 1 || !strings.Contains(errOut, "bogus_key") {
		t.Fatalf("-k graceful with a bad config: exit %d %q", code, errOut)
	}
	// ...and pointed at the socket directly, the master re-reads its own
	// file, fails the pass and keeps the old generation.
	code, _, errOut = e2e.Run(t, s.Dir, nil, "-c", "pid_file="+filepath.Join(s.Dir, "run/phased.pid"), "-k", "graceful")
	if code != 1 || !strings.Contains(errOut, "bogus_key") || !strings.Contains(errOut, "old generation keeps serving") {
		t.Fatalf("-k graceful with a bad config: exit %d %q", code, errOut)
	}
	s.Signal(t, syscall.SIGHUP)
	s.Log.Wait(t, "graceful restart failed", 1, 5*time.Second)
	if now := e2e.Workers(s.PID()); fmt.Sprint(now) != fmt.Sprint(kids) {
		t.Fatalf("children changed from %v to %v", kids, now)
	}
	if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
		t.Fatalf("not serving after failed restart: %d %v", code, err)
	}
}

// TestGracefulStop: WINCH and -k graceful-stop stop accepting but finish
// what is in flight: a request whose headers were half sent when the stop
// began is answered when they are complete, then the master exits 0 and
// leaves no child. (A hard stop would cut it.)
func TestGracefulStop(t *testing.T) {
	for _, tt := range []struct {
		how, extra string
		graceful   bool // the generation drains gracefully, and the request in flight is answered
	}{
		{"SIGWINCH", "", true},
		{"-k graceful-stop", "", true},
		// sigterm: graceful-stop makes SIGTERM, the stop containers and
		// Kubernetes send, a graceful stop; without it SIGTERM is Apache's
		// stop now.
		{"SIGTERM", "sigterm: graceful-stop\n", true},
		{"SIGTERM", "", false},
	} {
		t.Run(tt.how+"/"+strings.TrimSpace(tt.extra), func(t *testing.T) {
			s := e2e.StartServer(t, tt.extra)
			kids := e2e.Children(s.PID())
			c, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
			time.Sleep(100 * time.Millisecond)
			stopped := make(chan int, 1)
			switch tt.how {
			case "SIGWINCH":
				s.Signal(t, syscall.SIGWINCH)
			case "SIGTERM":
				s.Signal(t, syscall.SIGTERM)
			default:
				go func() {
					code, _, _ := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful-stop")
					stopped <- code
				}()
			}
			s.Log.Wait(t, "generation draining", 1, 5*time.Second)
			time.Sleep(300 * time.Millisecond)
			fmt.Fprintf(c, "\r\n") // the in-flight request, completed
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if tt.graceful && (err != nil || resp.StatusCode != 200 || !resp.Close) {
				t.Fatalf("in-flight request during a graceful stop: %v %v", resp, err)
			}
			if code := s.WaitExit(t, 10*time.Second); code != 0 {
				t.Fatalf("master exit %d", code)
			}
			if tt.how == "-k graceful-stop" {
				if code := <-stopped; code != 0 {
					t.Fatalf("-k graceful-stop exit %d", code)
				}
			}
			if want := map[bool]string{true: `"graceful":true`, false: `"graceful":false`}[tt.graceful]; s.Log.Count(want) == 0 {
				t.Fatalf("the generation did not drain with %s:\n%s", want, s.Log)
			}
			e2e.WaitGone(t, kids, 5*time.Second)
		})
	}
}

// TestFailedGracefulIsLoggedAsSIGHUP: a graceful restart that fails, asked
// for with -k graceful or with SIGHUP, leaves the same error record in the
// master's error log, whether the new configuration file is broken or a
// post-config hook fails; the old generation serves on.
func TestFailedGracefulIsLoggedAsSIGHUP(t *testing.T) {
	const msg = "graceful restart failed; the old generation keeps serving"
	for _, tt := range []struct {
		name, extra, want string
		setup             func(dir string)
		breakIt           func(t *testing.T, s *e2e.Server)
	}{
		{"bad config file", "", "bogus_key", nil, func(t *testing.T, s *e2e.Server) {
			os.WriteFile(s.Conf, []byte(e2e.Config(s.Addr, "bogus_key: 1\n")), 0o644)
		}},
		{"failing post-config hook", "hooks:\n  - {name: migrate, phase: post-config, exec: [./failing.sh]}\n",
			`hook \"migrate\" (post-config): exit status 4`, e2e.FailingScript(t), func(t *testing.T, s *e2e.Server) {
				e2e.WriteFile(t, s.Dir, "fail", "")
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var setup []func(string)
			if tt.setup != nil {
				setup = append(setup, tt.setup)
			}
			s := e2e.StartServer(t, tt.extra, setup...)
			tt.breakIt(t, s)
			code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful")
			if code != 1 {
				t.Fatalf("-k graceful: exit %d %q", code, errOut)
			}
			s.Log.Wait(t, msg, 1, 10*time.Second)
			s.Signal(t, syscall.SIGHUP)
			s.Log.Wait(t, msg, 2, 10*time.Second)
			recs := s.Log.Records(msg)
			if len(recs) != 2 || recs[0]["level"] != "ERROR" || recs[0]["err"] != recs[1]["err"] ||
				!strings.Contains(fmt.Sprint(recs[0]["err"]), strings.ReplaceAll(tt.want, `\"`, `"`)) {
				t.Fatalf("-k graceful's and SIGHUP's records differ or do not say %s:\n%v\n%v", tt.want, recs[0], recs[len(recs)-1])
			}
			if !strings.Contains(errOut, fmt.Sprint(recs[0]["err"])) {
				t.Errorf("-k graceful said %q, not the logged %q", errOut, recs[0]["err"])
			}
			if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
				t.Fatalf("not serving after the failed restarts: %d %v", code, err)
			}
		})
	}
}
