package childrt

import (
	"errors"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"
)

// serveInline answers, on the accepting goroutine itself, the first
// request of a connection when it is already in the socket. A connection
// that asks to close after it (`Connection: close`, HTTP/1.0 without
// keep-alive: what health checkers, scripts and many clients send) then
// costs the child one read, one write and one close, where a goroutine of its own costs a wake-up of another thread
// (futex, a context switch, the scheduler looking for work), a read
// deadline (two timer updates) and a first read that usually finds the
// socket empty and parks in the netpoller: per connection, about as much
// again as the serving itself (bench/compare/RESULTS-connections.md,
// "Connection churn").
//
// A keep-alive connection goes on on a goroutine of its own, waiting for
// its next request, but its first is answered at once: a burst of new
// connections (a thousand clients starting together) is not answered only
// as fast as goroutines get started, and the event model's admission,
// which counts connections whose first request has not taken a slot yet,
// lets the next in at once.
//
// Nothing here ever waits: the read and the write are single non-blocking
// system calls. Any other case (no bytes yet, part of a request, pipelined
// requests, one the fast path does not answer, a TLS or PROXY-protocol
// listener) goes to serveFast on a goroutine of its own, with the bytes
// already read; so does the end of a response the socket did not take at
// once. done reports that c needs nothing more here; otherwise inp (nil or
// a fastBufs buffer holding what was read) goes to serveFast.
func (s *server) serveInline(c net.Conn) (inp *[]byte, done bool) {
	if s.fwd != nil {
		// An app's child: its answer waits for the app, which the
		// accepting goroutine must not.
		return nil, false
	}
	sock, rc := sockOf(c)
	if rc == nil {
		return nil, false
	}
	if _, tcp := sock.RemoteAddr().(*net.TCPAddr); !tcp {
		return nil, false
	}
	sk := rawNow{rc}
	defer func() {
		if v := recover(); v != nil {
			// As serveFast: log, and close this connection only; the
			// accept loop goes on.
			s.log.Error("panic serving a request; connection closed", "remote", c.RemoteAddr().String(), "panic", v, "stack", string(debug.Stack()))
			c.Close()
			s.track(c, http.StateClosed)
			inp, done = nil, true
		}
	}()
	inp = fastBufs.Get().(*[]byte)
	in := (*inp)[:0]
	n, err := sk.ReadNow(in[:cap(in)])
	switch {
	case err == errWouldBlock:
		// Nothing there yet: serveFast waits for it.
		*inp = in
		return inp, false
	case err != nil:
		// The client closed, or reset, before a request: nothing to do.
		*inp = in
		fastBufs.Put(inp)
		c.Close()
		s.track(c, http.StateClosed)
		return nil, true
	}
	in = in[:n]
	*inp = in
	now := time.Now()
	sc := connSlot(c)
	if sc != nil {
		sc.settleRead() // before serveFast's settle, which then sees a second read
		sc.headerBytes(n, now)
	}
	var req fastRequest
	if m := parseFast(in, &req); m != len(in) || s.status.Serves(bstr(req.path)) || s.health.serves(bstr(req.path)) {
		return inp, false
	}
	cl := s.fastPeer(c)
	if cl.trusted && req.fwdTwice {
		return inp, false
	}
	if sc != nil {
		sc.headerIn()
	}
	s.track(c, http.StateActive)
	outp := fastBufs.Get().(*[]byte)
	var fwdCarry any // none: no forwarder here
	out, now, ok := s.answerFast(c, (*outp)[:0], &req, &cl, now, &fwdCarry)
	if !ok {
		// Not the fast path's (a large file, a 404...): serveFast hands
		// it to net/http.
		fastBufs.Put(outp)
		return inp, false
	}
	*inp = in[:0]
	if sc != nil {
		sc.setState(connWriting)
	}
	inlineServed.Add(1)
	w, err := sk.WriteNow(out)
	switch {
	case err == errWouldBlock && !req.close:
		// The connection's goroutine writes the rest, bounded by the
		// write timeout, then waits for the next request.
		go s.serveFast(c, inp, &fastCarry{outp: outp, rest: out[w:], at: now})
		return nil, true
	case err == errWouldBlock:
		// The rest is written on a goroutine, as serveFast writes.
		fastBufs.Put(inp)
		go func() {
			var dl deadlines
			s.flush(c, c, out[w:], &dl, now)
			*outp = out[:0]
			fastBufs.Put(outp)
			c.Close()
			s.track(c, http.StateClosed)
		}()
		return nil, true
	}
	*outp = out[:0]
	fastBufs.Put(outp)
	if err == nil && !req.close {
		// Kept alive: its goroutine waits for the next request, as
		// after any response of serveFast's.
		s.idle(c, now)
		go s.serveFast(c, inp, &fastCarry{at: now})
		return nil, true
	}
	fastBufs.Put(inp)
	c.Close()
	s.track(c, http.StateClosed)
	return nil, true
}

// fastCarry is what serveInline leaves to the goroutine of a connection it
// answered a request of and that stays open: the end of the response the
// socket did not take at once, if any (in outp, a fastBufs buffer), and
// when the response was made.
type fastCarry struct {
	outp *[]byte
	rest []byte
	at   time.Time
}

// errWouldBlock is rawNow's answer when the socket is not ready: nothing
// to read yet, or no room to write.
var errWouldBlock = errors.New("the socket is not ready")

// rawNow reads and writes a connection's non-blocking socket once, through
// its syscall.RawConn's Control: the netpoller is never asked to wait.
type rawNow struct{ rc syscall.RawConn }

func (r rawNow) ReadNow(p []byte) (int, error) {
	x := rawIO{buf: p}
	if err := r.rc.Control(func(fd uintptr) { x.read(fd) }); err != nil {
		return 0, err
	}
	if x.n == 0 && x.err == nil {
		return 0, errWouldBlock
	}
	return x.n, x.err
}

func (r rawNow) WriteNow(p []byte) (int, error) {
	x := rawIO{buf: p}
	if err := r.rc.Control(func(fd uintptr) { x.write(fd) }); err != nil {
		return 0, err
	}
	if x.err == nil && x.n < len(p) {
		return x.n, errWouldBlock
	}
	return x.n, x.err
}

// inlineServed counts the connections serveInline answered (tests).
var inlineServed atomic.Int64
