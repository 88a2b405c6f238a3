package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phasedhq/phased/core/child/internal/gateway"
)

// transport is the RoundTripper to the app: one request at a time per
// connection, written and answered on the handler's own goroutine (an
// http.Transport dials, reads and writes on goroutines of its own, and
// hands the response over between them: on a busy 2-core machine those
// hand-offs cost more than the app's own work for a small answer). Up to
// conns idle connections are kept for apps that keep them (puma, node);
// one taken from the pool is checked without blocking first. A request
// whose connection turns out closed before any answer is sent again on a
// new one when it may be (no body, or one held whole, and an idempotent
// method). Upgrades go to an http.Transport, which hands the connection
// over as the response body.
type transport struct {
	dial    func(ctx context.Context) (net.Conn, error)
	upgrade http.RoundTripper
	idle    chan *appConn
	// readTimeout bounds the wait for an answer's head (0: none).
	readTimeout time.Duration
}

type appConn struct {
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func newTransport(dial func(ctx context.Context) (net.Conn, error), conns int, upgrade http.RoundTripper) *transport {
	return &transport{dial: dial, upgrade: upgrade, idle: make(chan *appConn, conns)}
}

// aLongTimeAgo is a deadline that has passed: it ends a read or write under
// way at once.
var aLongTimeAgo = time.Unix(1, 0)

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Upgrade") != "" {
		return t.upgrade.RoundTrip(req)
	}
	if fc, ok := req.Context().Value(carryKey{}).(*fastCarry); ok {
		// Sent by ForwardFast, which left the answer to be read here.
		if fc.err != nil {
			return nil, fc.err
		}
		resp, err := t.roundTrip(fc.c, req, false)
		if err != nil {
			fc.c.close()
		}
		return resp, err
	}
	for attempt := 0; ; attempt++ {
		c, reused, err := t.get(req.Context())
		if err != nil {
			return nil, err
		}
		resp, err := t.roundTrip(c, req, true)
		if err == nil {
			return resp, nil
		}
		c.close()
		if !reused || attempt > 0 || !replayable(req) || req.Context().Err() != nil {
			return nil, err
		}
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// replayable reports whether req may be sent again after its connection
// broke before any answer.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}

// get returns an idle connection that is still open, or a new one.
func (t *transport) get(ctx context.Context) (*appConn, bool, error) {
	if c := t.takeIdle(); c != nil {
		return c, true, nil
	}
	c, err := t.dialNew(ctx)
	return c, false, err
}

// dialNew returns a new connection.
func (t *transport) dialNew(ctx context.Context) (*appConn, error) {
	nc, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	return newAppConn(nc, nc), nil
}

// takeIdle returns an idle connection that is still open; nil when none
// is.
func (t *transport) takeIdle() *appConn {
	for {
		select {
		case c := <-t.idle:
			if c.br.Buffered() == 0 && gateway.SocketAlive(c.nc) {
				return c
			}
			c.close()
		default:
			return nil
		}
	}
}

// newAppConn is nc with pooled buffers, reading from r (nc, or what came
// already followed by nc).
func newAppConn(nc net.Conn, r io.Reader) *appConn {
	br, bw := readers.Get().(*bufio.Reader), writers.Get().(*bufio.Writer)
	br.Reset(r)
	bw.Reset(nc)
	return &appConn{nc: nc, br: br, bw: bw}
}

// readers and writers are the connections' buffers, pooled: an app that
// closes its connection after each answer (gunicorn's sync workers,
// unicorn) costs no new buffers per request.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
)

// close closes the connection and gives its buffers back.
func (c *appConn) close() {
	c.nc.Close()
	c.putBuffers()
}

// done closes a connection whose answer was read to its end and that
// the app does not keep: a connection of the child's own (sockconn)
// closes in a batch with others a few milliseconds later (CloseSoon),
// which costs less than a close each.
func (c *appConn) done() {
	s, ok := c.nc.(interface{ CloseSoon() })
	if !ok {
		c.close()
		return
	}
	s.CloseSoon()
	c.putBuffers()
}

// putBuffers gives the connection's buffers back to their pools.
func (c *appConn) putBuffers() {
	if c.br != nil {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.bw.Reset(nil)
		writers.Put(c.bw)
		c.br, c.bw = nil, nil
	}
}

// closeIdle closes every idle connection.
func (t *transport) closeIdle() {
	for {
		select {
		case c := <-t.idle:
			c.close()
		default:
			return
		}
	}
}

func (t *transport) put(c *appConn) {
	c.nc.SetDeadline(time.Time{})
	select {
	case t.idle <- c:
	default:
		c.close()
	}
}

// roundTrip writes req on c (unless it was sent already: write false) and
// reads the answer's head; the body is read as the caller reads it, and
// gives the connection back at its end.
func (t *transport) roundTrip(c *appConn, req *http.Request, write bool) (*http.Response, error) {
	ctx := req.Context()
	var (
		mu  sync.Mutex // orders the deadlines: the client's going away wins
		cut atomic.Bool
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		cut.Store(true)
		c.nc.SetDeadline(aLongTimeAgo) // the client went away: end what waits on the app
	})
	fail := func(err error) (*http.Response, error) {
		stop()
		if cut.Load() {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	// The request's body is the child's own (held whole): write it here.
	var werr error
	if write {
		werr = req.Write(c.bw)
		if werr == nil {
			werr = c.bw.Flush()
		}
	}
	// The app has the request: its answer's head must come within
	// readTimeout, and a body that has begun flows unbounded.
	deadline := func(at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if !cut.Load() {
			c.nc.SetReadDeadline(at)
		}
	}
	if t.readTimeout > 0 {
		deadline(time.Now().Add(t.readTimeout))
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			if werr != nil {
				return fail(werr)
			}
			return fail(readTimedOut(err, t.readTimeout))
		}
		if werr != nil {
			// The app answered before it read the whole body (a 413 of
			// its own), then closed: its answer goes to the client.
			resp.Close = true
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx (103 Early Hints): passed on, as http.Transport does.
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
		}
	}
	if t.readTimeout > 0 {
		deadline(time.Time{})
	}
	b := &appBody{ReadCloser: resp.Body, t: t, c: c, stop: stop, keep: !resp.Close && !req.Close, left: resp.ContentLength}
	if resp.Body == http.NoBody || resp.ContentLength == 0 {
		b.eof.Store(true)
	}
	resp.Body = b
	return resp, nil
}

// appBody is an answer's body: read to its end and closed, its connection
// goes back to the pool; closed before, the connection is closed.
type appBody struct {
	io.ReadCloser
	t      *transport
	c      *appConn
	stop   func() bool
	keep   bool
	left   int64       // of a body of known length, what is still to come
	eof    atomic.Bool // read to its end (Close may come from another goroutine)
	closed sync.Once
}

func (b *appBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left > 0 {
		if b.left -= int64(n); b.left == 0 {
			b.eof.Store(true)
		}
	}
	if errors.Is(err, io.EOF) {
		b.eof.Store(true)
	}
	return n, err
}

func (b *appBody) Close() error {
	b.closed.Do(func() {
		if !b.eof.Load() {
			// Not read to its end: the connection cannot serve another
			// request; closing it first keeps the body's Close from
			// reading the rest.
			// Its buffers are not pooled: a read-ahead may still be
			// reading through them (it fails now).
			b.c.nc.Close()
			b.ReadCloser.Close()
			b.stop()
			return
		}
		b.ReadCloser.Close()
		if b.stop() && b.keep {
			b.t.put(b.c)
			return
		}
		b.c.done()
	})
	return nil
}
