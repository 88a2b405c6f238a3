package status

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// TestAccessLogFormats runs the real binary with each access_log.format
// and checks the exact shape of the lines three requests leave: a small
// static file with a Referer and a User-Agent (the children's fast path), a
// 404 with a query string (net/http) and a HEAD (no body bytes).
func TestAccessLogFormats(t *testing.T) {
	const (
		ua  = "phased-test/1 (e2e)"
		ref = "http://ref.example/page?a=1"
	)
	type request struct {
		raw, line string // what is sent; the request line logged
		status    string
		bytes     string // Apache's %b: "-" for none
		ref, ua   string // "" when not sent
	}
	reqs := []request{
		{"GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: " + ua + "\r\nReferer: " + ref + "\r\nConnection: close\r\n\r\n",
			"GET /hello.txt HTTP/1.1", "200", "6", ref, ua},
		{"GET /missing?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET /missing?q=1 HTTP/1.1", "404", "", "", ""},
		{"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HEAD /hello.txt HTTP/1.1", "200", "-", "", ""},
	}
	const clfTime = `\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]`
	header := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	// want returns the regexp of a request's line in format f; the
	// duration, when the format has one, is its first group.
	want := func(f string, r request) *regexp.Regexp {
		q := regexp.QuoteMeta
		if f == "json" {
			bytes := r.bytes
			if bytes == "-" {
				bytes = "0"
			}
			return regexp.MustCompile(`^\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)","remote_host":"127\.0\.0\.1",` +
				`"remote_user":"","request":"` + q(r.line) + `","status":` + r.status + `,"bytes":` + q(bytes) +
				`,"referer":"` + q(r.ref) + `","user_agent":"` + q(r.ua) + `","duration_us":(\d+)\}$`)
		}
		re := `^127\.0\.0\.1 - - ` + clfTime + ` "` + q(r.line) + `" ` + r.status + ` ` + q(r.bytes)
		if strings.HasPrefix(f, "combined") {
			re += ` "` + q(header(r.ref)) + `" "` + q(header(r.ua)) + `"`
		}
		if strings.HasSuffix(f, "_duration") {
			re += ` (\d+)`
		}
		return regexp.MustCompile(re + `$`)
	}

	for _, format := range []string{"common", "combined", "json", "common_duration", "combined_duration"} {
		t.Run(format, func(t *testing.T) {
			s := startWithAccessLog(t, format)
			for i := range reqs {
				r := &reqs[i]
				resp := rawRequest(t, s.Addr, r.raw)
				if !strings.HasPrefix(resp, "HTTP/1.1 "+r.status+" ") {
					t.Fatalf("%s: %q", r.line, resp)
				}
				if r.bytes == "" { // the 404 page's body, as sent
					_, body, _ := strings.Cut(resp, "\r\n\r\n")
					r.bytes = strconv.Itoa(len(body))
				}
			}
			lines := waitAccessLines(t, filepath.Join(s.Dir, "logs/access.log"), len(reqs))
			for _, r := range reqs {
				re := want(format, r)
				var line string
				for _, l := range lines {
					if strings.Contains(l, r.line) {
						line = l
					}
				}
				m := re.FindStringSubmatch(line)
				if m == nil {
					t.Fatalf("%s line\n got  %q\n want %v\nlog:\n%s", r.line, line, re, strings.Join(lines, "\n"))
				}
				// The patterns end with the line: common and combined carry no
				// duration. Those that do carry a plausible one.
				if format == "json" || strings.HasSuffix(format, "_duration") {
					if us, _ := strconv.Atoi(m[len(m)-1]); us > 10_000_000 {
						t.Errorf("%s: %d µs", r.line, us)
					}
				}
			}
		})
	}
}

// startWithAccessLog starts a master like start does, with the access log
// in format.
func startWithAccessLog(t *testing.T, format string) *e2e.Server {
	t.Helper()
	dir := t.TempDir()
	addr := e2e.FreePort(t)
	e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	cfg := e2e.Config(addr, "")
	const plain = "access_log: {path: logs/access.log}"
	if !strings.Contains(cfg, plain) {
		t.Fatalf("the test config has no %q:\n%s", plain, cfg)
	}
	cfg = strings.Replace(cfg, plain, "access_log: {path: logs/access.log, format: "+format+"}", 1)
	conf := e2e.WriteFile(t, dir, "phased.yaml", cfg)
	p := e2e.Start(t, dir, nil, "-f", conf)
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	return &e2e.Server{Proc: p, Addr: addr, Conf: conf}
}

// rawRequest sends raw on a new connection and returns all it reads back.
func rawRequest(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", raw, err)
	}
	return string(b)
}

// waitAccessLines waits until the access log at path has n lines (children
// write it in batches) and returns them.
func waitAccessLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log %s: %d lines after 5s, want %d:\n%s", path, len(lines), n, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAccessLogFullDisk: with the access log on a device where every write
// fails with ENOSPC (/dev/full, a full disk without root tricks), no line
// is lost silently: each child says so in the error log, once for the
// cause, naming the file, and /metrics counts every line lost and every
// failed write, over all children.
func TestAccessLogFullDisk(t *testing.T) {
	s := e2e.StartServer(t, "access_log: {path: /dev/full}\n")
	const requests = 200
	for i := range requests {
		path := "/hello.txt" // the children's fast path
		if i%2 == 1 {
			path = "/nope" // net/http
		}
		if code, _, err := e2e.Get(s.URL(path)); err != nil || code == 0 {
			t.Fatalf("GET %s: %d %v", path, code, err)
		}
	}
	// Lines wait up to 200ms for their batch; the metrics requests add
	// lines of their own, lost too.
	body := waitMetricAtLeast(t, s, 5*time.Second, "phased_access_log_dropped_lines_total", requests)
	if n := metricValue(body, "phased_access_log_write_errors_total"); n < 1 {
		t.Fatalf("phased_access_log_write_errors_total = %v, want at least 1:\n%s", n, body)
	}
	const msg = "access log write failed; its lines are dropped until writes succeed again"
	recs := s.Log.Records(msg)
	children := len(e2e.Workers(s.PID()))
	if len(recs) < 1 || len(recs) > children {
		t.Fatalf("%d %q records from %d children, want one per child that wrote; log:\n%s", len(recs), msg, children, s.Log)
	}
	for _, r := range recs {
		if r["level"] != "ERROR" || r["access_log"] != "/dev/full" || !strings.Contains(r["err"].(string), "no space left on device") {
			t.Fatalf("record %v: want an error naming /dev/full and ENOSPC", r)
		}
		if lost, _ := r["lines_lost"].(float64); lost < 1 {
			t.Fatalf("record %v: no count of the lines lost", r)
		}
	}
}
