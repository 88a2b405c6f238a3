package skeleton

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// answer is one response read off a raw connection.
type answer struct {
	code  int
	close bool
	hdr   http.Header
	body  string
}

// exchange sends raw on a new connection to addr and reads responses until
// the child closes it (closed) or stays silent for two seconds.
func exchange(t *testing.T, addr, method, raw string) (as []answer, closed bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return as, true
		case errors.Is(err, os.ErrDeadlineExceeded):
			return as, false
		case err != nil:
			t.Fatalf("%q: after %d responses: %v", raw, len(as), err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%q: body: %v", raw, err)
		}
		as = append(as, answer{resp.StatusCode, resp.Close, resp.Header, string(b)})
	}
}

// TestAmbiguousFramingClosesTheConnection sends a real child, over raw TCP,
// requests whose framing RFC 9112 calls ambiguous: Content-Length with
// Transfer-Encoding (6.3), and Transfer-Encoding on HTTP/1.0 (6.1). Each is
// answered with "Connection: close" and the connection closed, so the
// request hidden behind it is never served; a plain chunked request keeps
// its connection.
func TestAmbiguousFramingClosesTheConnection(t *testing.T) {
	s := e2e.StartServer(t, "")
	const smuggled = "GET /hello.txt?smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tt := range []struct{ name, raw string }{
		{"content-length and transfer-encoding",
			"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + smuggled},
		{"transfer-encoding and content-length",
			"GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled},
		{"HTTP/1.0 keep-alive with transfer-encoding",
			"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"after a request of the fast path",
			"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
	} {
		as, closed := exchange(t, s.Addr, "GET", tt.raw)
		if !closed || len(as) == 0 || !as[len(as)-1].close {
			t.Errorf("%s: %d answers %+v, closed %v: want the last with Connection: close, then the close", tt.name, len(as), as, closed)
		}
		if len(as) > 2 || strings.Contains(tt.raw, "HTTP/1.0") && len(as) != 1 {
			t.Errorf("%s: %d answers: the request behind it was served", tt.name, len(as))
		}
	}
	as, closed := exchange(t, s.Addr, "GET", "GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+smuggled)
	if closed || len(as) != 2 || as[0].close || as[1].body != "hello\n" {
		t.Errorf("plain chunked: %+v, closed %v; want two answers on an open connection", as, closed)
	}
}

// TestRangesLikeApache sends a real child Range headers over raw TCP: an
// empty suffix is 416, overlapping and adjacent ranges are merged, and too
// many ranges (Apache's MaxRanges, 200), too many merges or ranges that add
// up to more than the file get the whole file once, with 200, never an
// amplified multipart body.
func TestRangesLikeApache(t *testing.T) {
	body := strings.Repeat("0123456789", 100)
	s := e2e.StartServer(t, "", func(dir string) { e2e.WriteFile(t, dir, "public/k.txt", body) })
	get := func(path, rng string) answer {
		t.Helper()
		as, _ := exchange(t, s.Addr, "GET", fmt.Sprintf("GET %s HTTP/1.1\r\nHost: x\r\nRange: %s\r\nConnection: close\r\n\r\n", path, rng))
		if len(as) != 1 {
			t.Fatalf("Range %.60q: %d answers", rng, len(as))
		}
		return as[0]
	}
	spread := func(n int) string {
		var parts []string
		for i := range n {
			parts = append(parts, fmt.Sprintf("%d-%d", 2*i, 2*i))
		}
		return "bytes=" + strings.Join(parts, ",")
	}
	for _, path := range []string{"/hello.txt", "/k.txt"} { // from memory, and a file the cache also holds
		size := len(body)
		if path == "/hello.txt" {
			size = len("hello\n")
		}
		if a := get(path, "bytes=-0"); a.code != 416 || a.hdr.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("%s bytes=-0: %d %q, want 416 bytes */%d", path, a.code, a.hdr.Get("Content-Range"), size)
		}
		if a := get(path, "bytes="+strings.Repeat("0-0,", 999)+"0-0"); a.code != 200 || len(a.body) != size {
			t.Errorf("%s 1,000 one-byte ranges: %d, %d bytes; want 200 and the file once", path, a.code, len(a.body))
		}
		if a := get(path, "bytes=0-1,2-3,1-2"); a.code != 206 || a.body != body[:4] && a.body != "hell" || a.hdr.Get("Content-Range") != fmt.Sprintf("bytes 0-3/%d", size) {
			t.Errorf("%s adjacent and overlapping: %d %q %q, want 206 of bytes 0-3", path, a.code, a.hdr.Get("Content-Range"), a.body)
		}
	}
	if a := get("/k.txt", spread(201)); a.code != 200 || a.body != body {
		t.Errorf("201 ranges: %d, %d bytes; want 200 and the file once", a.code, len(a.body))
	}
	if a := get("/k.txt", spread(200)); a.code != 206 || strings.Count(a.body, "Content-Range: bytes ") != 200 {
		t.Errorf("200 ranges: %d with %d parts, want 206 with 200", a.code, strings.Count(a.body, "Content-Range: bytes "))
	}
}
