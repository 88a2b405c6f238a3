package apps

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// proxyThreads is threads_per_child of the proxy tests' one worker child.
const proxyThreads = 4

// TestHTTPAppProxy runs one master with one worker child of proxyThreads
// threads whose app server is testdata/httpapp (a node server), and checks
// through it what a child does between clients and its app: forwarding,
// streaming, upgrades, slow clients, concurrency, and the app in the
// status.
func TestHTTPAppProxy(t *testing.T) {
	app := nodeApp(t, nil, "  max_body_size: 6M\n  body_buffer_size: 64K\n  response_buffer_size: 256K\n")
	s := e2e.StartServer(t, fmt.Sprintf(`mpm:
  name: worker
  start_servers: 1
  server_limit: 1
  threads_per_child: %d
  min_spare_threads: 1
  max_spare_threads: 8
  max_request_workers: %d
`, proxyThreads, proxyThreads)+app)
	t.Run("Forwarding", func(t *testing.T) { testForwarding(t, s) })
	t.Run("RequestIDs", func(t *testing.T) { testRequestIDs(t, s) })
	t.Run("RequestBodies", func(t *testing.T) { testRequestBodies(t, s) })
	t.Run("Trailers", func(t *testing.T) { testTrailers(t, s) })
	t.Run("ExpectContinue", func(t *testing.T) { testExpectContinue(t, s) })
	t.Run("TooLarge", func(t *testing.T) { testTooLarge(t, s) })
	t.Run("LargeBodies", func(t *testing.T) { testLargeBodies(t, s) })
	t.Run("Streaming", func(t *testing.T) { testStreaming(t, s) })
	t.Run("Upgrade", func(t *testing.T) { testUpgrade(t, s) })
	t.Run("SlowClientBody", func(t *testing.T) { testSlowClientBody(t, s) })
	t.Run("SlowClientReader", func(t *testing.T) { testSlowClientReader(t, s) })
	t.Run("WorkerConcurrency", func(t *testing.T) { testWorkerConcurrency(t, s) })
	t.Run("Status", func(t *testing.T) { testAppStatus(t, s) })
}

// testForwarding: each method reaches the app with the client's path,
// query and Host, the X-Forwarded-* headers phased sets (a client's own
// X-Forwarded-For is not believed), and none of the hop-by-hop headers.
func testForwarding(t *testing.T, s *e2e.Server) {
	const target = "/echo/a%2Fb/c%20d?q=1&q=two&e=%C3%A9"
	for _, method := range []string{"GET", "POST", "PUT", "DELETE"} {
		c := dial(t, s)
		body := ""
		if method == "POST" || method == "PUT" {
			body = "the body of a " + method
		}
		c.send(fmt.Sprintf("%s %s HTTP/1.1\nHost: app.example:8080\nContent-Length: %d\n"+
			"Connection: X-Hop, keep-alive\nX-Hop: secret\nKeep-Alive: timeout=5\nTE: gzip, trailers\n"+
			"Proxy-Connection: keep-alive\nUpgrade: h2c\nX-Forwarded-For: 203.0.113.9\nX-End-To-End: kept\n\n%s",
			method, target, len(body), body))
		e := c.echo()
		c.Close()
		if e.Method != method || e.URL != target {
			t.Errorf("%s %s reached the app as %s %s", method, target, e.Method, e.URL)
		}
		want := map[string]string{
			"host": "app.example:8080", "x-forwarded-for": "127.0.0.1", "x-forwarded-host": "app.example:8080",
			"x-forwarded-proto": "http", "te": "trailers", "x-end-to-end": "kept",
		}
		for k, v := range want {
			if e.Headers[k] != v {
				t.Errorf("%s: the app saw %s: %q, want %q", method, k, e.Headers[k], v)
			}
		}
		for _, hop := range []string{"x-hop", "keep-alive", "proxy-connection", "upgrade"} {
			if v, ok := e.Headers[hop]; ok {
				t.Errorf("%s: the hop-by-hop header %s: %q reached the app", method, hop, v)
			}
		}
		if conn := e.Headers["connection"]; strings.Contains(strings.ToLower(conn), "x-hop") {
			t.Errorf("%s: the app saw Connection: %q", method, conn)
		}
		if e.BodyLength != int64(len(body)) || e.BodySha256 != sha([]byte(body)) {
			t.Errorf("%s: the app got a body of %d bytes, want %q", method, e.BodyLength, body)
		}
	}
}

// oneShot is a client that closes each connection after its request: a
// kept-alive one would hold one of the child's few threads.
var oneShot = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// testRequestIDs: every request reaches the app with an X-Request-Id: the
// client's when it is a sane one, else one phased makes, new each time.
func testRequestIDs(t *testing.T, s *e2e.Server) {
	id := func(header string) string {
		c := dial(t, s)
		defer c.Close() // a worker thread each while open
		c.send("GET /echo HTTP/1.1\nHost: x\n" + header + "\n")
		return c.echo().Headers["x-request-id"]
	}
	a, b := id(""), id("")
	if !generatedID.MatchString(a) || !generatedID.MatchString(b) || a == b {
		t.Errorf("requests without an id reached the app with %q and %q; want two different generated ids", a, b)
	}
	if got := id("X-Request-Id: req-42_a.b:c\n"); got != "req-42_a.b:c" {
		t.Errorf("a client's valid X-Request-Id reached the app as %q", got)
	}
	for _, bad := range []string{"<script>alert(1)</script>", "two words", strings.Repeat("x", 200)} {
		if got := id("X-Request-Id: " + bad + "\n"); !generatedID.MatchString(got) {
			t.Errorf("a client's invalid X-Request-Id %q reached the app as %q; want a generated one", bad, got)
		}
	}
}

// testRequestBodies: a chunked request body reaches the app whole, with a
// Content-Length.
func testRequestBodies(t *testing.T, s *e2e.Server) {
	c := dial(t, s)
	c.send("POST /echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n5\nhello\n6\n world\n0\n\n")
	e := c.echo()
	if e.Headers["content-length"] != "11" || e.Headers["transfer-encoding"] != "" || e.BodySha256 != sha([]byte("hello world")) {
		t.Errorf("a chunked body reached the app with content-length %q, transfer-encoding %q, %d bytes",
			e.Headers["content-length"], e.Headers["transfer-encoding"], e.BodyLength)
	}
}

// testTrailers: a request's trailers reach the app, and a response's
// trailers reach the client.
func testTrailers(t *testing.T, s *e2e.Server) {
	c := dial(t, s)
	c.send("POST /echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nTrailer: X-Digest\n\n5\nhello\n0\nX-Digest: abc123\n\n")
	if e := c.echo(); e.Trailers["x-digest"] != "abc123" || e.BodySha256 != sha([]byte("hello")) {
		t.Errorf("request trailers: the app saw trailers %v and %d bytes", e.Trailers, e.BodyLength)
	}

	c = dial(t, s)
	c.send("GET /trailers HTTP/1.1\nHost: x\nTE: trailers\n\n")
	resp, body := c.response("GET")
	if want := sha(body); resp.StatusCode != 200 || string(body) != "first part, second part" || resp.Trailer.Get("X-Checksum") != want {
		t.Errorf("response trailers: %s %q, trailers %v; want X-Checksum %s", resp.Status, body, resp.Trailer, want)
	}
}

// readInterim reads one status line and its headers (a 100 Continue, or
// the head of a final response).
func readInterim(t *testing.T, c *raw) (string, textproto.MIMEHeader) {
	t.Helper()
	tp := textproto.NewReader(c.br)
	line, err := tp.ReadLine()
	if err != nil {
		t.Fatalf("reading a status line: %v", err)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("reading headers after %q: %v", line, err)
	}
	return line, h
}

// testExpectContinue: phased answers Expect: 100-continue itself, then
// forwards the whole body; the app (which answers 417 to any Expect) never
// sees the expectation.
func testExpectContinue(t *testing.T, s *e2e.Server) {
	c := dial(t, s)
	c.send("POST /echo?tag=expect HTTP/1.1\nHost: x\nContent-Length: 11\nExpect: 100-continue\n\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, _ := readInterim(t, c); line != "HTTP/1.1 100 Continue" {
		t.Fatalf("after Expect: 100-continue phased said %q, want 100 Continue first", line)
	}
	c.sendBytes([]byte("hello world"))
	e := c.echo()
	if e.BodySha256 != sha([]byte("hello world")) || e.Headers["expect"] != "" {
		t.Errorf("after 100 Continue the app saw %d bytes and Expect %q", e.BodyLength, e.Headers["expect"])
	}
	if seen := stats(t, s).Seen; slices.Contains(seen, "expect:/echo?tag=expect") {
		t.Errorf("the app saw the Expect itself: %v", seen)
	}
}

// testTooLarge: a body over app.max_body_size is 413: at once for a
// Content-Length over it (no 100 Continue, no body read), and as soon as a
// chunked body grows past it; neither reaches the app.
func testTooLarge(t *testing.T, s *e2e.Server) {
	const over = 6<<20 + 1
	// With Expect: the first answer is the 413, never a 100 Continue.
	c := dial(t, s)
	c.send(fmt.Sprintf("POST /echo?tag=too-big-expect HTTP/1.1\nHost: x\nContent-Length: %d\nExpect: 100-continue\n\n", over))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, _ := readInterim(t, c); !strings.HasPrefix(line, "HTTP/1.1 413 ") {
		t.Errorf("a Content-Length over max_body_size with Expect: answered %q, want 413 at once", line)
	}
	// Without Expect, and no body sent: phased answers without waiting.
	c = dial(t, s)
	c.send(fmt.Sprintf("POST /echo?tag=too-big HTTP/1.1\nHost: x\nContent-Length: %d\n\n", over))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, _ := c.response("POST"); resp.StatusCode != 413 {
		t.Errorf("a Content-Length over max_body_size answered %s, want 413 before any body", resp.Status)
	}
	// Chunked, growing past the limit: the client writes while it reads.
	c = dial(t, s)
	c.send("POST /echo?tag=too-big-chunked HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n")
	chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 64<<10, bytes.Repeat([]byte("z"), 64<<10)))
	go func() {
		for range over/(64<<10) + 2 {
			if _, err := c.Write(chunk); err != nil {
				return // phased closed the connection after its 413
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != 413 {
		t.Errorf("a chunked body past max_body_size answered %v %v, want 413", resp, err)
	}
	// Sent whole before the client reads, on a connection it asks to
	// close: the 413 every time, never a reset (gateway.TooLarge reads and
	// drops the rest of the body after the answer).
	for i := range 10 {
		req, _ := http.NewRequest("POST", s.URL("/echo?tag=too-big-whole"), bytes.NewReader(make([]byte, over)))
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("body %d over max_body_size sent whole: %v, want 413", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("body %d over max_body_size sent whole: %s, want 413", i, resp.Status)
		}
	}
	seen := stats(t, s).Seen
	for _, tag := range []string{"too-big-expect", "too-big", "too-big-chunked", "too-big-whole"} {
		if slices.Contains(seen, tag) {
			t.Errorf("the app saw the too-large request %s: %v", tag, seen)
		}
	}
}

// bodyTempFiles returns the unlinked request-body files pid holds open.
func bodyTempFiles(pid int) []string {
	var out []string
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil &&
			strings.Contains(l, "/body-") && strings.HasSuffix(l, "(deleted)") {
			out = append(out, l)
		}
	}
	return out
}

// testLargeBodies: a 5 MiB request body, over body_buffer_size and so held
// in a temporary file (seen open in the child while the app holds the
// request), reaches the app byte for byte; a 20 MiB response reaches the
// client byte for byte.
func testLargeBodies(t *testing.T, s *e2e.Server) {
	body := make([]byte, 5<<20)
	rand.Read(body)
	child := e2e.Workers(s.PID())[0]
	done := make(chan struct{})
	var files []string
	go func() {
		defer close(done)
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && len(files) == 0; time.Sleep(5 * time.Millisecond) {
			files = bodyTempFiles(child)
		}
	}()
	resp, err := oneShot.Post(s.URL("/echo?tag=big-body&hold=500"), "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var e echoed
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	<-done
	if err := json.Unmarshal(b, &e); err != nil || e.BodyLength != int64(len(body)) || e.BodySha256 != sha(body) {
		t.Errorf("a 5 MiB body reached the app as %d bytes, sha256 %s; want %d, %s (%v)", e.BodyLength, e.BodySha256, len(body), sha(body), err)
	}
	if len(files) == 0 {
		t.Errorf("the child %d held no request-body temporary file while the app had the 5 MiB request", child)
	}

	const size = 20 << 20
	resp, err = oneShot.Get(s.URL(fmt.Sprintf("/big?size=%d", size)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(got) != size || sha(got) != sha(pattern(size)) || resp.ContentLength != size {
		t.Errorf("a 20 MiB response arrived as %d bytes (Content-Length %d), identical %v, %v", len(got), resp.ContentLength, sha(got) == sha(pattern(size)), err)
	}
}

// arrivals reads a response body and returns its lines and when each
// arrived.
func arrivals(t *testing.T, r io.Reader) (lines []string, at []time.Time) {
	t.Helper()
	br := bufio.NewReaderSize(r, 64)
	for {
		line, err := br.ReadString('\n')
		if strings.TrimSpace(line) != "" {
			lines = append(lines, strings.TrimSpace(line))
			at = append(at, time.Now())
		}
		if err == io.EOF {
			return lines, at
		}
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
	}
}

var writtenAt = regexp.MustCompile(` at (\d+)$`)

// testStreaming: Server-Sent Events, a chunked response and a response
// with a length but X-Accel-Buffering: no, each written by the app a piece
// every 250 ms, reach the client piece by piece: the first arrives before
// the app wrote the last (read whole first, it would arrive after). The
// X-Accel-Buffering header stays between phased and the app.
func testStreaming(t *testing.T, s *e2e.Server) {
	for _, mode := range []string{"sse", "chunked", "accel"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			c := dial(t, s)
			c.send("GET /stream?mode=" + mode + "&n=4&ms=250 HTTP/1.1\nHost: x\n\n")
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%v %v", resp, err)
			}
			lines, at := arrivals(t, resp.Body)
			resp.Body.Close()
			m := writtenAt.FindStringSubmatch(lines[len(lines)-1])
			if len(lines) != 4 || m == nil {
				t.Fatalf("got %q, want 4 pieces", lines)
			}
			last, _ := strconv.ParseInt(m[1], 10, 64)
			if first := at[0].UnixMilli(); first >= last {
				t.Errorf("the first piece arrived at %d, after the app wrote the last at %d: held back, not streamed (%q)", first, last, lines)
			}
			switch mode {
			case "sse":
				if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
					t.Errorf("Content-Type %q", ct)
				}
			case "accel":
				if v, ok := resp.Header["X-Accel-Buffering"]; ok {
					t.Errorf("X-Accel-Buffering %q reached the client", v)
				}
				if resp.ContentLength <= 0 {
					t.Errorf("Content-Length %d, want the app's", resp.ContentLength)
				}
			}
		})
	}
}

// testUpgrade: an Upgrade request gets the app's 101, and then bytes flow
// both ways through phased as they are.
func testUpgrade(t *testing.T, s *e2e.Server) {
	c := dial(t, s)
	c.send("GET /socket HTTP/1.1\nHost: x\nConnection: Upgrade\nUpgrade: echo\n\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	greeting, err := c.br.ReadString('\n')
	if err != nil || greeting != "hello\n" {
		t.Fatalf("after the 101 the app said %q %v", greeting, err)
	}
	payload := make([]byte, 256<<10)
	rand.Read(payload)
	go c.Write(payload)
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c.br, got); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("%d bytes through the upgraded connection came back changed or short: %v", len(payload), err)
	}
}

// testSlowClientBody: a client that sent its headers and half its body and
// stalls holds no app: the app has not seen the request (asked through
// another connection to the same child), and sees it whole once the rest
// arrives.
func testSlowClientBody(t *testing.T, s *e2e.Server) {
	body := make([]byte, 100000)
	rand.Read(body)
	c := dial(t, s)
	c.send(fmt.Sprintf("POST /echo?tag=stalled HTTP/1.1\nHost: x\nContent-Length: %d\n\n", len(body)))
	c.sendBytes(body[:len(body)/2])
	time.Sleep(300 * time.Millisecond)
	if seen := stats(t, s).Seen; slices.Contains(seen, "stalled") {
		t.Fatalf("the app saw a request whose body is half sent: %v", seen)
	}
	c.sendBytes(body[len(body)/2:])
	if e := c.echo(); e.BodyLength != int64(len(body)) || e.BodySha256 != sha(body) {
		t.Errorf("the stalled request reached the app with %d bytes, want all %d", e.BodyLength, len(body))
	}
}

// testSlowClientReader: a client reading a 10 MiB response 1 KiB at a time
// (with a small receive buffer) holds no app: the app's response has
// finished ('finish') while the client has read only 1 MiB of it, long
// before the client's end.
func testSlowClientReader(t *testing.T, s *e2e.Server) {
	const size = 10 << 20
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10) })
	}}
	conn, err := d.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(conn, "GET /big?size=%d&tag=slow-reader HTTP/1.1\r\nHost: x\r\n\r\n", size)
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1<<10), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var finished int64
	reads := 0
	buf := make([]byte, 1<<10)
	got := make([]byte, 0, size)
	for {
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if len(got) >= 1<<20 && finished == 0 {
			// The client stalls here, 9 MiB short: the app must be done.
			for deadline := time.Now().Add(5 * time.Second); finished == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				finished = stats(t, s).Finished["slow-reader"]
			}
			if finished == 0 {
				t.Fatalf("the client has read %d of %d bytes and the app's response has not finished", len(got), size)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		if reads++; reads%8 == 0 {
			time.Sleep(time.Millisecond) // 10 MiB in 1.3 s or more
		}
	}
	end := time.Now().UnixMilli()
	if len(got) != size || sha(got) != sha(pattern(size)) {
		t.Fatalf("the slow reader got %d bytes, identical: %v", len(got), sha(got) == sha(pattern(size)))
	}
	if end-finished < 500 {
		t.Errorf("the app finished at %d, the client at %d: the app waited for the client", finished, end)
	}
	t.Logf("the app finished its 10 MiB response %d ms before the slow client did", end-finished)
}

// testWorkerConcurrency: under the worker MPM with threads_per_child N, N
// requests reach one app process at once, and no more: N+2 slow requests
// at once, and the app counted exactly N in flight at its busiest.
func testWorkerConcurrency(t *testing.T, s *e2e.Server) {
	var reqs []<-chan error
	for range proxyThreads + 2 {
		// Each is held until N were in the app at once (or 5 s), then
		// 500 ms more: time for one more to come in, were it let in.
		reqs = append(reqs, inFlight(s, fmt.Sprintf("/hold?group=worker&until=%d&ms=500", proxyThreads)))
	}
	for _, r := range reqs {
		if err := <-r; err != nil {
			t.Errorf("a slow request failed: %v", err)
		}
	}
	if got := stats(t, s).Max["worker"]; got != proxyThreads {
		t.Errorf("with threads_per_child %d, %d slow requests at once: at most %d were in the app at once, want %d",
			proxyThreads, proxyThreads+2, got, proxyThreads)
	}
}

// testAppStatus: phased status and the status page show the child's app
// server, its pid and memory.
func testAppStatus(t *testing.T, s *e2e.Server) {
	app := stats(t, s).PID
	kids := appStatus(t, s)
	if len(kids) != 1 || kids[0].AppPID != app || kids[0].AppBytes < 1<<20 {
		t.Errorf("phased status --json lists %+v; want the one child with app pid %d and its memory", kids, app)
	}
	code, out, _ := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "status")
	if code != 0 || !strings.Contains(out, "APP PID") || !regexp.MustCompile(`(?m)^`+strconv.Itoa(kids[0].PID)+` .* `+strconv.Itoa(app)+` +\d+\.\dM$`).MatchString(out) {
		t.Errorf("phased status does not show app pid %d and its memory:\n%s", app, out)
	}
	code, body, err := e2e.Get(s.URL("/server-status?json"))
	var page struct {
		Children []struct {
			PID      int   `json:"pid"`
			AppPID   int   `json:"app_pid"`
			AppBytes int64 `json:"app_memory_bytes"`
		} `json:"children"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil {
		t.Fatalf("/server-status?json: %d %v", code, err)
	}
	found := false
	for _, p := range page.Children {
		found = found || p.AppPID == app && p.AppBytes >= 1<<20 && p.PID == kids[0].PID
	}
	if !found {
		t.Errorf("/server-status?json children %+v: want child %d with app pid %d and its memory", page.Children, kids[0].PID, app)
	}
	code, html, _ := e2e.Get(s.URL("/server-status"))
	if code != 200 || !strings.Contains(html, ">"+strconv.Itoa(app)+"<") {
		t.Errorf("the status page does not show app pid %d", app)
	}
}
