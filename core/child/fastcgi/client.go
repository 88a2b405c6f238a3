package fastcgi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// ErrConnect is wrapped by the errors of Do and GetValues that come from
// dialing the FastCGI server, along with the dialer's own error.
var ErrConnect = errors.New("connecting to the fastcgi server")

// Defaults of the Client's zero fields.
const (
	// DefaultMaxIdleConns is the number of idle connections kept with
	// KeepConn when Client.MaxIdleConns is 0.
	DefaultMaxIdleConns = 2
	// DefaultIdleTimeout is how long an idle connection is kept when
	// Client.IdleTimeout is 0.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultReadTimeout bounds each wait for the server when
	// Client.ReadTimeout is 0.
	DefaultReadTimeout = 60 * time.Second
	// DefaultSendTimeout bounds each write to the server when
	// Client.SendTimeout is 0.
	DefaultSendTimeout = 60 * time.Second
)

// Client sends requests to one FastCGI server in the responder role, one
// request at a time on each connection (request id 1). Its exported fields
// are set before its first use and not changed after; it is then safe for
// concurrent use.
type Client struct {
	// Dial opens a connection to the server; it must honour ctx. Required.
	Dial func(ctx context.Context) (net.Conn, error)

	// KeepConn asks the server to keep each connection open after a
	// request (FCGI_KEEP_CONN), and keeps up to MaxIdleConns of them for
	// the next requests. A FastCGI server's worker is tied to a connection
	// for as long as it stays open (php-cgi and php-fpm serve one at a
	// time), so every idle connection held here is a worker no one else
	// can use: keep MaxIdleConns below the server's worker count divided by
	// the number of phased children.
	KeepConn bool

	// MaxIdleConns bounds the idle connections kept with KeepConn; 0 means
	// DefaultMaxIdleConns.
	MaxIdleConns int

	// IdleTimeout is how long an idle connection is kept; 0 means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration

	// ReadTimeout bounds each wait for the server's next bytes, as nginx's
	// fastcgi_read_timeout; 0 means DefaultReadTimeout, a negative value
	// none.
	ReadTimeout time.Duration

	// SendTimeout bounds each write of the request to the server; 0 means
	// DefaultSendTimeout, a negative value none.
	SendTimeout time.Duration

	mu     sync.Mutex
	idle   []*conn // most recently used last
	reaper *time.Timer
	closed bool
}

// Request is one FastCGI request in the responder role.
type Request struct {
	// Params are the request's CGI meta-variables.
	Params []Param

	// Stdin is the request body, sent as FCGI_STDIN records as it is read;
	// nil sends none. Its length must be in the CONTENT_LENGTH param.
	Stdin io.Reader

	// Stderr receives the server's FCGI_STDERR stream; nil discards it.
	Stderr io.Writer
}

// Response is the server's answer to a Request: its FCGI_STDOUT stream,
// read as it arrives, with FCGI_STDERR passed on to Request.Stderr on the
// way. It must be closed.
type Response struct {
	c         *Client
	cn        *conn
	stderr    io.Writer
	left      int         // content bytes of the current STDOUT record still to read
	pad       int         // padding bytes after them
	err       error       // sticky: io.EOF after END_REQUEST, or what went wrong
	gotRecord bool        // a record came back
	sent      chan error  // the result of sending the request
	sendErr   error       // that result, when the request was sent at once
	stop      func() bool // stops the context's closing of cn
	closed    bool

	// AppStatus is the application's exit status from END_REQUEST, valid
	// once Read has returned io.EOF.
	AppStatus uint32
}

// Do sends req and waits for the first bytes of the response, returning
// errors that wrap ErrConnect when the server cannot be reached,
// ErrOverloaded or ErrRefused when it declines the request, ErrProtocol
// when it breaks the protocol, and io.ErrUnexpectedEOF when it closes the
// connection before answering. A connection from the idle pool that turns
// out to be closed is replaced once by a new one for a request without a
// body. A request with a body never takes a kept connection: one the
// server closes just as the request arrives (php-cgi's worker at its
// PHP_FCGI_MAX_REQUESTS) could not be retried, as the server may have
// read part of the body and run part of the script; it takes a new one,
// in place of an idle one it closes, so that the connections (each tied
// to a server worker while open) stay as many. Cancelling ctx closes the
// connection.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	for attempt := 0; ; attempt++ {
		cn, reused, err := c.get(ctx, req.Stdin != nil)
		if err != nil {
			return nil, err
		}
		r := c.start(ctx, cn, req)
		err = r.sendErr
		if err == nil {
			err = r.begin()
		}
		if err == nil {
			return r, nil
		}
		r.Close()
		stale := errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
		if !reused || attempt > 0 || r.gotRecord || req.Stdin != nil || !stale || ctx.Err() != nil {
			return nil, err
		}
	}
}

// start sends req on cn: at once when it has no body, else from a goroutine
// so that a server answering before it read the whole body cannot make both
// sides wait on each other.
func (c *Client) start(ctx context.Context, cn *conn, req *Request) *Response {
	cn.ignored = 0
	r := &Response{c: c, cn: cn, stderr: req.Stderr, sent: make(chan error, 1)}
	if r.stderr == nil {
		r.stderr = io.Discard
	}
	r.stop = context.AfterFunc(ctx, func() { cn.nc.Close() })
	var flags byte
	if c.KeepConn {
		flags = flagKeepConn
	}
	if req.Stdin == nil {
		r.sendErr = send(cn, req.Params, nil, flags)
		r.sent <- r.sendErr
	} else {
		go func() { r.sent <- send(cn, req.Params, req.Stdin, flags) }()
	}
	return r
}

// send writes a whole request: BEGIN_REQUEST, the params, and the body as
// STDIN records, each stream closed by an empty record.
func send(cn *conn, params []Param, stdin io.Reader, flags byte) error {
	var pairs []byte
	for _, p := range params {
		if len(p.Name) > maxPairLen || len(p.Value) > maxPairLen {
			return fmt.Errorf("param %.40q too long", p.Name)
		}
		pairs = appendPair(pairs, p)
	}
	b := make([]byte, 0, len(pairs)+len(pairs)/maxContent*headerLen+64)
	b = appendRecord(b, typeBeginRequest, requestID, []byte{0, roleResponder, flags, 0, 0, 0, 0, 0})
	b = appendStream(b, typeParams, requestID, pairs)
	b = appendRecord(b, typeParams, requestID, nil)
	if stdin != nil {
		chunk := make([]byte, maxContent)
		for {
			n, err := io.ReadFull(stdin, chunk)
			if n > 0 {
				if len(b) > 0 && len(b)+n > 2*maxContent {
					if werr := cn.write(b); werr != nil {
						return fmt.Errorf("sending the request: %w", werr)
					}
					b = b[:0]
				}
				b = appendRecord(b, typeStdin, requestID, chunk[:n])
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				return fmt.Errorf("reading the request body: %w", err)
			}
		}
	}
	b = appendRecord(b, typeStdin, requestID, nil)
	if err := cn.write(b); err != nil {
		return fmt.Errorf("sending the request: %w", err)
	}
	return nil
}

// begin reads up to the first STDOUT bytes or the end of the request.
func (r *Response) begin() error {
	for r.left == 0 && r.err == nil {
		r.next()
	}
	if r.err == io.EOF {
		return nil
	}
	return r.err
}

// Read reads the response body: the FCGI_STDOUT stream. It returns io.EOF
// at END_REQUEST when the request completed, and an error wrapping
// ErrOverloaded, ErrRefused, ErrProtocol or io.ErrUnexpectedEOF when it
// did not.
func (r *Response) Read(p []byte) (int, error) {
	for r.left == 0 && r.err == nil {
		r.next()
	}
	if r.left == 0 {
		return 0, r.err
	}
	if len(p) > r.left {
		p = p[:r.left]
	}
	n, err := r.cn.br.Read(p)
	r.left -= n
	if err != nil {
		r.left = 0
		r.err = fmt.Errorf("reading a record: %w", eofIsUnexpected(err))
	}
	return n, nil
}

// buffered reports whether more of the response is already at hand, so
// that the caller need not flush what it has written yet.
func (r *Response) buffered() bool {
	return r.cn.br.Buffered() > r.pad
}

// next reads records until STDOUT content, the end of the request or an
// error, and sets r.left or r.err.
func (r *Response) next() {
	if r.pad > 0 {
		if err := r.cn.discard(r.pad); err != nil {
			r.err = err
			return
		}
		r.pad = 0
	}
	h, err := r.cn.readHeader()
	if err != nil {
		r.err = err
		return
	}
	r.gotRecord = true
	if h.id != requestID {
		r.err = r.cn.skip(h)
		return
	}
	switch h.typ {
	case typeStdout:
		r.left, r.pad = int(h.length), int(h.padding)
	case typeStderr:
		r.err = r.cn.copyTo(r.stderr, int(h.length))
		r.pad = int(h.padding)
	case typeEndRequest:
		r.err = r.end(h)
	default:
		r.err = r.cn.skip(h)
	}
}

// end reads the body of END_REQUEST and returns io.EOF for a completed
// request, or why it was not.
func (r *Response) end(h header) error {
	if h.length < 8 {
		return fmt.Errorf("%w: END_REQUEST of %d bytes", ErrProtocol, h.length)
	}
	var b [8]byte
	if _, err := io.ReadFull(r.cn.br, b[:]); err != nil {
		return fmt.Errorf("reading a record: %w", eofIsUnexpected(err))
	}
	if err := r.cn.discard(int(h.length) - 8 + int(h.padding)); err != nil {
		return err
	}
	r.AppStatus = binary.BigEndian.Uint32(b[:4])
	switch b[4] {
	case statusRequestComplete:
		return io.EOF
	case statusOverloaded:
		return ErrOverloaded
	case statusCantMpxConn:
		return fmt.Errorf("%w: it cannot multiplex connections", ErrRefused)
	case statusUnknownRole:
		return fmt.Errorf("%w: it does not know the responder role", ErrRefused)
	}
	return fmt.Errorf("%w: END_REQUEST protocol status %d", ErrProtocol, b[4])
}

// Close ends the response. With KeepConn, a connection whose request was
// sent and answered to the end goes back to the idle pool; any other is
// closed, as is one that saw a protocol error. It waits for the sending of
// the request to stop.
func (r *Response) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	keep := r.stop() && r.err == io.EOF && r.left == 0 && r.c.KeepConn
	if keep {
		// A server that read the whole request has let the sending finish,
		// or about to; one still sending a body the server did not read
		// fails now, and its connection, out of step, is not kept.
		r.cn.stopWriting()
	} else {
		r.cn.nc.Close()
	}
	if err := <-r.sent; err != nil || !keep {
		return r.cn.close()
	}
	r.c.put(r.cn)
	return nil
}

// get returns an idle connection that is still alive, or a new one; with
// fresh always a new one, in place of an idle one it closes.
func (c *Client) get(ctx context.Context, fresh bool) (*conn, bool, error) {
	for c.KeepConn {
		cn := c.takeIdle()
		if cn == nil {
			break
		}
		if !fresh && cn.alive() {
			return cn, true, nil
		}
		cn.close()
		if fresh {
			break
		}
	}
	if c.Dial == nil {
		return nil, false, fmt.Errorf("%w: no dialer", ErrConnect)
	}
	nc, err := c.Dial(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrConnect, err)
	}
	return newConn(nc, timeout(c.ReadTimeout, DefaultReadTimeout), timeout(c.SendTimeout, DefaultSendTimeout)), false, nil
}

// timeout returns d, def for 0, and 0 (none) for a negative d.
func timeout(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func (c *Client) takeIdle() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle) == 0 {
		return nil
	}
	cn := c.idle[len(c.idle)-1]
	c.idle = c.idle[:len(c.idle)-1]
	return cn
}

// put keeps cn for a later request, or closes it when the pool is full.
func (c *Client) put(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	max := c.MaxIdleConns
	if max <= 0 {
		max = DefaultMaxIdleConns
	}
	if c.closed || len(c.idle) >= max {
		cn.close()
		return
	}
	cn.reset()
	cn.idleSince = time.Now()
	c.idle = append(c.idle, cn)
	if c.reaper == nil {
		c.reaper = time.AfterFunc(c.idleTimeout(), c.reap)
	}
}

func (c *Client) idleTimeout() time.Duration {
	if c.IdleTimeout > 0 {
		return c.IdleTimeout
	}
	return DefaultIdleTimeout
}

// reap closes the connections idle for longer than IdleTimeout, and runs
// again while some are left.
func (c *Client) reap() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reaper = nil
	limit := time.Now().Add(-c.idleTimeout())
	kept := c.idle[:0]
	for _, cn := range c.idle {
		if cn.idleSince.After(limit) {
			kept = append(kept, cn)
		} else {
			cn.close()
		}
	}
	clear(c.idle[len(kept):])
	c.idle = kept
	if len(kept) > 0 && !c.closed {
		c.reaper = time.AfterFunc(time.Until(kept[0].idleSince.Add(c.idleTimeout())), c.reap)
	}
}

// CloseIdleConnections closes the idle connections.
func (c *Client) CloseIdleConnections() { c.closeIdle(false) }

// Close closes the idle connections and keeps none from then on; requests
// under way finish on their connections, which are then closed.
func (c *Client) Close() error {
	c.closeIdle(true)
	return nil
}

func (c *Client) closeIdle(stop bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cn := range c.idle {
		cn.close()
	}
	clear(c.idle)
	c.idle = c.idle[:0]
	if c.reaper != nil {
		c.reaper.Stop()
		c.reaper = nil
	}
	if stop {
		c.closed = true
	}
}

// GetValues asks the server for the values of the named variables with
// FCGI_GET_VALUES on a connection of its own, such as FCGI_MAX_CONNS,
// FCGI_MAX_REQS and FCGI_MPXS_CONNS, and returns those it answered.
func (c *Client) GetValues(ctx context.Context, names ...string) (map[string]string, error) {
	var pairs []byte
	for _, n := range names {
		pairs = appendPair(pairs, Param{Name: n})
	}
	if len(pairs) > maxContent {
		return nil, errors.New("get values: names longer than one record")
	}
	if c.Dial == nil {
		return nil, fmt.Errorf("%w: no dialer", ErrConnect)
	}
	nc, err := c.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnect, err)
	}
	cn := newConn(nc, timeout(c.ReadTimeout, DefaultReadTimeout), timeout(c.SendTimeout, DefaultSendTimeout))
	defer cn.close()
	defer context.AfterFunc(ctx, func() { nc.Close() })()
	if err := cn.write(appendRecord(nil, typeGetValues, 0, pairs)); err != nil {
		return nil, fmt.Errorf("get values: %w", err)
	}
	for {
		h, err := cn.readHeader()
		if err != nil {
			return nil, fmt.Errorf("get values: %w", err)
		}
		if h.typ != typeGetValuesResult || h.id != 0 {
			if err := cn.skip(h); err != nil {
				return nil, fmt.Errorf("get values: %w", err)
			}
			continue
		}
		b := make([]byte, int(h.length)+int(h.padding))
		if _, err := io.ReadFull(cn.br, b); err != nil {
			return nil, fmt.Errorf("get values: reading a record: %w", eofIsUnexpected(err))
		}
		ps, err := parsePairs(b[:h.length])
		if err != nil {
			return nil, fmt.Errorf("get values: %w", err)
		}
		m := make(map[string]string, len(ps))
		for _, p := range ps {
			m[p.Name] = p.Value
		}
		return m, nil
	}
}
