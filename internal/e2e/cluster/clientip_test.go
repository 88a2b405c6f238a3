package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/phasedhq/phased/internal/e2e"
)

// proxyHeader is a PROXY header of version v (1 or 2) from src to the
// balancer's 192.0.2.1:80.
func proxyHeader(t *testing.T, v byte, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(v, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:80")))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// send writes pre (a PROXY header, or nothing) and a GET of path with the
// extra header lines to addr, and returns the answer's status and body, or
// the error the connection ended with.
func send(t *testing.T, addr string, pre []byte, path string, headers ...string) (int, string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + strings.Join(headers, "") + "\r\n"
	if _, err := c.Write(append(pre, req...)); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), nil
}

// accessLog waits for the access log to hold n lines and returns them.
func accessLog(t *testing.T, s *e2e.Server, n int) []string {
	t.Helper()
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(s.Dir, "logs/access.log"))
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(b) > 0 && len(lines) >= n {
			return lines
		}
	}
	t.Fatalf("access log has %d lines, want %d: %q", len(lines), n, lines)
	return nil
}

// TestProxyProtocol: on a listener with proxy_protocol, real clients'
// PROXY headers (v1 and v2) name the client everywhere phased uses it: the
// access log (%h), the status page's client column, status.allow and
// health.allow; a connection without a valid header is closed unanswered,
// counted in /metrics and warned about in the error log.
func TestProxyProtocol(t *testing.T) {
	plain, proxied := e2e.FreePort(t), e2e.FreePort(t)
	s := e2e.StartServer(t, fmt.Sprintf("listen: [%q, {address: %q, proxy_protocol: true}]\n", plain, proxied)+
		"status: {allow: [198.51.100.0/24]}\nhealth: {allow: [198.51.100.0/24]}\n")
	if code, _, err := send(t, plain, nil, "/server-status"); code != 403 {
		t.Errorf("status page to loopback, outside status.allow: %d %v", code, err)
	}
	if code, body, err := send(t, proxied, proxyHeader(t, 1, "198.51.100.7:4000"), "/hello.txt"); code != 200 || body != "hello\n" {
		t.Fatalf("v1: %d %q %v", code, body, err)
	}
	code, body, err := send(t, proxied, proxyHeader(t, 2, "198.51.100.8:4000"), "/server-status?json")
	if code != 200 {
		t.Fatalf("status page to an allowed client behind PROXY v2: %d %v", code, err)
	}
	var st struct {
		Workers []struct{ Client, Request string }
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range st.Workers {
		found = found || w.Client == "198.51.100.8" && strings.HasPrefix(w.Request, "GET /server-status")
	}
	if !found {
		t.Errorf("no worker shows client 198.51.100.8:\n%s", body)
	}
	if code, _, _ := send(t, proxied, proxyHeader(t, 2, "198.51.100.9:1"), "/readyz"); code != 200 {
		t.Errorf("readiness to an allowed client behind PROXY: %d", code)
	}
	if code, _, _ := send(t, proxied, proxyHeader(t, 2, "203.0.113.9:1"), "/readyz"); code != 403 {
		t.Errorf("readiness to a client outside health.allow behind PROXY: %d", code)
	}

	// Without a valid header: closed, unanswered.
	for _, pre := range [][]byte{nil, []byte("PROXY TCP4 198.51.100.7 192.0.2.1 x 80\r\n")} {
		if code, _, err := send(t, proxied, pre, "/hello.txt"); err == nil {
			t.Errorf("%q was answered %d", pre, code)
		}
	}
	_, metrics, _ := send(t, proxied, proxyHeader(t, 2, "198.51.100.7:1"), "/metrics")
	if !strings.Contains(metrics, "phased_proxy_protocol_rejected_total 2\n") {
		t.Errorf("metrics:\n%s", grepLines(metrics, "proxy"))
	}
	s.Log.Wait(t, "connections without a valid PROXY header closed", 1, 5*time.Second)

	// Health probes are not logged; rejected connections neither.
	// (Children write their own lines: the order across them is not
	// the requests'.)
	lines := accessLog(t, s, 4)
	for _, want := range []string{"127.0.0.1 - - [] \"GET /server-status HTTP/1.1\" 403", "198.51.100.7 - - [] \"GET /hello.txt HTTP/1.1\" 200",
		"198.51.100.8 - - [] \"GET /server-status?json HTTP/1.1\" 200", "198.51.100.7 - - [] \"GET /metrics HTTP/1.1\" 200"} {
		if !hasLine(lines, want) {
			t.Errorf("access log lacks %s:\n%s", want, strings.Join(lines, "\n"))
		}
	}
}

// hasLine reports whether an access-log line, its time left out, starts
// with prefix.
func hasLine(lines []string, prefix string) bool {
	for _, l := range lines {
		if i, j := strings.Index(l, "["), strings.Index(l, "]"); i >= 0 && j > i {
			l = l[:i+1] + l[j:]
		}
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// echoApp is an HTTP app server (python3's http.server on the port its
// child gives it) that answers with the X-Forwarded-For it was sent, or
// on /proto with its X-Forwarded-Proto and X-Forwarded-Host.
const echoApp = `import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/proto":
            b = ("%s %s" % (self.headers.get("X-Forwarded-Proto"), self.headers.get("X-Forwarded-Host"))).encode()
        else:
            b = (self.headers.get("X-Forwarded-For") or "-").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`

// TestAppSeesTheClient: the app behind a child gets the real client in
// X-Forwarded-For: the one a PROXY header names, the one a trusted proxy's
// X-Forwarded-For names (and the access log says so), and the peer itself
// when an untrusted client sends its own X-Forwarded-For.
func TestAppSeesTheClient(t *testing.T) {
	python := e2e.Program(t, "python3", "python3")
	app := func(dir string) { e2e.WriteFile(t, dir, "app.py", echoApp) }
	cfg := func(plain, proxied, extra string) string {
		return fmt.Sprintf("listen: [%q, {address: %q, proxy_protocol: true}]\n", plain, proxied) +
			fmt.Sprintf("app: {type: http, listen: port, command: [%s, app.py, \"{port}\"]}\n", python) +
			"mpm: {name: prefork, start_servers: 1}\n" + extra
	}
	plain, proxied := e2e.FreePort(t), e2e.FreePort(t)
	s := e2e.StartServer(t, cfg(plain, proxied, "trusted_proxies: [127.0.0.0/8]\n"), app)
	for _, tt := range []struct {
		name, addr string
		pre        []byte
		headers    []string
		want       string
	}{
		{"PROXY v2", proxied, proxyHeader(t, 2, "198.51.100.7:1"), nil, "198.51.100.7"},
		{"PROXY, forged header from an untrusted client", proxied, proxyHeader(t, 1, "198.51.100.8:1"), []string{"X-Forwarded-For: 6.6.6.6\r\n"}, "198.51.100.8"},
		{"trusted proxy's header", plain, nil, []string{"X-Forwarded-For: 6.6.6.6, 203.0.113.4\r\n"}, "203.0.113.4"},
		{"trusted proxy, no header", plain, nil, nil, "127.0.0.1"},
	} {
		code, body, err := send(t, tt.addr, tt.pre, "/app", tt.headers...)
		if code != 200 || body != tt.want {
			t.Errorf("%s: the app saw X-Forwarded-For %q (%d %v), want %q", tt.name, body, code, err, tt.want)
		}
	}
	lines := accessLog(t, s, 4)
	for _, want := range []string{"198.51.100.7 - - [] \"GET /app", "198.51.100.8 - - [] \"GET /app", "203.0.113.4 - - [] \"GET /app", "127.0.0.1 - - [] \"GET /app"} {
		if !hasLine(lines, want) {
			t.Errorf("access log lacks %s:\n%s", want, strings.Join(lines, "\n"))
		}
	}

	// A trusted proxy that ended TLS says so, and which host it was asked
	// for; the app is told.
	forwarded := []string{"X-Forwarded-Proto: https\r\n", "X-Forwarded-Host: shop.example\r\n"}
	if code, body, err := send(t, plain, nil, "/proto", forwarded...); code != 200 || body != "https shop.example" {
		t.Errorf("a trusted proxy's X-Forwarded-Proto and -Host: the app saw %q (%d %v)", body, code, err)
	}

	plain = e2e.FreePort(t)
	e2e.StartServer(t, cfg(plain, e2e.FreePort(t), ""), app)
	if code, body, err := send(t, plain, nil, "/app", "X-Forwarded-For: 6.6.6.6\r\n"); code != 200 || body != "127.0.0.1" {
		t.Errorf("an untrusted client's X-Forwarded-For reached the app: %q %d %v", body, code, err)
	}
	// An untrusted client cannot: the app gets the child's own scheme and
	// the request's Host.
	if code, body, err := send(t, plain, nil, "/proto", forwarded...); code != 200 || body != "http x" {
		t.Errorf("an untrusted client's X-Forwarded-Proto and -Host: the app saw %q (%d %v), want %q", body, code, err, "http x")
	}
}

// TestHealthCommand: phased health asks the running master's liveness
// endpoint, and --ready its readiness, through a listener that wants a
// PROXY header too (it sends a LOCAL one); it exits 1 when the answer is
// not 200 or nothing answers.
func TestHealthCommand(t *testing.T) {
	addr := e2e.FreePort(t)
	s := e2e.StartServer(t, fmt.Sprintf("listen: [{address: %q, proxy_protocol: true}]\nhealth: {drain_delay: 3s}\n", addr))
	for _, args := range [][]string{{"health"}, {"health", "--ready"}} {
		code, out, errOut := e2e.Run(t, s.Dir, nil, append([]string{"-f", s.Conf}, args...)...)
		if code != 0 || !strings.Contains(out, ": 200 ok") {
			t.Fatalf("%v: exit %d %q %q", args, code, out, errOut)
		}
	}
	s.Signal(t, syscall.SIGWINCH)
	s.Log.Wait(t, "readiness answers 503", 1, 5*time.Second)
	if code, out, _ := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "health", "--ready"); code != 1 || !strings.Contains(out, "503 stopping") {
		t.Fatalf("health --ready while stopping: exit %d %q", code, out)
	}
	if code, _, _ := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "health"); code != 0 {
		t.Fatalf("health (liveness) while stopping: exit %d", code)
	}
	s.WaitExit(t, 15*time.Second)
	if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "health"); code != 1 || !strings.Contains(errOut, "refused") {
		t.Fatalf("health with nobody listening: exit %d %q", code, errOut)
	}
}
