package childrt

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/accesslog"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// testFast answers /a and /dir/ from memory and declines everything else.
type testFast struct{}

func (testFast) ServeFast(p string) ([]byte, []byte, bool) {
	switch p {
	case "/a", "/dir/":
		return []byte("Content-Length: 4\r\nContent-Type: text/plain\r\nX-Path: fast\r\n"), []byte("fast"), true
	}
	return nil, nil, false
}

// slowHandler is what net/http serves: it names the path and method.
var slowHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Path", "slow")
	fmt.Fprintf(w, "slow %s %s", r.Method, r.URL.RequestURI())
})

func startFast(t *testing.T, model Model) (*Runtime, string, func(sig syscall.Signal), *scoreboard.Board) {
	t.Helper()
	rt, addr, events, b := modelRuntime(t, model, 8)
	rt.Fast = testFast{}
	sigs, done := serveAsync(t, rt, events, slowHandler)
	go func() {
		for events.Scan() {
		}
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			sigs <- syscall.SIGINT
			<-done
		}
	})
	return rt, addr, func(sig syscall.Signal) { sigs <- sig }, b
}

type reply struct {
	code  int
	path  string // X-Path: fast or slow
	body  string
	close bool
	hdr   http.Header
}

// exchange writes raw to a new connection and reads n responses.
func exchange(t *testing.T, addr, raw string, n int, method string) ([]reply, net.Conn) {
	t.Helper()
	c := dialSend(t, addr, raw)
	return readReplies(t, c, bufio.NewReader(c), n, method), c
}

// dialSend writes raw to a new connection, closed when t ends.
func dialSend(t *testing.T, addr, raw string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return c
}

func readReplies(t *testing.T, c net.Conn, br *bufio.Reader, n int, method string) []reply {
	t.Helper()
	var out []reply
	for i := range n {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, reply{resp.StatusCode, resp.Header.Get("X-Path"), string(b), resp.Close, resp.Header})
	}
	return out
}

func TestFastPathAnswers(t *testing.T) {
	_, addr, _, b := startFast(t, ModelWorker)
	r, c := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n", 1, "GET")
	if r[0].code != 200 || r[0].path != "fast" || r[0].body != "fast" || r[0].close {
		t.Fatalf("GET /a: %+v", r[0])
	}
	if _, err := http.ParseTime(r[0].hdr.Get("Date")); err != nil {
		t.Errorf("Date %q: %v", r[0].hdr.Get("Date"), err)
	}
	// HEAD: the headers, no body; the connection stays usable.
	io.WriteString(c, "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /a?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	h := readReplies(t, c, br, 1, "HEAD")
	if h[0].code != 200 || h[0].body != "" || h[0].hdr.Get("Content-Length") != "4" {
		t.Fatalf("HEAD: %+v", h[0])
	}
	if q := readReplies(t, c, br, 1, "GET"); q[0].path != "fast" {
		t.Fatalf("a query string: %+v", q[0])
	}
	// The scoreboard counted the fast requests on the connection's slot.
	var n uint64
	for _, ws := range b.Snapshot().Workers {
		for _, w := range ws {
			n += w.Requests
		}
	}
	if n != 3 {
		t.Errorf("scoreboard counts %d requests, want 3", n)
	}
}

// TestFastPathPipelineAndHandoff: pipelined requests are answered in order;
// from the first one the fast path does not take, net/http answers, on the
// same connection, with the bytes already read.
func TestFastPathPipelineAndHandoff(t *testing.T) {
	_, addr, _, _ := startFast(t, ModelWorker)
	raw := "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /other HTTP/1.1\r\nHost: x\r\n\r\n" + // declined: net/http from here
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	r, _ := exchange(t, addr, raw, 6, "GET")
	want := []string{"fast", "fast", "slow", "slow", "slow", "slow"}
	for i, w := range want {
		if r[i].code != 200 || r[i].path != w {
			t.Errorf("response %d: %d %q %q, want %s", i, r[i].code, r[i].path, r[i].body, w)
		}
	}
	if r[4].body != "slow POST /a" {
		t.Errorf("the POST: %q", r[4].body)
	}
}

// TestFastPathLeavesTheRestToNetHTTP: every request the strict parser does
// not take gets what net/http gives it.
func TestFastPathLeavesTheRestToNetHTTP(t *testing.T) {
	_, addr, _, _ := startFast(t, ModelEvent)
	for _, tt := range []struct {
		name, raw string
		code      int
		path      string
	}{
		{"post", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 200, "slow"},
		{"range", "GET /a HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n", 200, "slow"},
		{"condition", "GET /a HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"x\"\r\n\r\n", 200, "slow"},
		{"percent", "GET /%61 HTTP/1.1\r\nHost: x\r\n\r\n", 200, "slow"},
		{"absolute form", "GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n", 200, "slow"},
		{"no host", "GET /a HTTP/1.1\r\n\r\n", 400, ""},
		{"two hosts", "GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, ""},
		{"bad host", "GET /a HTTP/1.1\r\nHost: x y\r\n\r\n", 400, ""},
		{"bare LF", "GET /a HTTP/1.1\nHost: x\n\n", 200, "slow"},
		{"folded", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", 200, "slow"},
		{"space before colon", "GET /a HTTP/1.1\r\nHost : x\r\n\r\n", 400, ""},
		{"chunked", "GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200, "slow"},
		{"expect", "GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", 200, "slow"},
		{"lower-case method", "get /a HTTP/1.1\r\nHost: x\r\n\r\n", 200, "slow"},
		{"double space", "GET  /a HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 200, "slow"},
		{"huge header", "GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 10000) + "\r\n\r\n", 200, "slow"},
		{"declined path", "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", 200, "slow"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := exchange(t, addr, tt.raw, 1, "GET")
			if r[0].code != tt.code || r[0].path != tt.path {
				t.Fatalf("%d %q %q, want %d %q", r[0].code, r[0].path, r[0].body, tt.code, tt.path)
			}
		})
	}
}

func TestFastPathHTTP10(t *testing.T) {
	_, addr, _, _ := startFast(t, ModelWorker)
	r, c := exchange(t, addr, "GET /a HTTP/1.0\r\n\r\n", 1, "GET")
	if r[0].path != "fast" || !r[0].close {
		t.Fatalf("HTTP/1.0: %+v", r[0])
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("HTTP/1.0 without keep-alive: connection open (%d, %v)", n, err)
	}
	r, c = exchange(t, addr, "GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1, "GET")
	if r[0].path != "fast" || r[0].close || r[0].hdr.Get("Connection") != "keep-alive" {
		t.Fatalf("HTTP/1.0 keep-alive: %+v", r[0])
	}
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if r := readReplies(t, c, bufio.NewReader(c), 1, "GET"); !r[0].close {
		t.Fatalf("Connection: close not honoured: %+v", r[0])
	}
}

// TestFastPathDrain: a draining child answers the next fast request with
// "Connection: close", and closes idle fast connections after the quiet
// period, as it does for net/http's.
func TestFastPathDrain(t *testing.T) {
	_, addr, signal, _ := startFast(t, ModelWorker)
	_, busy := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET")
	_, idle := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET")
	signal(syscall.SIGUSR1)
	time.Sleep(50 * time.Millisecond)
	io.WriteString(busy, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	if r := readReplies(t, busy, bufio.NewReader(busy), 1, "GET"); r[0].path != "fast" || !r[0].close {
		t.Fatalf("request while draining: %+v", r[0])
	}
	idle.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection while draining: %v", err)
	}
	if d := time.Since(start); d < quietPeriod/2 {
		t.Errorf("idle connection closed after %s, before the quiet period", d)
	}
}

// TestFastPathTimeouts: a request header that never ends is cut after
// read_header; an idle keep-alive connection after idle. In the prefork
// model too, which reads and writes with raw system calls (rawio.go).
func TestFastPathTimeouts(t *testing.T) {
	for _, m := range []Model{ModelEvent, ModelPrefork} {
		t.Run(string(m), func(t *testing.T) {
			rt, addr, events, _ := modelRuntime(t, m, 4)
			rt.Fast = testFast{}
			rt.Timeouts.ReadHeader, rt.Timeouts.Idle = 300*time.Millisecond, 300*time.Millisecond
			sigs, done := serveAsync(t, rt, events, slowHandler)
			defer func() { sigs <- syscall.SIGINT; <-done }()
			for _, tt := range []struct{ name, raw string }{
				{"slow header", "GET /a HTTP/1.1\r\nHost: x\r\n"},
				{"idle", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"},
			} {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(c, tt.raw)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				start := time.Now()
				got, _ := io.ReadAll(c)
				d := time.Since(start)
				c.Close()
				if d > 2*time.Second {
					t.Errorf("%s: closed after %s, bound 300ms", tt.name, d)
				}
				if tt.name == "idle" && !bytes.Contains(got, []byte("fast")) {
					t.Errorf("idle: no response before the close: %q", got)
				}
			}
		})
	}
}

// FuzzParseFast: whatever the strict parser accepts, net/http's parser
// accepts too, as the same request.
func FuzzParseFast(f *testing.F) {
	for _, s := range []string{
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /a?b=c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: */*\r\n\r\n",
		"GET /a HTTP/1.1\r\nhost: x:80\r\nX: \t1\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req fastRequest
		n := parseFast(b, &req)
		if n <= 0 {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:n])))
		if err != nil {
			t.Fatalf("fast path took %q; net/http: %v", b[:n], err)
		}
		method := "GET"
		if req.head {
			method = "HEAD"
		}
		if r.Method != method || r.RequestURI != string(req.target) || r.Proto != req.proto || r.URL.Path != string(req.path) {
			t.Fatalf("%q: net/http %s %s (path %s) %s; fast %s %s (path %s) %s", b[:n], r.Method, r.RequestURI, r.URL.Path, r.Proto, method, req.target, req.path, req.proto)
		}
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
			t.Fatalf("%q: a request with a body taken", b[:n])
		}
		if r.Close != req.close {
			t.Fatalf("%q: net/http close=%v, fast close=%v", b[:n], r.Close, req.close)
		}
	})
}

// TestFastPathAccessLog: a request answered on the fast path is logged with
// the line net/http's path logs for it, in every format.
func TestFastPathAccessLog(t *testing.T) {
	for _, f := range []accesslog.Format{accesslog.FormatCombined, accesslog.FormatCommon, accesslog.FormatJSON} {
		t.Run(f.String(), func(t *testing.T) {
			rt, addr, events, _ := modelRuntime(t, ModelWorker, 4)
			rt.Fast = testFast{}
			var buf syncBuffer
			rt.access, rt.format = accesslog.NewWriter(&buf, accesslog.WriterOptions{}), f
			// The slow handler answers /b as the fast path answers /a.
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "4")
				io.WriteString(w, "fast")
			})
			sigs, done := serveAsync(t, rt, events, h)
			go func() {
				for events.Scan() {
				}
			}()
			raw := "GET /a?x=1 HTTP/1.1\r\nHost: x\r\nReferer: http://r/\"q\"\r\nUser-Agent: ua 1.0\r\n\r\n" +
				"GET /b?x=1 HTTP/1.1\r\nHost: x\r\nReferer: http://r/\"q\"\r\nUser-Agent: ua 1.0\r\n\r\n" +
				"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n" +
				"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, raw)
			br := bufio.NewReader(c)
			readReplies(t, c, br, 2, "GET")
			readReplies(t, c, br, 2, "HEAD")
			sigs <- syscall.SIGINT
			<-done
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 4 {
				t.Fatalf("%d lines:\n%s", len(lines), buf.String())
			}
			norm := func(s string) string {
				s = strings.Replace(s, "/b", "/a", 1)
				if f == accesslog.FormatJSON { // durations and times differ
					if i := strings.Index(s, `"duration`); i >= 0 {
						s = s[:i]
					}
					if i, j := strings.Index(s, `"time":`), strings.Index(s, `,"remote`); i >= 0 && j > i {
						s = s[:i] + s[j:]
					}
				} else if i, j := strings.Index(s, "["), strings.Index(s, "]"); i >= 0 && j > i {
					s = s[:i] + s[j:]
				}
				return s
			}
			for i := 0; i < 4; i += 2 {
				if norm(lines[i]) != norm(lines[i+1]) {
					t.Errorf("fast path logged\n%s\nnet/http logged\n%s", lines[i], lines[i+1])
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the access log's background flush.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// panicFast panics on /panic, as a buggy responder might.
type panicFast struct{ testFast }

func (p panicFast) ServeFast(path string) ([]byte, []byte, bool) {
	if path == "/panic" {
		panic("responder bug")
	}
	return p.testFast.ServeFast(path)
}

// TestFastPathPanic: a panicking responder costs its connection only, as a
// panicking handler does under net/http; the child serves on.
func TestFastPathPanic(t *testing.T) {
	rt, addr, events, _ := modelRuntime(t, ModelEvent, 4)
	rt.Fast = panicFast{}
	sigs, done := serveAsync(t, rt, events, slowHandler)
	defer func() { sigs <- syscall.SIGINT; <-done }()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("after the panic: %q, %v; want the connection closed", b, err)
	}
	if r, _ := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET"); r[0].path != "fast" {
		t.Fatalf("after a panic elsewhere: %+v", r[0])
	}
}
