package childrt

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bigFast answers /big with a body larger than any socket buffer, and the
// rest as testFast.
type bigFast struct{ testFast }

var bigBody = bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB

func (f bigFast) ServeFast(p string) ([]byte, []byte, bool) {
	if p == "/big" {
		return []byte("Content-Length: 4194304\r\nContent-Type: application/octet-stream\r\n"), bigBody, true
	}
	return f.testFast.ServeFast(p)
}

// startInline starts an event child whose listener waits for data before
// it hands over a connection (accept_filter: data), so that each request
// below is in the socket when the child accepts it, as it mostly is in
// production.
func startInline(t *testing.T) string {
	t.Helper()
	rt, addr, events, _ := modelRuntime(t, ModelEvent, 4)
	rt.Fast = bigFast{}
	deferAccepts(t, rt)
	sigs, done := serveAsync(t, rt, events, slowHandler)
	go func() {
		for events.Scan() {
		}
	}()
	t.Cleanup(func() { sigs <- syscall.SIGINT; <-done })
	return addr
}

// deferAccepts makes rt's listener hand over connections once their first
// bytes are in (accept_filter: data).
func deferAccepts(t *testing.T, rt *Runtime) {
	t.Helper()
	rc, err := rt.listeners[0].(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 5) })
	if serr != nil {
		t.Fatal(serr)
	}
}

// readToClose reads everything until the server closes c.
func readToClose(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading to the close: %v (%d bytes)", err, len(b))
	}
	return b
}

// TestInlineAnswersAndCloses: a `Connection: close` request that is in the
// socket at the accept is answered on the accepting goroutine, and the
// connection closed; the response is the fast path's, whole.
func TestInlineAnswersAndCloses(t *testing.T) {
	addr := startInline(t)
	for _, raw := range []string{
		"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /a HTTP/1.0\r\n\r\n",
		"HEAD /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	} {
		before := inlineServed.Load()
		c := dialSend(t, addr, raw)
		b := readToClose(t, c)
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), &http.Request{Method: strings.Fields(raw)[0]})
		if err != nil {
			t.Fatalf("%q: %v in %q", raw, err, b)
		}
		body, _ := io.ReadAll(resp.Body)
		want := "fast"
		if strings.HasPrefix(raw, "HEAD") {
			want = ""
		}
		if resp.StatusCode != 200 || resp.Header.Get("X-Path") != "fast" || string(body) != want || !resp.Close {
			t.Fatalf("%q: %d %q %q close=%v", raw, resp.StatusCode, resp.Header.Get("X-Path"), body, resp.Close)
		}
		if _, err := http.ParseTime(resp.Header.Get("Date")); err != nil {
			t.Errorf("%q: Date %q", raw, resp.Header.Get("Date"))
		}
		if n := inlineServed.Load() - before; n != 1 {
			t.Errorf("%q: served inline %d times, want 1", raw, n)
		}
	}
}

// TestInlineLargeResponseFinishes: a response the socket does not take at
// once is finished on a goroutine: a slow reader gets every byte, and the
// accept loop meanwhile answers others.
func TestInlineLargeResponseFinishes(t *testing.T) {
	addr := startInline(t)
	slow := dialSend(t, addr, "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // the child has written what the socket takes
	// Another client is answered while the first reads nothing.
	other := dialSend(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if b := readToClose(t, other); !bytes.HasSuffix(b, []byte("\r\n\r\nfast")) {
		t.Fatalf("the other client, while a large response waits: %q", b)
	}
	b := readToClose(t, slow)
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 || !bytes.Equal(b[i+4:], bigBody) {
		t.Fatalf("large response: %d bytes in all, body intact %v", len(b), i >= 0 && bytes.Equal(b[i+4:], bigBody))
	}
}

// TestInlineKeepAlive: the first request of a keep-alive connection is
// answered at the accept too, and the connection goes on on its own
// goroutine: its next requests are answered, also after a first response
// the socket did not take at once.
func TestInlineKeepAlive(t *testing.T) {
	addr := startInline(t)
	before := inlineServed.Load()
	r, c := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET")
	if r[0].path != "fast" || r[0].close {
		t.Fatalf("keep-alive request: %+v", r[0])
	}
	io.WriteString(c, "GET /dir/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if r := readReplies(t, c, bufio.NewReader(c), 1, "GET"); r[0].path != "fast" || !r[0].close {
		t.Fatalf("second request on the kept connection: %+v", r[0])
	}
	if n := inlineServed.Load() - before; n != 1 {
		t.Errorf("served inline %d times, want 1 (the first request)", n)
	}

	// A first response larger than the socket takes: the connection's
	// goroutine finishes it, then answers the next request.
	big := dialSend(t, addr, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	br := bufio.NewReader(big)
	big.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(body, bigBody) || resp.Close {
		t.Fatalf("large first response: %d bytes, intact %v, close %v, %v", len(body), bytes.Equal(body, bigBody), resp.Close, err)
	}
	io.WriteString(big, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	if r := readReplies(t, big, br, 1, "GET"); r[0].path != "fast" || r[0].body != "fast" {
		t.Fatalf("after a large first response: %+v", r[0])
	}
}

// TestInlineLeavesTheRest: a request that comes in two parts, pipelined
// requests and a request the fast path declines go to the connection's
// own goroutine, with the bytes already read, and are answered as before.
func TestInlineLeavesTheRest(t *testing.T) {
	addr := startInline(t)
	before := inlineServed.Load()

	// In two parts: the child accepts at the first bytes.
	p := dialSend(t, addr, "GET /a HTTP/1.1\r\nHo")
	time.Sleep(100 * time.Millisecond)
	io.WriteString(p, "st: x\r\nConnection: close\r\n\r\n")
	if b := readToClose(t, p); !bytes.HasSuffix(b, []byte("\r\n\r\nfast")) {
		t.Fatalf("a request in two parts: %q", b)
	}

	// Pipelined: answered in order.
	if r, _ := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n", 2, "GET"); r[0].path != "fast" || r[1].path != "fast" {
		t.Fatalf("pipelined requests: %+v", r)
	}

	// Declined by the fast path: net/http answers.
	d := dialSend(t, addr, "GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if b := readToClose(t, d); !bytes.Contains(b, []byte("X-Path: slow")) || !bytes.HasSuffix(b, []byte("slow GET /other")) {
		t.Fatalf("a request the fast path declines: %q", b)
	}
	if n := inlineServed.Load() - before; n != 0 {
		t.Errorf("served inline %d times, want none of these", n)
	}
}

// slowForward answers /slow after a second and /f at once, as an app
// would.
type slowForward struct{}

func (slowForward) ForwardFast(req *ForwardRequest) (ForwardAnswer, any, bool) {
	if string(req.Target) == "/slow" {
		time.Sleep(time.Second)
	}
	return ForwardAnswer{Status: 200, Header: []byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"), Body: []byte("app")}, nil, true
}

// TestInlineNotForApps: an app's child answers nothing on the accepting
// goroutine, whose next accept would wait for the app: a request behind
// a slow one is answered at once.
func TestInlineNotForApps(t *testing.T) {
	rt, addr, events, _ := modelRuntime(t, ModelEvent, 4)
	rt.Forward = slowForward{}
	deferAccepts(t, rt)
	serveForTest(t, rt, events, slowHandler)
	slow := dialSend(t, addr, "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if b := readToClose(t, dialSend(t, addr, "GET /f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); !bytes.HasSuffix(b, []byte("\r\n\r\napp")) {
		t.Fatalf("the request behind a slow one: %q", b)
	} else if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("the request behind a slow one took %v: the accepting goroutine waited for the app", took)
	}
	if b := readToClose(t, slow); !bytes.HasSuffix(b, []byte("\r\n\r\napp")) {
		t.Fatalf("the slow request: %q", b)
	}
}
