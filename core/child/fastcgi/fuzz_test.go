package fastcgi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/phasedhq/phased/core/child/internal/testkit"
)

// pipeConn is a net.Conn whose peer sent reply and then closed, and that
// swallows what is written to it.
type pipeConn struct{ r *bytes.Reader }

func (c *pipeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *pipeConn) Close() error                     { return nil }
func (c *pipeConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }
func (c *pipeConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }

// fuzzReplies are server answers to start from: good ones and broken ones.
func fuzzReplies() [][]byte {
	return [][]byte{
		okResponse,
		stdout("Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n<h1>no</h1>"),
		stdout("Location: /x\n\n"),
		append(rec(typeStderr, "warn\n"), stdout("Content-Type: a/b\r\n\r\nbody")...),
		append(appendRecord(nil, typeUnknownType, 0, make([]byte, 8)), okResponse...),
		endRequest(1, statusOverloaded),
		{1, typeStdout, 0, 1, 0xff, 0xff, 0xff, 0},
		{1, typeEndRequest, 0, 1, 0, 2, 0, 0, 0, 0},
		[]byte("HTTP/1.1 200 OK\r\n\r\n"),
		{},
	}
}

// FuzzResponse feeds arbitrary bytes, as a FastCGI server's answer, to the
// client and to the whole handler: neither may panic (but for the abort
// that cuts a client's connection), hang, or answer with a status that is
// not a final one.
func FuzzResponse(f *testing.F) {
	for _, r := range fuzzReplies() {
		f.Add(r, false)
	}
	root := testkit.Site(f)
	f.Fuzz(func(t *testing.T, reply []byte, keep bool) {
		dial := func(context.Context) (net.Conn, error) {
			return &pipeConn{r: bytes.NewReader(reply)}, nil
		}
		c := &Client{Dial: dial, KeepConn: keep}
		if resp, err := c.Do(context.Background(), &Request{Stderr: io.Discard}); err == nil {
			readHead(resp, 1024)
			io.Copy(io.Discard, resp)
			resp.Close()
		}
		c.Close()

		h, err := New(Options{Dial: dial, Root: root, KeepConn: keep, MaxHeaderBytes: 1024, Logger: discardLog})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		serveAbortable(h, w, httptest.NewRequest("GET", "/index.php/x", nil))
		if w.Code < 200 || w.Code > 599 {
			t.Fatalf("status %d", w.Code)
		}
		if w.Code == 200 && w.Body.Len() > len(reply) {
			t.Fatalf("a body of %d bytes out of %d", w.Body.Len(), len(reply))
		}
		h.Close()
	})
}

// serveAbortable serves r, recovering the http.ErrAbortHandler panic that
// net/http turns into a cut connection, and only that.
func serveAbortable(h http.Handler, w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); !ok || !errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
		}
	}()
	h.ServeHTTP(w, r)
}

// FuzzHead feeds arbitrary bytes, in reads of arbitrary sizes, to the CGI
// header block parser: it may not panic, read past its bound, or return a
// status or header that net/http could not send.
func FuzzHead(f *testing.F) {
	for _, s := range []string{
		"Content-Type: text/html\r\n\r\nbody", "Status: 200\n\n", "Location: /x\r\n\r\n",
		"Status: 99 x\r\n\r\n", "\r\n", "A:\n\n", "a b: c\r\n\r\n", "X: \x00\r\n\r\n",
		"Content-Length: 12345678901234567890\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		const max = 512
		lr := &io.LimitedReader{R: &chunkReader{b: in, n: int(chunk)%64 + 1}, N: 1 << 30}
		h, rest, err := readHead(lr, max)
		if read := 1<<30 - lr.N; read > max {
			t.Fatalf("read %d bytes for a bound of %d", read, max)
		}
		if err != nil {
			return
		}
		if h.status < 200 || h.status > 599 {
			t.Fatalf("status %d", h.status)
		}
		if len(rest) > len(in) {
			t.Fatalf("rest of %d bytes", len(rest))
		}
		for k, vv := range h.header {
			if !validName([]byte(k)) || hopByHop[k] || k == "Status" {
				t.Fatalf("header name %q", k)
			}
			for _, v := range vv {
				if !validValue([]byte(v)) {
					t.Fatalf("header value %q", v)
				}
			}
		}
	})
}

// chunkReader returns b in reads of at most n bytes.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// FuzzPairs feeds arbitrary bytes to the name-value pair decoder: it may
// not panic, and what it decodes encodes back to the same bytes.
func FuzzPairs(f *testing.F) {
	for _, b := range [][]byte{
		{1, 1, 'a', 'b'}, {0x80, 0, 0, 1, 0, 'x'}, {0xff, 0xff, 0xff, 0xff, 0}, {3, 0, 'F', 'O', 'O'}, {},
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := parsePairs(b)
		if err != nil {
			return
		}
		var again []byte
		for _, p := range ps {
			again = appendPair(again, p)
		}
		back, err := parsePairs(again)
		if err != nil || len(back) != len(ps) {
			t.Fatalf("%d pairs, then %d: %v", len(ps), len(back), err)
		}
		for i := range ps {
			if back[i] != ps[i] {
				t.Fatalf("pair %d changed", i)
			}
		}
	})
}
