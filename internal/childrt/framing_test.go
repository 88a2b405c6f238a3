package childrt

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestFramingScan(t *testing.T) {
	const (
		get   = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
		clte  = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
		te10  = "POST / HTTP/1.0\r\nConnection: keep-alive\r\ntransfer-ENCODING:chunked\r\n\r\n0\r\n\r\n"
		chunk = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"
		cl    = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
	)
	for _, tt := range []struct {
		name, stream string
		bad          bool
	}{
		{"plain", get + get, false},
		{"chunked", chunk + get, false},
		{"content-length", cl + get, false},
		{"content-length then chunked", cl + chunk, false},
		{"both", get + clte + get, true},
		{"both, bare LFs", strings.ReplaceAll(clte, "\r\n", "\n"), true},
		{"te first", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX: y\r\ncontent-length: 5\r\n\r\n", true},
		{"HTTP/1.0 with transfer-encoding", te10, true},
		{"HTTP/1.0 after a body with no newline", cl + strings.TrimPrefix(te10, "POST"), true},
		{"HTTP/1.0 without", "GET / HTTP/1.0\r\nContent-Length: 0\r\n\r\n" + chunk, false},
		{"a long header line", "GET / HTTP/1.1\r\nX-Long: " + strings.Repeat("z", 5000) + "\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, and cut at every byte: reads end anywhere.
			var s framingScan
			if got := s.feed([]byte(tt.stream)); got != tt.bad {
				t.Fatalf("whole: %v, want %v", got, tt.bad)
			}
			for cut := 1; cut < len(tt.stream); cut++ {
				var s framingScan
				got := s.feed([]byte(tt.stream[:cut])) || s.feed([]byte(tt.stream[cut:]))
				if got != tt.bad {
					t.Fatalf("cut at %d: %v, want %v", cut, got, tt.bad)
				}
			}
			var s1 framingScan // a byte at a time
			got := false
			for i := range len(tt.stream) {
				got = s1.feed([]byte{tt.stream[i]}) || got
			}
			if got != tt.bad {
				t.Fatalf("byte by byte: %v, want %v", got, tt.bad)
			}
		})
	}
}

// untilClosed sends raw on a new connection and reads responses until the
// server closes it (closed) or stays silent for a second.
func untilClosed(t *testing.T, addr, raw string) (rs []reply, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(br, nil)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return rs, true
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return rs, false
		}
		if err != nil {
			t.Fatalf("after %d responses: %v", len(rs), err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rs = append(rs, reply{resp.StatusCode, resp.Header.Get("X-Path"), string(b), resp.Close, resp.Header})
	}
}

// TestAmbiguousFramingCloses: a request with both Content-Length and
// Transfer-Encoding, or an HTTP/1.0 request with Transfer-Encoding, is
// answered with "Connection: close" and the connection closed after it
// (RFC 9112 6.1 and 6.3), on the fast path's connections and on net/http's
// alone; what follows on the connection is never read as a request.
func TestAmbiguousFramingCloses(t *testing.T) {
	const (
		clte   = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
		te10   = "POST /x HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
		chunk  = "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
		fast   = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
		second = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	)
	for _, withFast := range []bool{true, false} {
		name := "net/http"
		if withFast {
			name = "fast path"
		}
		t.Run(name, func(t *testing.T) {
			rt, addr, events, _ := modelRuntime(t, ModelWorker, 8)
			if withFast {
				rt.Fast = testFast{}
			}
			sigs, done := serveAsync(t, rt, events, slowHandler)
			go func() {
				for events.Scan() {
				}
			}()
			defer func() { sigs <- os.Interrupt; <-done }()
			// A plain request pipelined before an ambiguous one: the fast
			// path answers it and hands the rest to net/http; net/http,
			// having read both headers at once, closes after the first
			// (closing early is always allowed, missing one never is).
			pipelined := 1
			if withFast {
				pipelined = 2
			}
			for _, tt := range []struct {
				name, raw string
				answers   int // responses before the close
			}{
				{"content-length and transfer-encoding", clte + second, 1},
				{"HTTP/1.0 with transfer-encoding", te10 + second, 1},
				{"after a plain request", fast + clte + second, pipelined},
			} {
				rs, closed := untilClosed(t, addr, tt.raw)
				if !closed || len(rs) != tt.answers || !rs[len(rs)-1].close || rs[len(rs)-1].code != 200 {
					t.Errorf("%s: %d responses %+v, closed %v; want %d, the last 200 with Connection: close, then the close", tt.name, len(rs), rs, closed, tt.answers)
				}
				for _, r := range rs {
					if strings.Contains(r.body, "smuggled") {
						t.Errorf("%s: the bytes after the request were served as one: %+v", tt.name, r)
					}
				}
			}
			// Plain chunked keeps the connection.
			if rs, closed := untilClosed(t, addr, chunk+second); closed || len(rs) != 2 || rs[0].close || rs[1].close {
				t.Errorf("chunked: %+v, closed %v; want two answers on a connection kept open", rs, closed)
			}
		})
	}
}
