package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phasedhq/phased/core/child/internal/gateway"
	"github.com/phasedhq/phased/internal/sockconn"
)

// echo answers a request with its method and body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	io.WriteString(w, r.Method+" "+string(b))
})

// testApp is a Proxy to an app server on a unix socket that serves h,
// keeps connections for idle (closing them after it), and counts the
// connections it accepted.
func testApp(t testing.TB, h http.Handler, idle time.Duration) (*Proxy, *atomic.Int32) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	srv := &http.Server{
		Handler:     h,
		IdleTimeout: idle,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p := New(Options{
		Dial: dialUnix(sock), Exchange: exchangeUnix(sock), // as the child connects to its app (appserver.Server)
		Conns: 2, MaxBodySize: 1 << 20, BodyBufferSize: 1 << 20, ResponseBufferSize: 1 << 20, MaxTempFileSize: 1 << 30,
		TempDir: t.TempDir(), Log: slog.New(slog.DiscardHandler),
	})
	return p, &conns
}

// exchangeUnix connects to the app's socket for one exchange, as a
// child's fast path does.
func exchangeUnix(sock string) func() (*sockconn.Exchange, error) {
	a, err := sockconn.NewUnixAddr(sock)
	return func() (*sockconn.Exchange, error) {
		if err != nil {
			return nil, err
		}
		return a.Exchange()
	}
}

// dialUnix dials the app's socket as a child does.
func dialUnix(sock string) func(context.Context) (net.Conn, error) {
	a, aerr := sockconn.NewUnixAddr(sock)
	return func(context.Context) (net.Conn, error) {
		if aerr != nil {
			return nil, aerr
		}
		c, err := a.Dial()
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// TestAppClosingConnectionsAreClosed: an app that closes its connection
// after each answer (gunicorn's sync workers) has every one closed on the
// child's side too, through the fast path and net/http's, soon after the
// answer (the child closes them in batches, sockconn.CloseSoon): the
// child's descriptors come back to what they were.
func TestAppClosingConnectionsAreClosed(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var opened atomic.Int32
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			w.Header().Set("Content-Type", "text/plain")
			if r.URL.Path == "/parts" { // the head first, the body a little later
				w.Header().Set("Content-Length", "5")
				w.WriteHeader(200)
				w.(http.Flusher).Flush()
				time.Sleep(2 * time.Millisecond)
			}
			io.WriteString(w, "hello")
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				opened.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p := New(Options{Dial: dialUnix(sock), Exchange: exchangeUnix(sock), Conns: 2, MaxBodySize: 1 << 20, BodyBufferSize: 1 << 20,
		ResponseBufferSize: 1 << 20, MaxTempFileSize: 1 << 30, TempDir: t.TempDir(), Log: slog.New(slog.DiscardHandler)})
	// The server's descriptors and the exchanges' poller, made once; and
	// what CloseSoon holds for a moment.
	do(t, p, "GET", "")
	if _, _, ok := p.ForwardFast(fwdReq("/", "Host: example.org\r\n")); !ok {
		t.Fatal("fast path: not answered")
	}
	time.Sleep(100 * time.Millisecond)
	// The collector's finalizers would close what the child leaves open.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	fds := func() int {
		d, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		return len(d)
	}
	before := fds()
	const n = 300
	for i := range n {
		path := "/"
		if i%10 == 0 {
			path = "/parts"
		}
		if ans, _, ok := p.ForwardFast(fwdReq(path, "Host: example.org\r\n")); !ok || string(ans.Body) != "hello" {
			t.Fatalf("fast path, %s: %v %q", path, ok, ans.Body)
		}
	}
	for range 20 {
		if got := do(t, p, "POST", "x"); got != "hello" {
			t.Fatalf("net/http's path: %q", got)
		}
	}
	if o := opened.Load(); o != n+22 {
		t.Errorf("the app saw %d connections; want %d, one a request", o, n+22)
	}
	deadline := time.Now().Add(5 * time.Second)
	for fds() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := fds(); after > before {
		t.Errorf("%d descriptors open after %d requests, %d before", after, n+20, before)
	}
}

func do(t *testing.T, p *Proxy, method, body string) string {
	t.Helper()
	req := httptest.NewRequest(method, "http://127.0.0.1/x", strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:1234"
	w := httptest.NewRecorder()
	p.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("%s: %d %s", method, w.Code, w.Body.String())
	}
	return w.Body.String()
}

// TestAppConnectionsReused: an app that keeps its connections (puma, node)
// gets one connection for requests one after the other, not one each.
func TestAppConnectionsReused(t *testing.T) {
	p, conns := testApp(t, echo, time.Minute)
	for i := range 10 {
		if got := do(t, p, "POST", "body"); got != "POST body" {
			t.Fatalf("request %d: %q", i, got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("10 requests took %d connections to the app, want 1", n)
	}
}

// TestAppClosedIdleConnection: a kept connection that the app closed while
// it was idle is not used: the next request, even one that may not be sent
// twice, goes on a new connection and is answered.
func TestAppClosedIdleConnection(t *testing.T) {
	p, conns := testApp(t, echo, 50*time.Millisecond)
	do(t, p, "GET", "")
	deadline := time.Now().Add(10 * time.Second)
	for !idleClosed(p.rp.Transport.(*transport)) {
		if time.Now().After(deadline) {
			t.Fatal("the app never closed the idle connection")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := do(t, p, "POST", "once"); got != "POST once" {
		t.Fatalf("%q", got)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// TestAppAnswersBeforeTheBody: an app that answers a request before it
// reads its body (a 413 of its own), then closes the connection, has its
// answer reach the client, not a 502.
func TestAppAnswersBeforeTheBody(t *testing.T) {
	p, _ := testApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		http.Error(w, "too large for the app", http.StatusRequestEntityTooLarge)
	}), time.Minute)
	p.o.MaxBodySize = 64 << 20
	req := httptest.NewRequest("POST", "http://127.0.0.1/upload", strings.NewReader(strings.Repeat("x", 16<<20)))
	req.RemoteAddr = "127.0.0.1:1234"
	w := httptest.NewRecorder()
	p.ServeHTTP(w, req)
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "too large for the app") {
		t.Fatalf("%d %q", w.Code, w.Body.String())
	}
}

// idleClosed reports whether the pool's idle connection was closed by the
// app.
func idleClosed(tr *transport) bool {
	select {
	case c := <-tr.idle:
		alive := gateway.SocketAlive(c.nc)
		tr.idle <- c
		return !alive
	default:
		return false
	}
}

// BenchmarkProxy is one GET through the proxy to a local app that keeps
// its connections (puma) or closes each after its answer (gunicorn's sync
// workers, unicorn): the cost phased adds per request in front of an app.
func BenchmarkProxy(b *testing.B) {
	for _, ka := range []bool{true, false} {
		b.Run("keepalive="+strconv.FormatBool(ka), func(b *testing.B) {
			p, _ := testApp(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !ka {
					w.Header().Set("Connection", "close")
				}
				w.Header().Set("Content-Length", "6")
				io.WriteString(w, "hello\n")
			}), time.Minute)
			b.Run("fast", func(b *testing.B) { // the child's fast path (ForwardFast)
				fr := fwdReq("/hello", "Host: example.org\r\nUser-Agent: wrk\r\n")
				b.ReportAllocs()
				for b.Loop() {
					if ans, _, ok := p.ForwardFast(fr); !ok || len(ans.Body) != 6 {
						b.Fatalf("%v %q", ok, ans.Body)
					}
				}
			})
			req := httptest.NewRequest("GET", "http://127.0.0.1/hello", nil)
			req.RemoteAddr = "127.0.0.1:1234"
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				p.ServeHTTP(w, req)
				if w.Code != 200 || w.Body.Len() != 6 {
					b.Fatalf("%d %q", w.Code, w.Body.String())
				}
			}
		})
	}
}

// TestAppReadTimeout: an app that has not begun its answer app.read_timeout
// after it got the request has its client answered 504, on each way the
// child forwards (the fast path on a new connection and on a kept one,
// net/http's for a request with a body), with the key named in the error
// log, and the request is not sent again; an answer whose body pauses
// longer than that after its head reaches the client whole.
func TestAppReadTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var hung atomic.Int32
	release := make(chan struct{})
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hang":
			hung.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			case <-time.After(10 * time.Second): // without a bound, a 200 late
				io.WriteString(w, "late")
			}
		case "/pause":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			time.Sleep(3 * timeout)
			io.WriteString(w, "b")
		default:
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok")
		}
	})
	p, _ := testApp(t, app, time.Minute)
	t.Cleanup(func() { close(release) })
	var logs strings.Builder
	var logMu sync.Mutex
	p.o.Log = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	p.o.ReadTimeout, p.tr.readTimeout = timeout, timeout

	// fast serves path through ForwardFast, and through net/http with
	// what it carried when it declined.
	fast := func(path string) *httptest.ResponseRecorder {
		t.Helper()
		w := httptest.NewRecorder()
		ans, carry, ok := p.ForwardFast(fwdReq(path, "Host: example.org\r\n"))
		if ok {
			w.WriteHeader(ans.Status)
			w.Write(ans.Body)
			return w
		}
		fc, _ := carry.(*fastCarry)
		if fc == nil {
			t.Fatalf("%s: declined without a carry", path)
		}
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr = "192.0.2.1:1234"
		p.serveCarried(w, req, fc)
		return w
	}
	slow := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "http://127.0.0.1"+path, strings.NewReader("body"))
		req.RemoteAddr = "127.0.0.1:1234"
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		return w
	}
	timedOut := func(way string, serve func() *httptest.ResponseRecorder) {
		t.Helper()
		start := time.Now()
		w := serve()
		took := time.Since(start)
		if w.Code != http.StatusGatewayTimeout {
			t.Fatalf("%s: %d %q, want 504", way, w.Code, w.Body.String())
		}
		if took < timeout || took > timeout+3*time.Second {
			t.Fatalf("%s: answered after %v, want app.read_timeout (%v) and little more", way, took, timeout)
		}
	}
	timedOut("fast path, new connection", func() *httptest.ResponseRecorder { return fast("/hang") })
	if w := fast("/ok"); w.Code != 200 || w.Body.String() != "ok" {
		t.Fatalf("/ok: %d %q", w.Code, w.Body.String())
	}
	if len(p.tr.idle) != 1 {
		t.Fatalf("%d idle connections to the app after /ok, want 1", len(p.tr.idle))
	}
	timedOut("fast path, kept connection", func() *httptest.ResponseRecorder { return fast("/hang") })
	timedOut("net/http", func() *httptest.ResponseRecorder { return slow("/hang") })
	if n := hung.Load(); n != 3 {
		t.Fatalf("the app got %d requests for /hang, want 3 (none sent twice)", n)
	}
	logMu.Lock()
	if n := strings.Count(logs.String(), "no answer within app.read_timeout (300ms)"); n != 3 {
		t.Errorf("the log names app.read_timeout %d times, want 3:\n%s", n, logs.String())
	}
	logMu.Unlock()
	for way, serve := range map[string]func(string) *httptest.ResponseRecorder{"fast path": fast, "net/http": slow} {
		if w := serve("/pause"); w.Code != 200 || w.Body.String() != "ab" {
			t.Fatalf("%s, a body that pauses: %d %q, want 200 \"ab\"", way, w.Code, w.Body.String())
		}
	}
}

// lockedWriter is w behind mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
