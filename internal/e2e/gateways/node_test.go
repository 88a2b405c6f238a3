package gateways

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// The tests of examples/app-node.

// hello is what the app's /api/hello says.
type hello struct {
	Hello      string `json:"hello"`
	PID        int    `json:"pid"`
	Slot       int    `json:"slot"`
	Generation int    `json:"generation"`
}

func apiHello(t *testing.T, s *e2e.Server) hello {
	t.Helper()
	a := get(t, s.URL("/api/hello?name=phased"))
	var h hello
	if a.code != 200 || json.Unmarshal([]byte(a.body), &h) != nil || h.Hello != "phased" {
		t.Fatalf("GET /api/hello: %d %q", a.code, a.body)
	}
	return h
}

// appStarts returns where the app servers said they listen.
func appStarts(s *e2e.Server) []string {
	var out []string
	for _, rec := range s.Log.Records("app server starting") {
		out = append(out, fmt.Sprint(rec["listen"]))
	}
	return out
}

// record waits for the log record msg about app appPID and returns it.
func record(t *testing.T, s *e2e.Server, msg string, appPID int) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		for _, rec := range s.Log.Records(msg) {
			if n, _ := rec["app_pid"].(float64); int(n) == appPID {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log record %q of app %d; log:\n%s", msg, appPID, s.Log)
		}
	}
}

// TestNodeExample runs examples/app-node/phased.yaml: each child's node
// app listens on the child's unix socket; a request in flight when its
// child retires (-k graceful) completes, and only then does the app get
// TERM, on which it closes its server and exits 0; a graceful restart
// under load loses no request; a stop leaves no node process.
func TestNodeExample(t *testing.T) {
	e2e.Program(t, "node", "nodejs")
	dir := example(t, "app-node")
	s := startExample(t, dir, "phased.yaml")
	expect(t, "GET /", get(t, s.URL("/")), 200, "<h1>phased + node</h1>", "generation 1")
	if h := apiHello(t, s); h.Generation != 1 {
		t.Errorf("/api/hello: %+v", h)
	}
	expect(t, "GET /nothing", get(t, s.URL("/nothing")), 404, "not found")
	gen1 := readyApps(t, s, 1, 2)
	for _, c := range gen1 {
		if argv0(c.AppPID) != "node" {
			t.Errorf("child %d's app %d runs %q", c.PID, c.AppPID, argv0(c.AppPID))
		}
	}
	for _, l := range appStarts(s) {
		if !strings.HasPrefix(l, "unix:") || !strings.HasSuffix(l, "/app.sock") {
			t.Errorf("an app listens on %q, want the child's unix socket", l)
		}
	}

	// A request in flight while its child retires: long enough to outlast
	// the graceful restart's start of two node apps on a loaded machine.
	type result struct {
		a   answer
		err error
	}
	slow := make(chan result, 1)
	go func() {
		a, err := fetch("GET", s.URL("/slow?ms=6000"), "", "")
		slow <- result{a, err}
	}()
	for deadline := time.Now().Add(5 * time.Second); s.Status(t)["busy_workers"].(float64) < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the slow request never reached a child: %v", s.Status(t))
		}
	}
	ctl(t, s, "-k", "graceful")
	select {
	case r := <-slow:
		t.Fatalf("the request in flight ended (%d %q %v) before its child began to drain", r.a.code, r.a.body, r.err)
	default:
	}
	r := <-slow
	if r.err != nil {
		t.Fatalf("the request in flight while its child retired: %v", r.err)
	}
	a := r.a
	servedBy := 0
	if a.code != 200 || !strings.HasPrefix(a.body, "slept 6000 ms in process ") {
		t.Fatalf("the request in flight while its child retired: %d %q", a.code, a.body)
	}
	fmt.Sscanf(strings.TrimPrefix(a.body, "slept 6000 ms in process "), "%d", &servedBy)
	fromGen1 := false
	for _, c := range gen1 {
		fromGen1 = fromGen1 || c.AppPID == servedBy
	}
	if !fromGen1 {
		t.Errorf("the slow request was served by %d, not by an app of generation 1 %v", servedBy, gen1)
	}
	var pids []int
	for _, c := range gen1 {
		pids = append(pids, c.AppPID)
	}
	e2e.WaitGone(t, pids, 35*time.Second)
	for _, c := range gen1 {
		s.Log.Wait(t, fmt.Sprintf("app %d: closed", c.AppPID), 1, 5*time.Second)
		rec := record(t, s, "app server stopped", c.AppPID)
		if rec["status"] != "exit status 0" || rec["signal"] != "terminated" {
			t.Errorf("app %d did not stop on TERM with exit status 0: %v", c.AppPID, rec)
		}
	}
	if h := apiHello(t, s); h.Generation != 2 {
		t.Errorf("after -k graceful /api/hello says %+v", h)
	}

	// A graceful restart under load.
	done := load(s, "/api/hello", 4, 20000)
	time.Sleep(100 * time.Millisecond)
	gen2 := readyApps(t, s, 2, 2)
	graceful(t, s, 2)
	res := done()
	t.Logf("graceful restart under load: %s", res)
	if res.Errors != 0 || res.Non2xx != 0 || res.Requests < 50 {
		t.Errorf("graceful restart under load: %s; want no error and no failed request", res)
	}
	for _, c := range gen2 {
		pids = append(pids, c.AppPID)
	}
	e2e.WaitGone(t, pids, 5*time.Second)
	stop(t, s, named(s.PID(), "node"))
}

// TestNodeExampleOnPort runs the example with app.listen: port, the
// variant its README shows: the app listens on the loopback port phased
// gives it in PORT.
func TestNodeExampleOnPort(t *testing.T) {
	e2e.Program(t, "node", "nodejs")
	dir := example(t, "app-node")
	s := startExample(t, dir, "phased.yaml", "app.listen=port")
	apiHello(t, s)
	starts := appStarts(s)
	if len(starts) < 2 {
		t.Fatalf("app starts: %v", starts)
	}
	for _, l := range starts {
		if !strings.HasPrefix(l, "tcp:127.0.0.1:") {
			t.Errorf("an app listens on %q, want a loopback port", l)
		}
	}
	stop(t, s, named(s.PID(), "node"))
}
