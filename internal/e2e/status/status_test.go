package status

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

func TestServerStatus(t *testing.T) {
	s := e2e.StartServer(t, "")
	for range 5 {
		e2e.Get(s.URL("/hello.txt"))
	}
	values := autoLikeApache(t, s, "worker")
	if n, _ := strconv.Atoi(values["Total Accesses"]); n < 5 || values["IdleWorkers"] == "0" ||
		!strings.Contains(values["Scoreboard"], "W") || values["ParentServerConfigGeneration"] != "1" {
		t.Fatalf("?auto values: %v", values)
	}

	var st map[string]any
	code, body, _ := e2e.Get(s.URL("/server-status?json"))
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st["mpm"] != "worker" || st["processes"].(float64) != 2 {
		t.Fatalf("?json: %d %s", code, body)
	}
	code, body, _ = e2e.Get(s.URL("/server-status"))
	// The page's own request is being written: a W on the board.
	if code != 200 || !strings.Contains(body, `<pre id="scoreboard">`) || !strings.Contains(body, "W") ||
		!strings.Contains(body, "GET /server-status HTTP/1.1") {
		t.Fatalf("html: %d\n%s", code, body)
	}

	// Only the allowed networks may read it.
	closed := e2e.StartServer(t, "status: {allow: [\"10.0.0.0/8\"]}\n")
	if code, _, _ := e2e.Get(closed.URL("/server-status?auto")); code != 403 {
		t.Fatalf("from a network not allowed: %d, want 403", code)
	}
	off := e2e.StartServer(t, "status: {path: \"\"}\n")
	if code, _, _ := e2e.Get(off.URL("/server-status")); code != 404 {
		t.Fatalf("with the page off: %d, want 404", code)
	}
}

// The fixtures apache-auto-worker.txt and apache-auto-event.txt in
// testdata/apache-status are real Apache 2.4.71 pages (Debian's apache2,
// mod_status, ExtendedStatus On, 2,000 requests by ab), captured by
// testdata/apache-status/capture.sh, never edited: run it again to refresh
// them. apache_exporter and many scripts parse this format.

// apacheAutoValue is, per ?auto key, the shape of its value as mod_status
// prints it. Each is checked against the fixtures' values too, so a shape
// that Apache's own output does not match fails the test.
var apacheAutoValue = func() map[string]*regexp.Regexp {
	// APR's %g: six significant digits, no zero before the point
	// (".0163934"), no trailing zeros, exponents unpadded ("1.e+5").
	aprG := `-?(0|[1-9]\d*(\.\d*[1-9])?|\.\d*[1-9]|[1-9]\.(\d*[1-9])?e[+-]\d+)`
	shapes := map[string]string{
		"ServerVersion": `[A-Za-z][\w.-]*(/\S+)?( \(.+\))?`,
		"ServerMPM":     `prefork|worker|event`,
		"Server Built":  `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d`,
		"CurrentTime":   `[A-Z][a-z]+day, \d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [A-Z]{2,5}`,
		"ServerUptime":  `( \d+ (day|hour|minute|second)s?)*`, // after the colon, with its leading space
		"Load1":         `\d+\.\d\d`,
		"Scoreboard":    `[_SRWKDCLGI.]+`,
		"CPUUser":       aprG,
	}
	for _, k := range []string{"RestartTime"} {
		shapes[k] = shapes["CurrentTime"]
	}
	for _, k := range []string{"Load5", "Load15"} {
		shapes[k] = shapes["Load1"]
	}
	for _, k := range []string{"CPUSystem", "CPUChildrenUser", "CPUChildrenSystem", "CPULoad", "ReqPerSec", "BytesPerSec", "BytesPerReq", "DurationPerReq"} {
		shapes[k] = aprG
	}
	for _, k := range []string{"ParentServerConfigGeneration", "ParentServerMPMGeneration", "ServerUptimeSeconds", "Total Accesses",
		"Total kBytes", "Total Duration", "Uptime", "BusyWorkers", "GracefulWorkers", "IdleWorkers",
		"Processes", "Stopping", "ConnsTotal", "ConnsAsyncWaitIO", "ConnsAsyncWriting", "ConnsAsyncKeepAlive", "ConnsAsyncClosing"} {
		shapes[k] = `\d+`
	}
	out := map[string]*regexp.Regexp{}
	for k, v := range shapes {
		out[k] = regexp.MustCompile(`^(` + v + `)$`)
	}
	return out
}()

// parseAuto splits a ?auto page into its host line, its keys in order and
// their values. Every line but the first is "Key:" and a value that starts
// with a space, except an empty ServerUptime, as in Apache's.
func parseAuto(t *testing.T, page string) (host string, keys []string, values map[string]string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(page, "\n"), "\n")
	values = map[string]string{}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" {
			t.Fatalf("line %q is not \"Key: value\"; page:\n%s", l, page)
		}
		if k != "ServerUptime" {
			if v, ok = strings.CutPrefix(v, " "); !ok {
				t.Fatalf("line %q: no space after the colon", l)
			}
		}
		keys = append(keys, k)
		values[k] = v
	}
	return lines[0], keys, values
}

// autoLikeApache reads s's ?auto once its uptime is a second or more (so
// the keys Apache prints from then on are due) and checks it against
// Apache's capture for mpm: the same keys in the same order, and every
// value in Apache's shape. It returns the values.
func autoLikeApache(t *testing.T, s *e2e.Server, mpm string) map[string]string {
	t.Helper()
	fixture, err := os.ReadFile("testdata/apache-status/apache-auto-" + mpm + ".txt")
	if err != nil {
		t.Fatal(err)
	}
	_, wantKeys, apache := parseAuto(t, string(fixture))
	for _, k := range wantKeys {
		re := apacheAutoValue[k]
		if re == nil {
			t.Fatalf("the capture has a key the test does not know: %q", k)
		}
		if !re.MatchString(apache[k]) {
			t.Fatalf("Apache's own %s %q does not match %v", k, apache[k], re)
		}
	}
	var page string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, body, err := e2e.Get(s.URL("/server-status?auto"))
		if err != nil || code != 200 {
			t.Fatalf("?auto: %d %v", code, err)
		}
		page = body
		if !strings.Contains(page, "\nServerUptimeSeconds: 0\n") || time.Now().After(deadline) {
			break
		}
	}
	host, keys, values := parseAuto(t, page)
	if host != "127.0.0.1" {
		t.Fatalf("first line %q, want the host", host)
	}
	if strings.Join(keys, "|") != strings.Join(wantKeys, "|") {
		t.Fatalf("?auto keys:\n got    %q\n Apache %q\npage:\n%s", keys, wantKeys, page)
	}
	for _, k := range keys {
		if !apacheAutoValue[k].MatchString(values[k]) {
			t.Errorf("%s: %q is not in Apache's shape %v", k, values[k], apacheAutoValue[k])
		}
	}
	if t.Failed() {
		t.Fatalf("page:\n%s", page)
	}
	return values
}

// eventMPM is the tests' event MPM: two children of 25 threads.
const eventMPM = `mpm:
  name: event
  start_servers: 2
  threads_per_child: 25
  min_spare_threads: 25
  max_spare_threads: 75
`

// TestServerStatusAutoEvent: with the event MPM, ?auto carries mod_status's
// async block, in Apache's order, and counts the connections the children
// hold: an idle keep-alive connection is one, held without a worker.
func TestServerStatusAutoEvent(t *testing.T) {
	s := e2e.StartServer(t, eventMPM)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for range 3 { // one keep-alive connection, left idle
		resp, err := client.Get(s.URL("/hello.txt"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	values := autoLikeApache(t, s, "event")
	n := func(k string) int { v, _ := strconv.Atoi(values[k]); return v }
	// The keep-alive connection and the one asking for the page.
	if values["ServerMPM"] != "event" || n("Processes") != 2 || n("Stopping") != 0 || n("ConnsTotal") < 2 ||
		n("ConnsAsyncKeepAlive") < 1 || n("ConnsAsyncKeepAlive") >= n("ConnsTotal") || n("BusyWorkers") < 1 {
		t.Fatalf("?auto async block: %v", values)
	}
}

// TestEventConnsCounted: the event block's connection counts are exact,
// from what the children count on the scoreboard as they accept and close:
// five idle keep-alive connections and the one asking for the page, then
// two fewer once two close.
func TestEventConnsCounted(t *testing.T) {
	s := e2e.StartServer(t, eventMPM)
	held := e2e.HoldConnections(t, s.Addr, 5)
	page := func() map[string]string {
		t.Helper()
		resp := rawRequest(t, s.Addr, "GET /server-status?auto HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
		_, body, _ := strings.Cut(resp, "\r\n\r\n")
		_, _, values := parseAuto(t, body)
		return values
	}
	// A connection's goroutine marks it keep-alive just after its
	// response is out, so a client may read the page a moment before:
	// the counts are polled until they are exact.
	waitCounts := func(total, keepAlive, what string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			v := page()
			if v["ConnsTotal"] == total && v["ConnsAsyncKeepAlive"] == keepAlive {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: ConnsTotal %s, ConnsAsyncKeepAlive %s; want %s and %s", what, v["ConnsTotal"], v["ConnsAsyncKeepAlive"], total, keepAlive)
			}
		}
	}
	waitCounts("6", "5", "five held")
	held[0].Close()
	held[1].Close()
	waitCounts("4", "3", "after two closed")
}

// metricLine reports whether a /metrics page has line, whole.
func metricLine(body, line string) bool { return strings.Contains(body, line+"\n") }

// waitMetrics reads s's /metrics until it has every line of want, and
// returns it.
func waitMetrics(t *testing.T, s *e2e.Server, within time.Duration, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, body, _ := e2e.Get(s.URL("/metrics"))
		missing := ""
		for _, w := range want {
			if !metricLine(body, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics has no %s after %v:\n%s", missing, within, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricValue returns the value of the series named exactly name (with its
// labels), or -1.
func metricValue(body, name string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// waitMetricAtLeast reads s's /metrics until the series name (with its
// labels) is at least min, and returns the page.
func waitMetricAtLeast(t *testing.T, s *e2e.Server, within time.Duration, name string, min float64) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, body, _ := e2e.Get(s.URL("/metrics"))
		if metricValue(body, name) >= min {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics: %s below %v after %v:\n%s", name, min, within, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMetrics reads /metrics as Prometheus would, across a crash, a
// child retired by hand, a rolling recycle and a graceful restart:
// counters come from the master and never reset, each recycle and exit is
// counted under its cause, children under their generation.
func TestMetrics(t *testing.T) {
	s := e2e.StartServer(t, "")
	// Children by state and the accept-queue figures are published as they
	// change, not on the master's next one-second tick: the first read sees
	// them.
	code, body, err := e2e.Get(s.URL("/metrics"))
	if err != nil || code != 200 {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	for _, want := range []string{
		`phased_workers{class="idle"} 49`, // and this request's slot is busy
		`phased_workers{class="busy"} 1`,
		`phased_children_events_total{event="spawned"} 2`,
		`phased_children_spawned_total 2`,
		`phased_children{generation="1",mpm="worker"} 2`,
		`phased_restarts_total{result="ok"} 0`,
		`phased_children_by_state{generation="1",state="ready"} 2`,
		`phased_children_by_state{generation="1",state="starting"} 0`,
		`phased_children_by_state{generation="1",state="retiring"} 0`,
		`phased_listen_queue_limit{listener="` + s.Addr + `"} 511`,
		`phased_children_recycled_total{cause="max_connections"} 0`,
		`phased_children_recycled_total{cause="max_memory"} 0`,
		`phased_children_recycled_total{cause="signal"} 0`,
		`phased_children_recycled_total{cause="recycle"} 0`,
		`phased_children_recycled_total{cause="mpm"} 0`,
		`phased_children_exited_total{cause="normal"} 0`,
		`phased_children_exited_total{cause="signal"} 0`,
		`phased_children_exited_total{cause="status"} 0`,
		`phased_children_exited_total{cause="child_init"} 0`,
	} {
		if !metricLine(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Fatalf("/metrics:\n%s", body)
	}

	kids := e2e.Workers(s.PID())
	e2e.Kill(t, kids[0], syscall.SIGKILL)
	s.Log.Wait(t, "child exited unexpectedly", 1, 5*time.Second)
	waitMetrics(t, s, 5*time.Second,
		`phased_children_events_total{event="exited_unexpectedly"} 1`,
		`phased_children_exited_total{cause="signal"} 1`,
		`phased_children_exited_total{cause="status"} 0`,
		`phased_children_spawned_total 3`,
		`phased_children_by_state{generation="1",state="ready"} 2`)

	// A SIGUSR1 by hand to one child, as an operator sends it: it retires
	// for a signal, after its replacement is ready.
	e2e.Kill(t, kids[1], syscall.SIGUSR1)
	waitMetrics(t, s, 10*time.Second,
		`phased_children_recycled_total{cause="signal"} 1`,
		`phased_children_recycled_total{cause="max_connections"} 0`,
		`phased_children_exited_total{cause="normal"} 1`,
		`phased_children_spawned_total 4`,
		`phased_children_by_state{generation="1",state="ready"} 2`)

	if code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "recycle"); code != 0 {
		t.Fatalf("-k recycle: %d %s %s", code, out, errOut)
	}
	waitMetrics(t, s, 10*time.Second,
		`phased_children_recycled_total{cause="recycle"} 2`,
		`phased_children_recycled_total{cause="signal"} 1`,
		`phased_children_exited_total{cause="normal"} 3`,
		`phased_children_spawned_total 6`)

	if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("graceful: %s", errOut)
	}
	body = waitMetrics(t, s, 10*time.Second,
		`phased_restarts_total{result="ok"} 1`,
		`phased_children_events_total{event="spawned"} 8`,
		`phased_children{generation="2",mpm="worker"} 2`,
		`phased_children_by_state{generation="2",state="ready"} 2`,
		`phased_children_exited_total{cause="normal"} 5`,
		`phased_children_exited_total{cause="signal"} 1`)
	if strings.Contains(body, `phased_children_by_state{generation="1"`) {
		t.Fatalf("generation 1 has no child left, yet:\n%s", body)
	}
	closed := e2e.StartServer(t, "status: {allow: [\"10.0.0.0/8\"]}\n")
	if code, _, _ := e2e.Get(closed.URL("/metrics")); code != 403 {
		t.Fatalf("/metrics from a network not allowed: %d", code)
	}
}

// TestMetricsRecycleCauses: the MPM retiring a spare child, a child at
// max_connections_per_child, one over max_memory_per_child and one whose
// child-init failed are each counted under their own cause, and under no
// other.
func TestMetricsRecycleCauses(t *testing.T) {
	t.Run("mpm and max_connections", func(t *testing.T) {
		// Three children of 25 threads: 75 idle, above max_spare_threads.
		s := e2e.StartServer(t, `mpm:
  name: worker
  start_servers: 3
  threads_per_child: 25
  min_spare_threads: 25
  max_spare_threads: 50
  max_connections_per_child: 3
`)
		waitMetrics(t, s, 10*time.Second, `phased_children_recycled_total{cause="mpm"} 1`)
		for range 12 { // a new connection each
			e2e.Get(s.URL("/hello.txt"))
		}
		body := waitMetricAtLeast(t, s, 10*time.Second, `phased_children_recycled_total{cause="max_connections"}`, 1)
		if !metricLine(body, `phased_children_recycled_total{cause="signal"} 0`) ||
			!metricLine(body, `phased_children_recycled_total{cause="max_memory"} 0`) ||
			!metricLine(body, `phased_children_recycled_total{cause="recycle"} 0`) ||
			!metricLine(body, `phased_children_exited_total{cause="signal"} 0`) {
			t.Fatalf("other causes counted:\n%s", body)
		}
	})
	t.Run("max_memory", func(t *testing.T) {
		s := e2e.StartServer(t, `mpm:
  name: worker
  start_servers: 1
  threads_per_child: 25
  min_spare_threads: 25
  max_spare_threads: 75
  max_memory_per_child: 1M
`)
		body := waitMetricAtLeast(t, s, 10*time.Second, `phased_children_recycled_total{cause="max_memory"}`, 1)
		if !metricLine(body, `phased_children_recycled_total{cause="mpm"} 0`) ||
			!metricLine(body, `phased_children_recycled_total{cause="signal"} 0`) ||
			!metricLine(body, `phased_children_exited_total{cause="signal"} 0`) {
			t.Fatalf("other causes counted:\n%s", body)
		}
	})
	t.Run("child_init", func(t *testing.T) {
		// The first child to run the hook fails it (mkdir is atomic); the
		// master replaces it.
		s := e2e.StartServer(t, `hooks:
  - name: once
    phase: child-init
    exec: ["/bin/sh", "-c", "mkdir failed-once 2>/dev/null && exit 1; exit 0"]
`)
		waitMetrics(t, s, 10*time.Second, `phased_children_exited_total{cause="child_init"} 1`,
			`phased_children_exited_total{cause="status"} 0`, `phased_children_exited_total{cause="signal"} 0`,
			`phased_children_by_state{generation="1",state="ready"} 2`)
	})
}

// TestMetricsAcceptQueue makes a real accept queue: one prefork child held
// by a connection that never finishes its request, and three connections
// that the kernel completes and queues behind it. The master samples the
// queue each second; once the child is free again, /metrics and ?json
// show the deepest queue it saw.
func TestMetricsAcceptQueue(t *testing.T) {
	s := e2e.StartServer(t, `mpm:
  name: prefork
  start_servers: 1
  min_spare_servers: 1
  max_spare_servers: 2
  server_limit: 1
  max_request_workers: 1
timeouts: {read_header: 30s}
`)
	e2e.WaitServing(t, s.URL("/hello.txt"), 5*time.Second)
	stuck, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	io.WriteString(stuck, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n") // no blank line: the child waits
	time.Sleep(200 * time.Millisecond)                              // until the child took it
	var queued []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A byte of a request, as clients send: with accept_filter data a
		// connection that sent nothing waits outside the accept queue.
		io.WriteString(c, "G")
		queued = append(queued, c)
	}
	time.Sleep(2500 * time.Millisecond) // two of the master's samples
	// Free the child: queued connections close without a request, the
	// stuck one finishes its.
	for _, c := range queued {
		c.Close()
	}
	io.WriteString(stuck, "Connection: close\r\n\r\n")
	if b, _ := io.ReadAll(stuck); !strings.Contains(string(b), "200 OK") {
		t.Fatalf("the held request: %q", b)
	}
	body := waitMetrics(t, s, 10*time.Second, `phased_listen_queue_max{listener="`+s.Addr+`"} 3`)
	if n := metricValue(body, `phased_listen_queue{listener="`+s.Addr+`"}`); n != 3 && n != 0 {
		t.Fatalf("phased_listen_queue is %v, want the last sample, 3 or (drained) 0:\n%s", n, body)
	}
	// The next sample sees the queue drained; the deepest stays.
	waitMetrics(t, s, 5*time.Second, `phased_listen_queue{listener="`+s.Addr+`"} 0`, `phased_listen_queue_max{listener="`+s.Addr+`"} 3`)
	_, js, _ := e2e.Get(s.URL("/server-status?json"))
	var st struct {
		MaxListenQueue int `json:"max_listen_queue"`
	}
	if json.Unmarshal([]byte(js), &st) != nil || st.MaxListenQueue != 3 {
		t.Fatalf("?json max_listen_queue: %s", js)
	}
}

// TestRequestDurationsAndPHPFPMFields: every request lands in the duration
// histogram and the accepted count; with a 1 ns threshold every one is slow;
// ?json carries PHP-FPM's pool fields, the listen queue's limit from the
// start (not only after a maintenance tick).
func TestRequestDurationsAndPHPFPMFields(t *testing.T) {
	s := e2e.StartServer(t, "status: {slow_request: 1ns}\n")
	for range 10 {
		e2e.Get(s.URL("/hello.txt"))
	}
	_, body, _ := e2e.Get(s.URL("/metrics"))
	count := regexp.MustCompile(`(?m)^phased_request_duration_seconds_count (\d+)$`).FindStringSubmatch(body)
	slow := regexp.MustCompile(`(?m)^phased_slow_requests_total (\d+)$`).FindStringSubmatch(body)
	accepted := regexp.MustCompile(`(?m)^phased_connections_accepted_total (\d+)$`).FindStringSubmatch(body)
	num := func(m []string) int {
		if m == nil {
			return -1
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	if num(count) < 10 || num(slow) != num(count) || num(accepted) < 1 {
		t.Fatalf("histogram %v, slow %v, accepted %v:\n%s", count, slow, accepted, body)
	}
	if !strings.Contains(body, `phased_request_duration_seconds_bucket{le="0.005"}`) {
		t.Fatalf("no buckets:\n%s", body)
	}
	_, js, _ := e2e.Get(s.URL("/server-status?json"))
	var st struct {
		Accepted  uint64 `json:"accepted_conn"`
		Slow      uint64 `json:"slow_requests"`
		QueueLen  int    `json:"listen_queue_len"`
		Listeners []struct {
			Addr  string `json:"addr"`
			Limit int    `json:"limit"`
		} `json:"listeners"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil || st.Accepted < 11 || st.Slow < 10 || st.QueueLen != 511 ||
		len(st.Listeners) != 1 || st.Listeners[0].Addr != s.Addr {
		t.Fatalf("?json PHP-FPM fields: %+v %v\n%s", st, err, js)
	}
}

// TestStatusCountsSinceTheChildStarted: `phased status` shows what each
// child served since it started; a replacement child starts at 0 while its
// slot's counters (slot_requests) keep what the slot served, as Apache's
// "this child" and "this slot" counts.
func TestStatusCountsSinceTheChildStarted(t *testing.T) {
	s := e2e.StartMPM(t, "mpm: {name: prefork, start_servers: 1, min_spare_servers: 1, max_spare_servers: 1, server_limit: 1, max_request_workers: 1}\n")
	s.WaitChildren(t, 1, 10*time.Second)
	for range 5 {
		if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
			t.Fatalf("GET: %d %v", code, err)
		}
	}
	old := e2e.Workers(s.PID())[0]
	e2e.Kill(t, old, syscall.SIGKILL)
	var kid map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		kids, _ := s.Status(t)["children"].([]any)
		if len(kids) == 1 {
			if k := kids[0].(map[string]any); k["pid"] != float64(old) && k["state"] == "ready" {
				kid = k
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready replacement of %d: %v", old, kids)
		}
	}
	if kid["requests"] != float64(0) || kid["bytes"] != float64(0) || kid["slot_requests"] != float64(5) {
		t.Fatalf("replacement child: %v; want requests 0, bytes 0, slot_requests 5", kid)
	}
	code, out, _ := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "status")
	if code != 0 || strings.Contains(out, "0 in a row") {
		t.Fatalf("status: %d\n%s", code, out)
	}
}
