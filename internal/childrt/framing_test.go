package childrt

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// Requests for the framing tests: a plain GET the fast path answers, one
// with Content-Length and Transfer-Encoding, an HTTP/1.0 keep-alive one
// with Transfer-Encoding, a chunked one and one with a Content-Length.
const (
	getA      = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	clteReq   = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	te10Req   = "POST /x HTTP/1.0\r\nConnection: keep-alive\r\ntransfer-ENCODING:chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	chunkReq  = "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	clReq     = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
	smuggledA = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
)

func TestFramingScan(t *testing.T) {
	for _, tt := range []struct {
		name, stream string
		bad          bool
	}{
		{"plain", getA + getA, false},
		{"chunked", chunkReq + getA, false},
		{"content-length", clReq + getA, false},
		{"content-length then chunked", clReq + chunkReq, false},
		{"both", getA + clteReq + getA, true},
		{"both, bare LFs", strings.ReplaceAll(clteReq, "\r\n", "\n"), true},
		{"te first", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX: y\r\ncontent-length: 5\r\n\r\n", true},
		{"HTTP/1.0 with transfer-encoding", te10Req, true},
		{"HTTP/1.0 after a body with no newline", clReq + strings.TrimPrefix(te10Req, "POST"), true},
		{"HTTP/1.0 without", "GET / HTTP/1.0\r\nContent-Length: 0\r\n\r\n" + chunkReq, false},
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

// answersThenClose sends raw on a new connection, reads n responses, and
// reports whether the server then closes the connection (rather than
// waiting, a second, for more).
func answersThenClose(t *testing.T, addr, raw string, n int) ([]reply, bool) {
	t.Helper()
	c := dialSend(t, addr, raw)
	br := bufio.NewReader(c)
	rs := readReplies(t, c, br, n, "POST")
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := br.ReadByte()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after %d responses: %v", n, err)
	}
	return rs, errors.Is(err, io.EOF)
}

// TestAmbiguousFramingCloses: a request with both Content-Length and
// Transfer-Encoding, or an HTTP/1.0 request with Transfer-Encoding, is
// answered with "Connection: close" and the connection closed after it
// (RFC 9112 6.1 and 6.3), on the fast path's connections and on net/http's
// alone; what follows on the connection is never read as a request.
func TestAmbiguousFramingCloses(t *testing.T) {
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
				{"content-length and transfer-encoding", clteReq + smuggledA, 1},
				{"HTTP/1.0 with transfer-encoding", te10Req + smuggledA, 1},
				{"after a plain request", getA + clteReq + smuggledA, pipelined},
			} {
				rs, closed := answersThenClose(t, addr, tt.raw, tt.answers)
				if !closed || !rs[len(rs)-1].close || rs[len(rs)-1].code != 200 {
					t.Errorf("%s: %+v, then closed %v; want %d answers, the last 200 with Connection: close, then the close", tt.name, rs, closed, tt.answers)
				}
				for _, r := range rs {
					if strings.Contains(r.body, "smuggled") {
						t.Errorf("%s: the bytes after the request were served as one: %+v", tt.name, r)
					}
				}
			}
			// Plain chunked keeps the connection.
			if rs, closed := answersThenClose(t, addr, chunkReq+smuggledA, 2); closed || rs[0].close || rs[1].close {
				t.Errorf("chunked: %+v, closed %v; want two answers on a connection kept open", rs, closed)
			}
		})
	}
}
