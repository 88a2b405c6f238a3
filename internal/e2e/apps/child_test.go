package apps

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// helloApp builds testdata/app_hello, the smallest Go app served through
// sdk/child, and returns the app: section that runs it as the children.
func helloApp(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("app:\n  command: [%s]\n", e2e.Build(t, "./internal/e2e/apps/testdata/app_hello"))
}

// helloAnswer is what app_hello's GET / says about the child that answered.
type helloAnswer struct{ pid, slot, generation int }

var helloRe = regexp.MustCompile(`^pid (\d+) slot (\d+) generation (\d+)\n$`)

// hello asks s's app for GET / on a fresh connection.
func hello(t *testing.T, s *e2e.Server) helloAnswer {
	t.Helper()
	code, body, err := e2e.Get(s.URL("/"))
	m := helloRe.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("GET / = %d %q %v", code, body, err)
	}
	pid, _ := strconv.Atoi(m[1])
	slot, _ := strconv.Atoi(m[2])
	gen, _ := strconv.Atoi(m[3])
	return helloAnswer{pid, slot, gen}
}

// initScript is a child-init exec hook: it appends what it was told, and the
// pid of the process that ran it (the child), to init.log, then waits while
// a file named gate exists.
const initScript = `#!/bin/sh
echo "$PHASED_PHASE child=$PPID slot=${PHASED_SLOT-unset} generation=${PHASED_GENERATION-unset}" >> init.log
while [ -f gate ]; do sleep 0.02; done
`

var initRe = regexp.MustCompile(`^child-init child=(\d+) slot=(\d+) generation=(\d+)$`)

// initLog returns init.log's lines as child pid -> slot, failing t on a
// line that is not a child-init run with a slot and a generation.
func initLog(t *testing.T, dir string) map[int]int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "init.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		m := initRe.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("init.log line %q: want child-init with PHASED_SLOT and PHASED_GENERATION", line)
		}
		pid, _ := strconv.Atoi(m[1])
		slot, _ := strconv.Atoi(m[2])
		out[pid] = slot
	}
	return out
}

// TestAppChildInitExecHook: with app.command, the config's child-init exec
// hooks still run in each child, with PHASED_SLOT, and before it accepts: a
// replacement whose hook is held back serves nothing until it finishes.
func TestAppChildInitExecHook(t *testing.T) {
	s := e2e.StartServer(t, helloApp(t)+"hooks:\n  - {name: announce, phase: child-init, exec: [./init.sh]}\n", func(dir string) {
		e2e.WriteFile(t, dir, "init.sh", initScript)
		os.Chmod(filepath.Join(dir, "init.sh"), 0o755)
	})
	kids := appChildren(s.PID())
	slices.Sort(kids)
	ran := initLog(t, s.Dir)
	if got := slices.Sorted(maps.Keys(ran)); !slices.Equal(got, kids) {
		t.Fatalf("child-init ran in %v, want the app children %v", got, kids)
	}
	// Each child's hook got the slot the child itself serves from.
	seen := map[int]bool{}
	for i := 0; len(seen) < len(kids); i++ {
		if i == 200 {
			t.Fatalf("200 requests reached only children %v of %v", seen, kids)
		}
		a := hello(t, s)
		if slot, ok := ran[a.pid]; !ok || slot != a.slot || a.generation != 1 {
			t.Fatalf("child %d serves slot %d generation %d; its hook saw slot %d (ran: %v)", a.pid, a.slot, a.generation, slot, ran)
		}
		seen[a.pid] = true
	}

	// Hold the hooks back, retire one child: its replacement starts, runs
	// its hook, and must not serve while the hook runs.
	gate := e2e.WriteFile(t, s.Dir, "gate", "")
	e2e.Kill(t, kids[0], syscall.SIGUSR1)
	var held []int
	deadline := time.Now().Add(10 * time.Second)
	for len(held) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no replacement ran its child-init hook; log:\n%s", s.Log)
		}
		for pid := range initLog(t, s.Dir) {
			if !slices.Contains(kids, pid) {
				held = append(held, pid)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e2e.WaitGone(t, kids[:1], 10*time.Second)
	for range 50 {
		if a := hello(t, s); a.pid != kids[1] {
			t.Fatalf("child %d answered while child-init hooks were held back; want %d only (held: %v)", a.pid, kids[1], held)
		}
	}
	for _, c := range s.Status(t)["children"].([]any) {
		c := c.(map[string]any)
		if pid := int(c["pid"].(float64)); slices.Contains(held, pid) && c["state"] != "starting" {
			t.Fatalf("child %d is %v while its child-init hook runs, want starting", pid, c["state"])
		}
	}

	// Let the hooks finish: the replacement serves.
	os.Remove(gate)
	deadline = time.Now().Add(10 * time.Second)
	for a := hello(t, s); !slices.Contains(held, a.pid); a = hello(t, s) {
		if time.Now().After(deadline) {
			t.Fatalf("the replacements %v never served; log:\n%s", held, s.Log)
		}
	}
	t.Logf("child-init ran in children %v, then in %v, which served only once its hook was let go", kids, held)
}

// combinedRe is a line of Apache's combined log format.
var combinedRe = regexp.MustCompile(`^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET (\S+) HTTP/1\.1" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$`)

// TestAppChildrenFillScoreboardAndAccessLog: a Go app's children are
// phased children like the built-in ones: their slots fill the scoreboard
// (phased status sees a request in flight, the app answers /server-status
// with its own requests counted) and they write the access log in the
// combined format.
func TestAppChildrenFillScoreboardAndAccessLog(t *testing.T) {
	s := e2e.StartServer(t, helloApp(t))
	kids := appChildren(s.PID())
	const n = 20
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	sizes := map[string]int{}
	for i := range n {
		req, _ := http.NewRequest("GET", s.URL(fmt.Sprintf("/?n=%d", i)), nil)
		req.Header.Set("Referer", "http://referer.test/page")
		req.Header.Set("User-Agent", "app-e2e/1.0")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, err = io.Copy(&b, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !helloRe.MatchString(b.String()) {
			t.Fatalf("GET /?n=%d = %d %q %v", i, resp.StatusCode, b.String(), err)
		}
		sizes[fmt.Sprintf("/?n=%d", i)] = b.Len()
	}

	// A request in flight shows in phased status: a W in the scoreboard,
	// and in the app's own status page, with its request line.
	slow := make(chan error, 1)
	go func() {
		code, _, err := e2e.Get(s.URL("/slow?ms=3000"))
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d", code)
		}
		slow <- err
	}()
	deadline := time.Now().Add(2500 * time.Millisecond)
	for {
		st := s.Status(t)
		if strings.Contains(st["scoreboard"].(string), "W") && st["busy_workers"].(float64) >= 1 {
			var pids []int
			for _, c := range st["children"].([]any) {
				pids = append(pids, int(c.(map[string]any)["pid"].(float64)))
			}
			slices.Sort(pids)
			slices.Sort(kids)
			if !slices.Equal(pids, kids) {
				t.Fatalf("phased status lists children %v, want the app's %v", pids, kids)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("phased status never showed the request in flight: %v", st)
		}
	}
	code, body, err := e2e.Get(s.URL("/server-status?json"))
	var board struct {
		TotalAccesses uint64 `json:"total_accesses"`
		Workers       []struct {
			PID      int    `json:"pid"`
			State    string `json:"state"`
			Requests uint64 `json:"requests"`
			Request  string `json:"request"`
		} `json:"workers"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &board) != nil {
		t.Fatalf("GET /server-status?json = %d %v %q", code, err, body)
	}
	var served uint64
	inFlight := false
	for _, w := range board.Workers {
		if w.Requests > 0 && !slices.Contains(kids, w.PID) {
			t.Fatalf("a slot of pid %d, not an app child %v, served requests", w.PID, kids)
		}
		served += w.Requests
		inFlight = inFlight || (w.State == "W" && w.Request == "GET /slow?ms=3000 HTTP/1.1" && slices.Contains(kids, w.PID))
	}
	if served < n || board.TotalAccesses < n || !inFlight {
		t.Fatalf("the app's scoreboard: %d requests in its slots, %d in all, /slow in flight %v; want %d or more and /slow:\n%s",
			served, board.TotalAccesses, inFlight, n, body)
	}
	if err := <-slow; err != nil {
		t.Fatalf("GET /slow: %v", err)
	}
	t.Logf("app children %v: %d requests in their slots, /slow seen in flight", kids, served)

	// The access log has one combined line per request.
	logged := map[string]bool{}
	deadline = time.Now().Add(5 * time.Second)
	for len(logged) < n || !logged["/slow?ms=3000"] {
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d of the %d requests and /slow: %v", len(logged), n, logged)
		}
		time.Sleep(50 * time.Millisecond)
		b, err := os.ReadFile(filepath.Join(s.Dir, "logs/access.log"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			m := combinedRe.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("access log line %q is not in the combined format", line)
			}
			if m[1] == "/server-status?json" {
				continue
			}
			if m[1] == "/slow?ms=3000" {
				logged[m[1]] = m[2] == "200"
				continue
			}
			if m[2] != "200" || m[3] != strconv.Itoa(sizes[m[1]]) || m[4] != "http://referer.test/page" || m[5] != "app-e2e/1.0" {
				t.Fatalf("access log line %q: want 200, %d bytes, the referer and the user agent", line, sizes[m[1]])
			}
			logged[m[1]] = true
		}
	}
}

// TestAppChildAnswersStatusAndMetrics: a Go app made with child.Serve
// answers the status page and the Prometheus metrics itself (the status
// module every child mounts), counting the app's own requests, while its
// other paths stay the app's.
func TestAppChildAnswersStatusAndMetrics(t *testing.T) {
	s := e2e.StartServer(t, helloApp(t))
	const n = 7
	for range n {
		hello(t, s)
	}
	code, auto, err := e2e.Get(s.URL("/server-status?auto"))
	m := regexp.MustCompile(`(?m)^Total Accesses: (\d+)$`).FindStringSubmatch(auto)
	if code != 200 || m == nil || !strings.Contains(auto, "\nScoreboard: ") {
		t.Fatalf("GET /server-status?auto from an app child = %d %v:\n%s", code, err, auto)
	}
	if got, _ := strconv.Atoi(m[1]); got < n {
		t.Errorf("?auto counts %d accesses, want at least the app's %d", got, n)
	}
	code, prom, err := e2e.Get(s.URL("/metrics"))
	m = regexp.MustCompile(`(?m)^phased_generation_requests_total (\d+)$`).FindStringSubmatch(prom)
	if code != 200 || m == nil || !strings.Contains(prom, `phased_workers{class="idle"}`) {
		t.Fatalf("GET /metrics from an app child = %d %v:\n%s", code, err, prom)
	}
	if got, _ := strconv.Atoi(m[1]); got < n {
		t.Errorf("/metrics counts %d requests, want at least the app's %d", got, n)
	}
	if code, body, _ := e2e.Get(s.URL("/nothing-here")); code != 404 {
		t.Errorf("GET /nothing-here = %d %q: the app's own paths must stay the app's", code, body)
	}
}
