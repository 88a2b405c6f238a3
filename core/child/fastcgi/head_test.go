package fastcgi

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadHead(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		status   int
		header   http.Header
		body     string
		bad      bool
	}{
		{name: "plain", in: "Content-Type: text/html\r\n\r\n<p>hi", status: 200,
			header: http.Header{"Content-Type": {"text/html"}}, body: "<p>hi"},
		{name: "LF only", in: "Content-type: text/plain\nX-A:  1 \n\nbody\n\nmore", status: 200,
			header: http.Header{"Content-Type": {"text/plain"}, "X-A": {"1"}}, body: "body\n\nmore"},
		{name: "status", in: "Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope", status: 404,
			header: http.Header{"Content-Type": {"text/plain"}}, body: "nope"},
		{name: "status without reason", in: "Status: 201\r\n\r\n", status: 201, header: http.Header{}},
		{name: "local redirect", in: "Location: /elsewhere\r\n\r\n", status: 302,
			header: http.Header{"Location": {"/elsewhere"}}},
		{name: "absolute redirect", in: "Location: https://example.org/\r\n\r\n", status: 302,
			header: http.Header{"Location": {"https://example.org/"}}},
		{name: "redirect with status", in: "Status: 301 Moved\r\nLocation: /x\r\n\r\n", status: 301,
			header: http.Header{"Location": {"/x"}}},
		{name: "repeated header", in: "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n", status: 200,
			header: http.Header{"Set-Cookie": {"a=1", "b=2"}}},
		{name: "hop-by-hop dropped", in: "Connection: close\r\nTransfer-Encoding: chunked\r\nKeep-Alive: 5\r\nX: y\r\n\r\n", status: 200,
			header: http.Header{"X": {"y"}}},
		{name: "good content length", in: "Content-Length: 3\r\n\r\nabc", status: 200,
			header: http.Header{"Content-Length": {"3"}}, body: "abc"},
		{name: "bad content length dropped", in: "Content-Length: -3\r\n\r\nabc", status: 200, header: http.Header{}, body: "abc"},
		{name: "two content lengths dropped", in: "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabc", status: 200, header: http.Header{}, body: "abc"},
		{name: "empty value", in: "X-Empty:\r\n\r\n", status: 200, header: http.Header{"X-Empty": {""}}},
		{name: "empty block", in: "\r\nbody", bad: true},
		{name: "empty response", in: "", bad: true},
		{name: "no end of block", in: "Content-Type: text/plain\r\n", bad: true},
		{name: "no colon", in: "Content-Type text/plain\r\n\r\n", bad: true},
		{name: "space in name", in: "Content Type: text/plain\r\n\r\n", bad: true},
		{name: "folded line", in: "X: a\r\n b\r\n\r\n", bad: true},
		{name: "control in value", in: "X: a\x01b\r\n\r\n", bad: true},
		{name: "CR in value", in: "X: a\rb\r\n\r\n", bad: true},
		{name: "bad status", in: "Status: abc\r\n\r\n", bad: true},
		{name: "short status", in: "Status: 20\r\n\r\n", bad: true},
		{name: "status 1xx", in: "Status: 100 Continue\r\n\r\n", bad: true},
		{name: "status 600", in: "Status: 600\r\n\r\n", bad: true},
		{name: "status glued", in: "Status: 2000\r\n\r\n", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time, so that the block is found across reads.
			h, rest, err := readHead(iotest.OneByteReader(strings.NewReader(tc.in)), DefaultMaxHeaderBytes)
			if tc.bad {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("err %v, want a protocol error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.status != tc.status {
				t.Errorf("status %d, want %d", h.status, tc.status)
			}
			if len(h.header) != len(tc.header) {
				t.Errorf("header %v, want %v", h.header, tc.header)
			}
			for k, v := range tc.header {
				if strings.Join(h.header[k], "|") != strings.Join(v, "|") {
					t.Errorf("%s: %q, want %q", k, h.header[k], v)
				}
			}
			// rest is what was read past the block: with one byte a read,
			// nothing; the body is what the reader still has.
			if len(rest) != 0 {
				t.Errorf("read past the block: %q", rest)
			}
		})
	}
}

// TestReadHeadRest: what the reads brought past the header block is
// returned as the start of the body.
func TestReadHeadRest(t *testing.T) {
	h, rest, err := readHead(strings.NewReader("A: b\n\nthe body"), 1024)
	if err != nil || h.status != 200 || string(rest) != "the body" {
		t.Fatalf("%+v, %q, %v", h, rest, err)
	}
}

// TestReadHeadBound: a header block past the bound is refused having read
// no more than the bound, however the bytes come.
func TestReadHeadBound(t *testing.T) {
	const max = 1024
	block := strings.Repeat("X-Pad: "+strings.Repeat("a", 60)+"\r\n", 40) + "\r\n"
	for _, in := range []string{block, strings.Repeat("a", 5000), strings.Repeat("\r", 5000)} {
		lr := &io.LimitedReader{R: strings.NewReader(in), N: 1 << 30}
		_, _, err := readHead(lr, max)
		if !errors.Is(err, errHeadTooLarge) {
			t.Fatalf("err %v", err)
		}
		if read := 1<<30 - lr.N; read > max {
			t.Fatalf("read %d bytes for a bound of %d", read, max)
		}
	}
	// Exactly at the bound is fine.
	at := strings.Repeat("a", max-len("X: \r\n\r\n"))
	if _, _, err := readHead(strings.NewReader("X: "+at+"\r\n\r\n"), max); err != nil {
		t.Fatalf("block of exactly %d bytes: %v", max, err)
	}
	// Too many lines, within the bytes.
	many := strings.Repeat("A: b\n", maxHeaderLines+1) + "\n"
	if _, _, err := readHead(strings.NewReader(many), DefaultMaxHeaderBytes); !errors.Is(err, ErrProtocol) {
		t.Fatalf("%d lines: %v", maxHeaderLines+1, err)
	}
}
