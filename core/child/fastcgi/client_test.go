package fastcgi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/core/child/internal/testkit"
)

// TestClientRequest: what the client sends is a well-formed request: the
// params, the body in STDIN records, each record padded.
func TestClientRequest(t *testing.T) {
	s := newFakeServer(t, answer(okResponse))
	c := testClient(s, false)
	body := bytes.Repeat([]byte("0123456789"), 20000) // 200 KB: four STDIN records
	params := []Param{{"A", "1"}, {"LONG", strings.Repeat("x", 70000)}, {"EMPTY", ""}}
	resp, err := c.Do(context.Background(), &Request{Params: params, Stdin: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := readAll(resp)
	if err != nil || string(out) != "Content-Type: text/plain\r\nX-App: 1\r\n\r\nhello" {
		t.Fatalf("response %q, %v", out, err)
	}
	req := s.last()
	if req.flags != 0 || !bytes.Equal(req.stdin, body) {
		t.Fatalf("flags %d, %d bytes of stdin", req.flags, len(req.stdin))
	}
	for _, p := range params {
		if v, ok := req.params[p.Name]; !ok || v != p.Value {
			t.Fatalf("param %s: %d bytes", p.Name, len(v))
		}
	}
}

// TestClientHostile: a server that breaks the protocol gets an error, never
// a panic or a hang, and the connection is not kept.
func TestClientHostile(t *testing.T) {
	hdr := func(typ uint8, id uint16, length uint16, pad uint8) []byte {
		return []byte{1, typ, byte(id >> 8), byte(id), byte(length >> 8), byte(length), pad, 0}
	}
	tests := []struct {
		name  string
		reply []byte
		close bool  // close the connection after the reply
		err   error // wanted from Do or Read
		body  string
	}{
		{name: "garbage", reply: []byte("HTTP/1.1 200 OK\r\n\r\n"), err: ErrProtocol},
		{name: "version 0", reply: append(hdr(typeStdout, 1, 0, 0)[:0:0], 0, 6, 0, 1, 0, 0, 0, 0), err: ErrProtocol},
		{name: "nothing", close: true, err: io.ErrUnexpectedEOF},
		{name: "EOF in a header", reply: []byte{1, 6, 0}, close: true, err: io.ErrUnexpectedEOF},
		{name: "EOF in a record", reply: append(hdr(typeStdout, 1, 100, 0), "only ten b"...), close: true, err: io.ErrUnexpectedEOF, body: "only ten b"},
		{name: "EOF in padding", reply: append(hdr(typeStdout, 1, 1, 7), 'x'), close: true, err: io.ErrUnexpectedEOF, body: "x"},
		{name: "no END_REQUEST", reply: append(rec(typeStdout, "abc"), rec(typeStdout, "")...), close: true, err: io.ErrUnexpectedEOF, body: "abc"},
		{name: "short END_REQUEST", reply: append(rec(typeStdout, "abc"), rec(typeEndRequest, "1234")...), err: ErrProtocol, body: "abc"},
		{name: "EOF in END_REQUEST", reply: append(hdr(typeEndRequest, 1, 8, 0), 0, 0), close: true, err: io.ErrUnexpectedEOF},
		{name: "overloaded", reply: endRequest(0, statusOverloaded), err: ErrOverloaded},
		{name: "cannot multiplex", reply: endRequest(0, statusCantMpxConn), err: ErrRefused},
		{name: "unknown role", reply: endRequest(0, statusUnknownRole), err: ErrRefused},
		{name: "unknown protocol status", reply: endRequest(0, 9), err: ErrProtocol},
		{name: "endless records of no use", reply: bytes.Repeat(append(hdr(99, 1, 65535, 255), make([]byte, 65535+255)...), 20), err: ErrProtocol},
		{name: "endless records of other requests", reply: bytes.Repeat(append(hdr(typeStdout, 7, 65535, 0), make([]byte, 65535)...), 20), err: ErrProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t, func(c net.Conn, _ *fakeRequest) bool {
				c.Write(tc.reply)
				return !tc.close
			})
			c := testClient(s, true)
			c.ReadTimeout = 5 * time.Second
			resp, err := c.Do(context.Background(), &Request{})
			var body []byte
			if err == nil {
				body, err = readAll(resp)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if string(body) != tc.body {
				t.Fatalf("body %q, want %q", body, tc.body)
			}
			if len(c.idle) != 0 {
				t.Fatal("a connection that failed was kept")
			}
		})
	}
}

// TestClientIgnores: records the request does not need (unknown types,
// management records, other request ids) are skipped, and STDERR goes to
// Request.Stderr, never into the body.
func TestClientIgnores(t *testing.T) {
	var reply []byte
	reply = append(reply, appendRecord(nil, typeUnknownType, 0, make([]byte, 8))...)
	reply = append(reply, appendRecord(nil, 200, requestID, []byte("what is this"))...)
	reply = append(reply, appendRecord(nil, typeStdout, 2, []byte("not ours"))...)
	reply = append(reply, rec(typeStderr, "warning: one\n")...)
	reply = append(reply, rec(typeStdout, "Content-Type: text/plain\r\n\r\n")...)
	reply = append(reply, appendRecord(nil, typeGetValuesResult, 0, nil)...)
	reply = append(reply, rec(typeStderr, "warning: two\n")...)
	reply = append(reply, rec(typeData, "data")...)
	reply = append(reply, rec(typeStdout, "body")...)
	reply = append(reply, stdout("")...)
	s := newFakeServer(t, answer(reply))
	var stderr bytes.Buffer
	resp, err := testClient(s, false).Do(context.Background(), &Request{Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	body, err := readAll(resp)
	if err != nil || string(body) != "Content-Type: text/plain\r\n\r\nbody" {
		t.Fatalf("body %q, %v", body, err)
	}
	if stderr.String() != "warning: one\nwarning: two\n" {
		t.Fatalf("stderr %q", stderr.String())
	}
}

// TestClientStderrFlood: megabytes of STDERR are passed through a small
// buffer, not gathered.
func TestClientStderrFlood(t *testing.T) {
	line := strings.Repeat("e", 1000) + "\n"
	flood := appendStream(nil, typeStderr, requestID, []byte(strings.Repeat(line, 10000))) // 10 MB
	s := newFakeServer(t, answer(append(flood, okResponse...)))
	var n countWriter
	resp, err := testClient(s, false).Do(context.Background(), &Request{Stderr: &n})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(resp); err != nil {
		t.Fatal(err)
	}
	if n.n != int64(len(line)*10000) || n.max > 16<<10 {
		t.Fatalf("stderr: %d bytes in writes of up to %d", n.n, n.max)
	}
}

type countWriter struct{ n, max int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	w.max = max(w.max, int64(len(p)))
	return len(p), nil
}

// TestClientKeepConn: with KeepConn, requests without a body share one
// connection; a connection the server closed while idle is replaced
// without an error; a request with a body takes a new connection in place
// of the idle one, which it closes (one connection open at a time here).
func TestClientKeepConn(t *testing.T) {
	var mu sync.Mutex
	served := map[net.Conn]int{}
	s := newFakeServer(t, func(c net.Conn, _ *fakeRequest) bool {
		c.Write(okResponse)
		mu.Lock()
		defer mu.Unlock()
		served[c]++
		return served[c] < 3 // then hang up, as php-cgi does after PHP_FCGI_MAX_REQUESTS
	})
	c := testClient(s, true)
	for i := range 6 {
		var stdin io.Reader
		if i%2 == 1 {
			stdin = strings.NewReader("posted")
		}
		resp, err := c.Do(context.Background(), &Request{Stdin: stdin})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if _, err := readAll(resp); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if i == 2 {
			time.Sleep(50 * time.Millisecond) // let the close arrive
		}
		if s.last().flags != flagKeepConn {
			t.Fatalf("request %d without FCGI_KEEP_CONN", i)
		}
	}
	reqs, conns := s.requests()
	if reqs != 6 || conns != 4 {
		t.Fatalf("%d requests on %d connections, want 6 on 4 (a GET, then a new one for each POST, which the next GET shares)", reqs, conns)
	}
	if n := idleCount(c); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	c.Close()
}

// TestClientStaleRetry: an idle connection that looks alive but was closed
// by the server when the request arrives is retried once on a new one.
func TestClientStaleRetry(t *testing.T) {
	var n atomic.Int32
	s := newFakeServer(t, func(c net.Conn, _ *fakeRequest) bool {
		if n.Add(1) == 2 {
			return false // close without answering the second request
		}
		c.Write(okResponse)
		return true
	})
	c := testClient(s, true)
	for i := range 2 {
		resp, err := c.Do(context.Background(), &Request{})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		readAll(resp)
	}
	if reqs, conns := s.requests(); reqs != 3 || conns != 2 {
		t.Fatalf("%d requests on %d connections, want 3 on 2", reqs, conns)
	}
	// With a body, the same failure is not retried: it may have been
	// read in part.
	resp, err := c.Do(context.Background(), &Request{Stdin: strings.NewReader("x")})
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp)
	n.Store(1)
	_, err = c.Do(context.Background(), &Request{Stdin: strings.NewReader("y")})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v", err)
	}
}

// TestClientPool: at most MaxIdleConns idle connections are kept, and
// they are closed after IdleTimeout.
func TestClientPool(t *testing.T) {
	s := newFakeServer(t, answer(okResponse))
	c := testClient(s, true)
	c.MaxIdleConns = 2
	c.IdleTimeout = 200 * time.Millisecond
	var resps []*Response
	for range 4 {
		resp, err := c.Do(context.Background(), &Request{})
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp)
	}
	for _, r := range resps {
		io.Copy(io.Discard, r)
		r.Close()
	}
	if n := idleCount(c); n != 2 {
		t.Fatalf("%d idle connections, want 2", n)
	}
	time.Sleep(500 * time.Millisecond)
	if n := idleCount(c); n != 0 {
		t.Fatalf("%d idle connections after the idle timeout", n)
	}
}

func idleCount(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle)
}

// TestClientAnswerBeforeBody: a server that answers without reading the
// body does not make the client wait for it, and the connection, whose
// stream is now out of step, is not kept.
func TestClientAnswerBeforeBody(t *testing.T) {
	release := make(chan struct{})
	c := listenOnce(t, func(c net.Conn) {
		var b [512]byte
		c.Read(b[:]) // the start of the request only
		c.Write(okResponse)
		<-release
	})
	t.Cleanup(func() { close(release) })
	c.KeepConn = true
	big := bytes.NewReader(make([]byte, 16<<20))
	start := time.Now()
	resp, err := c.Do(context.Background(), &Request{Stdin: big})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(resp); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("took %v", d)
	}
	if idleCount(c) != 0 {
		t.Fatal("kept a connection with a request body half sent")
	}
}

// TestClientTimeouts: a server that does not answer fails the request
// after ReadTimeout; a cancelled context fails it at once.
func TestClientTimeouts(t *testing.T) {
	release := make(chan struct{})
	s := newFakeServer(t, func(net.Conn, *fakeRequest) bool {
		<-release
		return false
	})
	t.Cleanup(func() { close(release) }) // before the server's own cleanup
	c := testClient(s, false)
	c.ReadTimeout = 100 * time.Millisecond
	start := time.Now()
	_, err := c.Do(context.Background(), &Request{})
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
	c.ReadTimeout = 0
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := c.Do(ctx, &Request{}); err == nil || time.Since(start) > time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

// TestClientDialErrors: failures to connect wrap ErrConnect and the
// dialer's error.
func TestClientDialErrors(t *testing.T) {
	missing := &Client{Dial: func(ctx context.Context) (net.Conn, error) {
		return net.Dial("unix", "/nonexistent/socket")
	}}
	_, err := missing.Do(context.Background(), &Request{})
	if !errors.Is(err, ErrConnect) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("err %v", err)
	}
	if _, err := (&Client{}).Do(context.Background(), &Request{}); !errors.Is(err, ErrConnect) {
		t.Fatalf("no dialer: %v", err)
	}
}

// TestGetValuesHostile: a bad FCGI_GET_VALUES_RESULT is an error.
func TestGetValuesHostile(t *testing.T) {
	for _, reply := range [][]byte{
		appendRecord(nil, typeGetValuesResult, 0, []byte{0x80, 0, 0}),
		appendRecord(nil, typeGetValuesResult, 0, []byte{9, 9, 'a'}),
		{1, typeGetValuesResult, 0, 0, 0, 10},
		[]byte("garbage!"),
	} {
		c := listenOnce(t, func(c net.Conn) {
			var b [64]byte
			c.Read(b[:])
			c.Write(reply)
		})
		if _, err := c.GetValues(context.Background(), "FCGI_MAX_CONNS"); err == nil {
			t.Errorf("reply % x: no error", reply)
		}
	}
}

// listenOnce serves one connection with serve, on a unix socket in the
// test's folder, and returns a client of it.
func listenOnce(t *testing.T, serve func(net.Conn)) *Client {
	t.Helper()
	addr := testkit.ServeUnix(t, "once.sock", func(ln net.Listener) {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	})
	return &Client{Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", addr)
	}}
}

// failingWriter is a connection whose writes fail and whose reads wait.
type failingWriter struct{ net.Conn }

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.EIO }

// TestClientSendError: a request that cannot be sent fails at once with
// why, rather than waiting for an answer that cannot come.
func TestClientSendError(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := &Client{Dial: func(context.Context) (net.Conn, error) { return failingWriter{a}, nil }}
	start := time.Now()
	_, err := c.Do(context.Background(), &Request{})
	if !errors.Is(err, syscall.EIO) || time.Since(start) > time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}
