package status

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// apacheExporter is Debian's prometheus-apache-exporter (0.12 in bookworm),
// which make test and .ci/run install.
const apacheExporter = "/usr/bin/prometheus-apache-exporter"

// TestApacheExporter runs the real apache_exporter against a live phased,
// with the worker and the event MPM, and checks every apache_* series it
// exports: the exporter reads ?auto as it reads Apache's, with no scrape
// failure, and each figure is what phased did (requests, kilobytes, CPU,
// workers, the scoreboard, the event block's processes and connections,
// the version it parses from ServerVersion).
func TestApacheExporter(t *testing.T) {
	e2e.Binary(t) // skips with -short
	e2e.Program(t, apacheExporter, "prometheus-apache-exporter")
	for _, mpm := range []string{"worker", "event"} {
		t.Run(mpm, func(t *testing.T) { testApacheExporter(t, mpm) })
	}
}

func testApacheExporter(t *testing.T, mpm string) {
	big := strings.Repeat("0123456789abcdef", 100<<10/16) // 100 KiB, past the file cache
	s := e2e.StartServer(t, fmt.Sprintf(`mpm:
  name: %s
  start_servers: 2
  threads_per_child: 25
  min_spare_threads: 25
  max_spare_threads: 75
`, mpm), func(dir string) { e2e.WriteFile(t, dir, "public/big.txt", big) })
	const requests = 10
	for i := range requests {
		path := "/hello.txt"
		if i%2 == 0 {
			path = "/big.txt" // 5 x 100 KiB: at least 500 kilobytes sent
		}
		if code, _, err := e2e.Get(s.URL(path)); code != 200 || err != nil {
			t.Fatalf("GET %s: %d %v", path, code, err)
		}
	}
	e2e.HoldConnections(t, s.Addr, 1) // an idle keep-alive connection
	_, verOut, _ := e2e.Run(t, s.Dir, nil, "version")
	var st struct {
		MaxWorkers int `json:"max_workers"`
	}
	if _, body, _ := e2e.Get(s.URL("/server-status?json")); json.Unmarshal([]byte(body), &st) != nil || st.MaxWorkers == 0 {
		t.Fatalf("?json: %s", body)
	}

	series := scrapeExporter(t, s, func(m map[string]float64) bool { return m["apache_uptime_seconds_total"] >= 1 })
	var names []string
	for k := range series {
		names = append(names, k)
	}
	slices.Sort(names)
	t.Logf("apache_exporter's series for the %s MPM:\n%s", mpm, strings.Join(names, "\n"))

	checked := map[string]bool{}
	get := func(name string) float64 {
		t.Helper()
		v, ok := series[name]
		if !ok {
			t.Errorf("no series %s", name)
			return math.NaN()
		}
		checked[name] = true
		return v
	}
	want := func(name string, ok func(float64) bool, what string) {
		t.Helper()
		if v := get(name); !ok(v) {
			t.Errorf("%s = %v, want %s", name, v, what)
		}
	}
	eq := func(n float64) func(float64) bool { return func(v float64) bool { return v == n } }
	atLeast := func(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
	between := func(lo, hi float64) func(float64) bool { return func(v float64) bool { return v >= lo && v <= hi } }

	want("apache_up", eq(1), "1")
	if v, ok := series["apache_exporter_scrape_failures_total"]; ok {
		t.Errorf("apache_exporter_scrape_failures_total = %v: the exporter could not read ?auto", v)
	}
	checked["apache_exporter_scrape_failures_total"] = true
	for k, v := range series { // the exporter's own: apache_exporter_build_info{...,version="0.12.0"}
		if strings.HasPrefix(k, "apache_exporter_build_info{") {
			checked[k] = v == 1
		}
	}

	// The version: ServerVersion's X.Y.Z as the exporter reads it
	// (X.0Y00Z), and the whole of it as apache_info's label.
	var info string
	for k := range series {
		if strings.HasPrefix(k, "apache_info{") {
			if info != "" {
				t.Errorf("two apache_info series: %s and %s", info, k)
			}
			info = k
		}
	}
	m := regexp.MustCompile(`^apache_info\{mpm="` + mpm + `",version="phased/(\d+)\.(\d+)\.(\d+) \((?:(.+); )?Go (go[^;]+); ` + runtime.GOOS + `\)"\}$`).FindStringSubmatch(info)
	if m == nil {
		t.Errorf("apache_info %q: want mpm %q and version phased/X.Y.Z (...; Go %s; %s)", info, mpm, runtime.Version(), runtime.GOOS)
	} else {
		want(info, eq(1), "1")
		x, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[2])
		z, _ := strconv.Atoi(m[3])
		want("apache_version", func(v float64) bool { return math.Abs(v-(float64(x)+float64(y)/100+float64(z)/100000)) < 1e-9 }, "X.0Y00Z of "+info)
		core := m[1] + "." + m[2] + "." + m[3]
		// `phased version` names the same version: v1.2.3, a Go
		// pseudo-version, or (devel) for 0.0.0 (dev).
		if !strings.Contains(verOut, "phased v"+core) && !(core == "0.0.0" && m[4] == "dev" && strings.Contains(verOut, "(devel)")) ||
			m[4] != "" && m[4] != "dev" && !strings.Contains(verOut, m[4]) || m[5] != runtime.Version() {
			t.Errorf("apache_info %q does not carry the version of `phased version`: %q", info, verOut)
		}
	}

	want(`apache_generation{type="config"}`, eq(1), "1")
	want(`apache_generation{type="mpm"}`, eq(0), "0")
	for _, i := range []string{"1min", "5min", "15min"} {
		want(`apache_load{interval="`+i+`"}`, between(0, 1000), "a load average")
	}
	uptime := get("apache_uptime_seconds_total")
	if uptime < 1 || uptime > 300 {
		t.Errorf("apache_uptime_seconds_total = %v, want the seconds since the master started", uptime)
	}
	want("apache_accesses_total", atLeast(requests), fmt.Sprintf("at least the %d requests made", requests))
	want("apache_sent_kilobytes_total", between(500, 1000), "the 500-odd kilobytes sent")
	want("apache_duration_ms_total", between(0, uptime*1000*float64(st.MaxWorkers)), "milliseconds spent serving")
	user, sys := get(`apache_cpu_time_ms_total{type="user"}`), get(`apache_cpu_time_ms_total{type="system"}`)
	if user < 0 || sys < 0 || user+sys <= 0 || user+sys > uptime*1000*float64(runtime.NumCPU())+1000 {
		t.Errorf("apache_cpu_time_ms_total user %v, system %v: want the CPU time the master and children used", user, sys)
	}
	want("apache_cpuload", func(v float64) bool { return v > 0 && v <= 100*float64(runtime.NumCPU())*(1+1/uptime) }, "the CPU time as a percentage of the uptime")

	busy, idle := get(`apache_workers{state="busy"}`), get(`apache_workers{state="idle"}`)
	if busy < 1 || idle < 1 || busy+idle > float64(st.MaxWorkers) {
		t.Errorf("apache_workers busy %v, idle %v: want the ?auto request busy, the rest of 50 idle, of %d slots", busy, idle, st.MaxWorkers)
	}
	sum := 0.0
	for _, state := range []string{"idle", "startup", "read", "reply", "keepalive", "dns", "closing", "logging", "graceful_stop", "idle_cleanup", "open_slot"} {
		v := get(`apache_scoreboard{state="` + state + `"}`)
		if v < 0 {
			t.Errorf(`apache_scoreboard{state=%q} = %v`, state, v)
		}
		sum += v
	}
	if sum != float64(st.MaxWorkers) || series[`apache_scoreboard{state="reply"}`] < 1 || series[`apache_scoreboard{state="idle"}`] < 1 {
		t.Errorf("apache_scoreboard: %v slots, want %d, with the ?auto request replying and idle workers", sum, st.MaxWorkers)
	}

	if mpm == "event" {
		want(`apache_processes{state="all"}`, eq(2), "the 2 children")
		want(`apache_processes{state="stopping"}`, eq(0), "0")
		total := get(`apache_connections{state="total"}`)
		keep := get(`apache_connections{state="keepalive"}`)
		// The held connection and the exporter's own.
		if total < 2 || keep < 1 || keep >= total {
			t.Errorf("apache_connections total %v, keepalive %v: want the idle keep-alive connection and the exporter's", total, keep)
		}
		want(`apache_connections{state="writing"}`, eq(0), "0")
		want(`apache_connections{state="closing"}`, eq(0), "0")
	}
	for _, k := range names {
		if strings.HasPrefix(k, "apache_") && !checked[k] {
			t.Errorf("series %s = %v: not checked (new in this exporter, or unexpected for the %s MPM)", k, series[k], mpm)
		}
	}
}

// scrapeExporter starts apache_exporter on s's ?auto and returns the
// samples of its /metrics, by series ("name{labels}"), once ready says so
// (within 10 s). The exporter is stopped when t ends.
func scrapeExporter(t *testing.T, s *e2e.Server, ready func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	addr := e2e.FreePort(t)
	logPath := filepath.Join(t.TempDir(), "exporter.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(apacheExporter, "--scrape_uri="+s.URL("/server-status?auto"), "--telemetry.address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var series map[string]float64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		series = nil
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				series = parseSamples(t, string(b))
			}
		}
		if series != nil && ready(series) {
			return series
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("apache_exporter on %s: not ready after 10s: %v\nits log:\n%s", addr, series, log)
		}
	}
}

// parseSamples reads Prometheus's text format: each sample line's series
// (name and labels, as written) and value.
func parseSamples(t *testing.T, body string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		out[l[:i]] = v
	}
	return out
}
