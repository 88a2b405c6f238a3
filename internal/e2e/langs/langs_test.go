package langs

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// example is a copy of one of examples/ to run, and the master running it.
type example struct {
	*e2e.Server
	// stopRequest is how long the request lasts that stopsGracefully has
	// in the app when it stops; 5 s when 0.
	stopRequest time.Duration
}

// startExample copies examples/name into a new folder, rewrites the
// listen address of its configuration file conf (127.0.0.1:8080) to a free
// one, and starts the master on it with env and flags (-c key=value),
// waiting until it serves. Everything else is as shipped.
func startExample(t *testing.T, name, conf string, env []string, flags ...string) *example {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "..", "examples", name))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, conf)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "127.0.0.1:8080"); n != 1 {
		t.Fatalf("examples/%s/%s names 127.0.0.1:8080 %d times, want once", name, conf, n)
	}
	addr := e2e.FreePort(t)
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), "127.0.0.1:8080", addr, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := e2e.Run(t, dir, env, append([]string{"-f", path, "-t"}, flags...)...); code != 0 {
		t.Fatalf("phased -t on examples/%s/%s: %d %s %s", name, conf, code, out, errOut)
	}
	p := e2e.Start(t, dir, env, append([]string{"-f", path}, flags...)...)
	p.WaitLog(t, "resuming normal operations", 1, 30*time.Second)
	return &example{Server: &e2e.Server{Proc: p, Addr: addr, Conf: path}}
}

// client makes one request per connection: a kept-alive one would hold a
// slot of a child, and a prefork child has just one.
var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// getJSON GETs path and decodes its JSON answer into v, failing t unless
// it is 200.
func (x *example) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := client.Get(x.URL(path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(b, v) != nil {
		t.Fatalf("GET %s = %s %q", path, resp.Status, b)
	}
}

// answer is what the examples' apps answer: / names the app and its
// server, /echo what it read of a request body, /slow how long it slept.
type answer struct {
	App     string `json:"app"`
	PID     int    `json:"pid"`
	Server  string `json:"server"`
	Method  string `json:"method"`
	Length  int    `json:"length"`
	Sha256  string `json:"sha256"`
	SleptMS int    `json:"slept_ms"`
}

// checkRequests drives the requests every example answers through x: GET /
// (the app, served by server, in a process of an app server that phased
// status shows, with its memory), POST /echo with a body of 1 MiB (the app
// reads all of it), and GET /stream (pieces that arrive as the app writes
// them, not all at the end).
func (x *example) checkRequests(t *testing.T, app, server string) {
	t.Helper()
	var a answer
	x.getJSON(t, "/", &a)
	if a.App != app || !strings.Contains(strings.ToLower(a.Server), strings.ToLower(server)) || a.PID == 0 {
		t.Errorf("GET / answered %+v; want app %s under %s", a, app, server)
	}
	shown := false
	for _, c := range x.children(t) {
		if c.State == "ready" && (c.AppPID == 0 || c.AppBytes <= 0) {
			t.Errorf("phased status shows the ready child %d with app pid %d, %d bytes", c.PID, c.AppPID, c.AppBytes)
		}
		shown = shown || c.AppPID == a.PID || slices.Contains(e2e.Descendants(c.AppPID), a.PID)
	}
	if !shown {
		t.Errorf("the process that answered GET / (%d) is no app server phased status shows, nor one of theirs: %+v", a.PID, x.children(t))
	}
	body := make([]byte, 1<<20)
	for i := range body {
		body[i] = byte(i * 7)
	}
	sum := sha256.Sum256(body)
	resp, err := client.Post(x.URL("/echo"), "application/octet-stream", strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("POST /echo: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e answer
	if resp.StatusCode != 200 || json.Unmarshal(b, &e) != nil || e.Method != "POST" || e.Length != len(body) || e.Sha256 != hex.EncodeToString(sum[:]) {
		t.Errorf("POST /echo of %d bytes = %s %q", len(body), resp.Status, b)
	}
	x.checkStream(t)
	x.checkPublic(t)
}

// checkPublic GETs /robots.txt of an example that has public/robots.txt:
// phased serves it from the folder (its Server header, the file's bytes),
// as Passenger serves an app's public folder; the app never sees it.
func (x *example) checkPublic(t *testing.T) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(x.Dir, "public", "robots.txt"))
	if err != nil {
		return // the example has none
	}
	resp, err := client.Get(x.URL("/robots.txt"))
	if err != nil {
		t.Fatalf("GET /robots.txt: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != string(want) || resp.Header.Get("Server") != "phased" {
		t.Errorf("GET /robots.txt = %s, Server %q, %q; want phased's 200 with public/robots.txt", resp.Status, resp.Header.Get("Server"), b)
	}
}

// checkStream GETs /stream?n=4&ms=300: four lines, 300 ms apart. The first
// must arrive before the app wrote the last (each line says when it was
// written): the response flows through, it is not held until the end.
func (x *example) checkStream(t *testing.T) {
	t.Helper()
	resp, err := client.Get(x.URL("/stream?n=4&ms=300"))
	if err != nil {
		t.Fatalf("GET /stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /stream = %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	var firstAt time.Time
	for sc.Scan() {
		if firstAt.IsZero() {
			firstAt = time.Now()
		}
		lines = append(lines, sc.Text())
	}
	if len(lines) != 4 {
		t.Fatalf("GET /stream: %q, want 4 pieces", lines)
	}
	f := strings.Fields(lines[3]) // "piece 3 at 1733000000.123"
	written, err := strconv.ParseFloat(f[len(f)-1], 64)
	if err != nil {
		t.Fatalf("GET /stream: last piece %q", lines[3])
	}
	if last := time.UnixMilli(int64(written * 1000)); !firstAt.Before(last) {
		t.Errorf("GET /stream: the first piece arrived at %s, after the app wrote the last at %s: the response was not streamed",
			firstAt.Format(time.StampMilli), last.Format(time.StampMilli))
	}
}

// loadLimit bounds the requests of gracefulUnderLoad's load; the load
// must still run when the restart is over, so it must not reach it.
const loadLimit = 100000

// gracefulUnderLoad restarts x gracefully (-k graceful) under a small
// bounded load (4 clients, a connection per request, at most loadLimit
// requests) and fails t unless every request is answered 2xx and the old
// generation's children are gone while the load still runs.
func (x *example) gracefulUnderLoad(t *testing.T) {
	t.Helper()
	old := e2e.Workers(x.PID())
	stop := make(chan struct{})
	result := make(chan e2e.LoadResult, 1)
	go func() { result <- e2e.Load(x.Addr, "/", 4, false, loadLimit, stop) }()
	time.Sleep(300 * time.Millisecond)
	began := time.Now()
	if code, out, errOut := e2e.Run(t, x.Dir, nil, "-f", x.Conf, "-k", "graceful"); code != 0 {
		close(stop)
		t.Fatalf("-k graceful: %d %s %s", code, out, errOut)
	}
	took := time.Since(began)
	e2e.WaitGone(t, old, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	res := <-result
	if res.Errors != 0 || res.Non2xx != 0 || res.Requests < 50 || res.Requests >= loadLimit {
		t.Fatalf("load over a graceful restart: %s; log:\n%s", res, x.Log)
	}
	t.Logf("-k graceful took %s; load: %s", took.Round(time.Millisecond), res)
}

// retireInFlight starts GET /slow?ms=4000 (long enough for a loaded machine to find it in flight), waits until a child serves it,
// tells that child to drain now (SIGWINCH, what the master sends a child it
// retires) and fails t unless the request was still in flight then, is
// answered 200, and the child is gone after it.
func (x *example) retireInFlight(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		resp, err := client.Get(x.URL("/slow?ms=4000"))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("%s %q", resp.Status, b)
			}
		}
		done <- err
	}()
	busy := x.waitBusy(t)
	x.signalChild(t, busy, syscall.SIGWINCH)
	select {
	case err := <-done:
		t.Fatalf("the request in flight ended (%v) before its child began to drain", err)
	default:
	}
	if err := <-done; err != nil {
		t.Fatalf("the request in flight while its child retired: %v; log:\n%s", err, x.Log)
	}
	e2e.WaitGone(t, []int{busy}, 30*time.Second)
}

// waitBusy waits until phased status shows a child serving a request,
// and returns its pid.
func (x *example) waitBusy(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, c := range x.children(t) {
			if c.Busy > 0 {
				return c.PID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request in flight after 10s: %v", x.children(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killedApps counts the app servers log shows killed at app.stop_timeout,
// and of those the Starman masters that had passed the stop signal on to
// their workers ("Sending children hup signal"): a Starman worker that is
// still starting can miss that HUP and never exit (Net::Server's race,
// about one graceful restart in ten under the tests' load), which phased's
// kill is there for. Every other kill is phased's failure to stop an app.
func killedApps(log string) (killed, missedHUP int) {
	hup := map[string]bool{}
	var kills []string
	for line := range strings.Lines(log) {
		pid := jsonField(line, "app_pid")
		switch {
		case strings.Contains(line, "Sending children hup signal"):
			hup[pid] = true
		case strings.Contains(line, "app server did not stop in time"):
			kills = append(kills, pid)
		}
	}
	for _, pid := range kills {
		if pid != "" && hup[pid] {
			missedHUP++
		}
	}
	return len(kills), missedHUP
}

// jsonField returns the raw value of a number field in a JSON log line.
func jsonField(line, key string) string {
	_, after, ok := strings.Cut(line, `"`+key+`":`)
	if !ok {
		return ""
	}
	end := strings.IndexAny(after, ",}")
	if end < 0 {
		return after
	}
	return after[:end]
}

// stopsGracefully checks the app server's side of its child's end: the
// example's stop_signal must let an app server finish the request it is
// running. On a stop (-k stop) a child cuts its connections at once, then
// stops its app server, with a request of x.stopRequest still in it. The
// app logs "slow request done" when it ends one: with a graceful stop
// signal that line comes after the cut, from the app being stopped, which
// exits before its stop_timeout, and no child is killed meanwhile (the
// master gives them the app's stop_timeout on top of its own bound). The
// master exits at the end.
func (x *example) stopsGracefully(t *testing.T) {
	t.Helper()
	ms := cmp.Or(x.stopRequest, 5*time.Second).Milliseconds() // outlasts a loaded machine's -k stop
	go client.Get(x.URL(fmt.Sprintf("/slow?ms=%d", ms)))      // cut by the stop
	x.waitBusy(t)
	began := time.Now()
	if code, out, errOut := e2e.Run(t, x.Dir, nil, "-f", x.Conf, "-k", "stop"); code != 0 {
		t.Fatalf("-k stop: %d %s %s", code, out, errOut)
	}
	if code := x.WaitExit(t, 30*time.Second); code != 0 {
		t.Fatalf("stop: exit %d; log:\n%s", code, x.Log)
	}
	log := x.Log.String()
	cut := strings.Index(log, "child stopped immediately")
	done := strings.LastIndex(log, fmt.Sprintf("slow request done after %d ms", ms))
	if cut < 0 || done < cut || x.Log.Count("app server stopped") == 0 {
		t.Fatalf("the app server was stopped with a request in it, which it did not finish (cut at %d, request done at %d); log:\n%s", cut, done, log)
	}
	if n, missed := killedApps(log); n != missed {
		t.Fatalf("an app server did not stop on its stop signal; log:\n%s", log)
	} else if missed > 0 {
		t.Logf("%d Starman master(s) passed the stop signal on to their workers (HUP) and a worker never exited; killed at app.stop_timeout", missed)
	}
	for _, r := range x.Log.Records("child exited") {
		if st := fmt.Sprint(r["status"]); st != "exit status 0" {
			t.Fatalf("a child exited with %s (killed before its app server stopped?); log:\n%s", st, log)
		}
	}
	t.Logf("stop with a request cut in its child, finished by the app on its stop signal: %s", time.Since(began).Round(time.Millisecond))
}

// operate runs an example through what each must go through: the
// requests of checkRequests (the app, served by server), a graceful restart
// under load, then check, when not nil, on the new generation; a request
// in flight while its child retires; and the app server's graceful stop
// (see stopsGracefully), which ends the master.
func (x *example) operate(t *testing.T, app, server string, check func()) {
	t.Helper()
	x.checkRequests(t, app, server)
	x.gracefulUnderLoad(t)
	if check != nil {
		check()
	}
	x.retireInFlight(t)
	x.stopsGracefully(t)
}

// childStatus is one child in `phased status --json`, with its app.
type childStatus struct {
	PID      int    `json:"pid"`
	Slot     int    `json:"slot"`
	State    string `json:"state"`
	Busy     int    `json:"busy"`
	AppPID   int    `json:"app_pid"`
	AppBytes int64  `json:"app_memory_bytes"`
}

// children returns the children `phased status --json` lists.
func (x *example) children(t *testing.T) []childStatus {
	t.Helper()
	code, out, errOut := e2e.Run(t, x.Dir, nil, "-f", x.Conf, "status", "--json")
	var st struct {
		Children []childStatus `json:"children"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("phased status --json: %d %s %s", code, out, errOut)
	}
	return st.Children
}

// signalChild sends sig to one serving child of x.
func (x *example) signalChild(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := e2e.Kill(t, pid, sig); err != nil {
		t.Fatalf("kill -%v %d: %v", sig, pid, err)
	}
}
