package childrt

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/phasedhq/phased/internal/accesslog"
	"github.com/phasedhq/phased/internal/clientip"
	"github.com/phasedhq/phased/internal/httpdate"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// FastResponder is what a handler offers to answer the plainest requests
// without net/http: a GET or HEAD of a path, with no body, no Range and no
// condition. phased's static handler implements it for the small files it
// holds in memory.
//
// ServeFast is called with the request's path (only characters that need
// no percent-decoding; the query, if any, is not part of it). It returns
// the header block of a 200 response, each line ending in CRLF, without
// Date and Connection (the child adds those), and the body; or ok false,
// and the request goes to the http.Handler as any other. Both slices must
// stay unchanged for as long as anybody may hold them: the child writes
// them out after ServeFast returns. path is valid only during the call.
type FastResponder interface {
	ServeFast(path string) (header, body []byte, ok bool)
}

// FastFiles is the files in front of an app (Runtime.Files, with
// Runtime.Forward), as Passenger serves an app's public folder: LookupFast
// answers a path they hold as ServeFast does (ok), or says the path names
// nothing of theirs and goes to the app (app), or neither, and net/http
// serves the request.
type FastFiles interface {
	LookupFast(path string) (header, body []byte, ok, app bool)
}

// The fast path. When Runtime.Fast is set and there is no access log, the
// child accepts connections itself instead of handing them to http.Server,
// and reads their requests with a strict parser that understands only the
// plainest requests: GET or HEAD, an origin-form target made of characters
// that need no decoding, HTTP/1.1 with one Host or HTTP/1.0, and headers
// that are well-formed and ask for nothing a static 200 would ignore (no
// Content-Length, Transfer-Encoding, Expect, Upgrade, Range or If-*). Such
// a request whose path the FastResponder answers is answered from the
// bytes it returns; responses to pipelined requests go out in one write.
//
// Anything else, from the first request that does not qualify on, is the
// business of net/http: the connection, with the bytes already read, is
// handed over to the child's http.Server through an in-memory listener and
// stays there. So an odd or hostile request meets net/http's parser, never
// a reduced one, and everything the fast path leaves out (status page,
// metrics, error pages, ranges, conditionals, large files) works as before.
//
// Connection states, the scoreboard, counters, slots and the drain work as
// for http.Server: the connection is tracked New, Active and Idle; a
// draining child answers with "Connection: close" and closes; idle
// connections are closed after the quiet period; the timeouts are the
// server's (read_header for a request's header, idle between requests,
// write for each response); the access log gets the same line as from
// net/http.

const (
	fastBufSize   = 8 << 10  // a request header longer than this goes to net/http
	fastOutFlush  = 64 << 10 // pipelined responses are written out past this
	fastMaxTarget = 2048     // a longer request target goes to net/http
)

// fastBufs recycles the read and write buffers of fast connections.
var fastBufs = sync.Pool{New: func() any { b := make([]byte, 0, fastBufSize); return &b }}

// fastRequest is a parsed request the fast path may answer.
type fastRequest struct {
	head   bool
	target []byte // path and query, as sent
	path   []byte // target up to "?"
	header []byte // the header lines, each with its CRLF
	host   []byte // the Host header's value; nil: none
	proto  string
	hosts  int  // Host fields seen
	close  bool // answer with Connection: close and close
	keep10 bool // HTTP/1.0 with Connection: keep-alive

	// For the access log: the Referer and User-Agent values, if sent.
	referer, agent       []byte
	hasReferer, hasAgent bool

	// The headers in which a trusted proxy names the client
	// (internal/clientip), if sent; fwdTwice: one of them came twice.
	xff, forwarded, xRealIP []byte
	fwdTwice                bool
}

// fwdValue returns the value of header (one of clientip's), or nil.
func (req *fastRequest) fwdValue(header string) []byte {
	switch header {
	case clientip.XForwardedFor:
		return req.xff
	case clientip.Forwarded:
		return req.forwarded
	case clientip.XRealIP:
		return req.xRealIP
	}
	return nil
}

// parse results besides a complete request.
const (
	parseMore    = 0  // the header is not complete yet
	parseHandoff = -1 // net/http must read this request
)

// parseFast parses the request at the start of b. It returns the request
// and its length in bytes, or parseMore, or parseHandoff.
func parseFast(b []byte, req *fastRequest) int {
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		if len(b) >= fastBufSize || bytes.Contains(b, lflf) {
			return parseHandoff // too long, or lines ending in a bare LF
		}
		if nl := bytes.IndexByte(b, '\n'); nl >= 0 && !parseRequestLine(b[:nl+1], req) {
			// A request line the fast path would not answer (one
			// net/http answers 400, as "GARBAGE"): net/http reads it
			// now, not when the header ends, which may be never.
			return parseHandoff
		}
		return parseMore
	}
	hdr := b[:end+2] // every line with its CRLF
	*req = fastRequest{}
	nl := bytes.IndexByte(hdr, '\n')
	if !parseRequestLine(hdr[:nl+1], req) {
		return parseHandoff
	}

	// Header lines.
	req.header = hdr[nl+1:]
	for rest := hdr[nl+1:]; len(rest) > 0; {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 1 || rest[nl-1] != '\r' {
			return parseHandoff // a bare LF
		}
		line := rest[:nl-1]
		rest = rest[nl+1:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return parseHandoff // no name, a folded line, or no colon
		}
		name := line[:colon]
		for _, c := range name {
			if !tokenChar[c] {
				return parseHandoff
			}
		}
		value := bytes.Trim(line[colon+1:], " \t")
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return parseHandoff
			}
		}
		if !req.field(name, value) {
			return parseHandoff
		}
	}
	if req.hosts > 1 || req.hosts == 0 && req.proto == "HTTP/1.1" {
		return parseHandoff // net/http answers 400
	}
	if req.proto == "HTTP/1.0" && !req.keep10 {
		req.close = true
	}
	return end + 4
}

// field takes one header field of a request into req, by the fast path's
// rules (shared by HTTP/1 and HTTP/2: h2.go); false when the fast path
// leaves the request to net/http (or, over HTTP/2, to the handler).
func (req *fastRequest) field(name, value []byte) bool {
	switch {
	case asciiEqualFold(name, "host"):
		req.hosts++
		req.host = value
		for _, c := range value {
			if !hostChar[c] {
				return false
			}
		}
	case asciiEqualFold(name, "connection"):
		for _, tok := range bytes.Split(value, []byte(",")) {
			tok = bytes.Trim(tok, " \t")
			switch {
			case asciiEqualFold(tok, "close"):
				req.close = true
			case asciiEqualFold(tok, "keep-alive"):
				req.keep10 = true
			}
		}
	case asciiEqualFold(name, "referer"):
		if req.hasReferer {
			return false // the log would join the values
		}
		req.referer, req.hasReferer = value, true
	case asciiEqualFold(name, "user-agent"):
		if req.hasAgent {
			return false
		}
		req.agent, req.hasAgent = value, true
	case asciiEqualFold(name, "x-forwarded-for"):
		req.fwdTwice = req.fwdTwice || req.xff != nil
		req.xff = value
	case asciiEqualFold(name, "forwarded"):
		req.fwdTwice = req.fwdTwice || req.forwarded != nil
		req.forwarded = value
	case asciiEqualFold(name, "x-real-ip"):
		req.fwdTwice = req.fwdTwice || req.xRealIP != nil
		req.xRealIP = value
	case asciiEqualFold(name, "content-length"), asciiEqualFold(name, "transfer-encoding"),
		asciiEqualFold(name, "expect"), asciiEqualFold(name, "upgrade"),
		asciiEqualFold(name, "range"), hasPrefixFold(name, "if-"),
		asciiEqualFold(name, "authorization"): // the log would name the user
		return false
	}
	return true
}

// parseRequestLine parses line, a request line with its line end, into req;
// false if the fast path does not answer it.
func parseRequestLine(line []byte, req *fastRequest) bool {
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line = line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		req.head = true
		line = line[5:]
	default:
		return false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp > fastMaxTarget {
		return false
	}
	req.target = line[:sp]
	var ok bool
	if req.path, ok = targetPath(req.target); !ok {
		return false
	}
	switch string(line[sp+1:]) {
	case "HTTP/1.1\r\n":
		req.proto = "HTTP/1.1"
	case "HTTP/1.0\r\n":
		req.proto = "HTTP/1.0"
	default:
		return false
	}

	return true
}

// targetPath returns the path of an origin-form request target the fast
// path answers (the query is not the responder's); false for any other.
func targetPath(target []byte) ([]byte, bool) {
	if len(target) == 0 || target[0] != '/' {
		return nil, false
	}
	path := target
	for i, c := range target {
		if targetChar[c] {
			continue
		}
		if c == '?' && len(path) == len(target) {
			path = target[:i]
			continue
		}
		return nil, false // "%", "#", a second "?", a space...
	}
	return path, true
}

var (
	crlfcrlf = []byte("\r\n\r\n")
	lflf     = []byte("\n\n")
)

// Character classes of the strict parser.
var targetChar, tokenChar, hostChar [256]bool

func init() {
	for c := 'a'; c <= 'z'; c++ {
		targetChar[c], tokenChar[c], hostChar[c] = true, true, true
		targetChar[c-32], tokenChar[c-32], hostChar[c-32] = true, true, true
	}
	for c := '0'; c <= '9'; c++ {
		targetChar[c], tokenChar[c], hostChar[c] = true, true, true
	}
	// RFC 3986 unreserved, sub-delims, ":" "@" "/"; not "%", "?" or "#".
	for _, c := range "-._~!$&'()*+,;=:@/" {
		targetChar[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		tokenChar[c] = true
	}
	for _, c := range "-._:[]" {
		hostChar[c] = true
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != s[i]|0x20 {
			return false
		}
	}
	return true
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && asciiEqualFold(b[:len(prefix)], prefix)
}

// bstr views b as a string for the length of a call that does not keep it.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// handoff is the in-memory listener through which the fast path gives
// connections to net/http.
type handoff struct {
	conns  chan handed
	done   chan struct{}
	once   sync.Once
	addr   net.Addr
	closed atomic.Bool
}

// handed is a connection on its way to net/http, and the connection the
// fast path tracked it as.
type handed struct{ c, tracked net.Conn }

func newHandoff(addr net.Addr) *handoff {
	return &handoff{conns: make(chan handed), done: make(chan struct{}), addr: addr}
}

func (h *handoff) Close() error {
	h.once.Do(func() { h.closed.Store(true); close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }

// give hands c, tracked as tracked until now, to net/http, whose listener
// takes over the tracking; if the server is gone, it closes c and reports
// false, and tracked is still the caller's.
func (h *handoff) give(c, tracked net.Conn) bool {
	select {
	case h.conns <- handed{c, tracked}:
		return true
	case <-h.done:
		c.Close()
		return false
	}
}

// handoffListener is the listener net/http serves the handed connections
// from. It tracks each as net/http will (framingListener's wrapping, state
// New) before it lets go of the connection the fast path tracked, so that
// a drain counting connections never sees neither: the fast path used to
// untrack its connection when give returned, and net/http tracked the
// new one only once Accept had returned, and a drain tick in between
// found no connection and let the child exit with a request unread.
type handoffListener struct{ s *server }

func (l handoffListener) Accept() (net.Conn, error) {
	h := l.s.handoff
	select {
	case p := <-h.conns:
		c := framingListener{}.wrap(p.c)
		l.s.track(c, http.StateNew)
		l.s.conns.Delete(p.tracked)
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (l handoffListener) Close() error   { return l.s.handoff.Close() }
func (l handoffListener) Addr() net.Addr { return l.s.handoff.Addr() }

// replayConn is a connection handed to net/http with the bytes the fast
// path had read from it and not used.
type replayConn struct {
	net.Conn
	pending []byte
	carry   any // a FastForwarder's, for the first request (FastCarried)
}

func (c *replayConn) Read(p []byte) (int, error) { return replay(&c.pending, p, c.Conn) }

// CloseWrite passes net/http's half-close on (closeWrite).
func (c *replayConn) CloseWrite() error { return closeWrite(c.Conn) }

// replay reads into p what is left of pending, or, once none is, from r.
func replay(pending *[]byte, p []byte, r io.Reader) (int, error) {
	if len(*pending) > 0 {
		n := copy(p, *pending)
		*pending = (*pending)[n:]
		return n, nil
	}
	return r.Read(p)
}

// slot returns the slotConn under c, if any.
func connSlot(c net.Conn) *slotConn {
	switch c := c.(type) {
	case *slotConn:
		return c
	case *replayConn:
		return connSlot(c.Conn)
	case *proxyConn:
		return connSlot(c.Conn)
	case *tls.Conn:
		return connSlot(c.NetConn())
	case *fastTLSConn:
		return connSlot(c.NetConn())
	case *tlsReplayConn:
		return connSlot(c.NetConn())
	case *framingConn:
		return connSlot(c.Conn)
	case *lingerConn:
		return connSlot(c.Conn)
	}
	return nil
}

// acceptFast accepts on ln and serves each connection on the fast path
// until ln is closed.
func (s *server) acceptFast(ln net.Listener) error {
	growStack() // before Accept's deep frames (stack.go)
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.isDraining() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of descriptors and the like: as http.Server, back off.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		// Tracked before the goroutine starts, as http.Server does: a
		// drain that counts connections must not miss one just accepted.
		s.track(c, http.StateNew)
		inp, done := s.serveInline(c)
		if !done {
			go s.serveFast(c, inp, nil)
		}
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// serveFast serves connection c on the fast path while its requests
// qualify, then hands it to net/http. inp, if not nil, is a read buffer
// from fastBufs holding what serveInline read from c; carry, if not nil,
// is what serveInline left of a request it answered.
func (s *server) serveFast(c net.Conn, inp *[]byte, carry *fastCarry) {
	growStack() // once, before the serving frames (stack.go)
	// The write buffer is held only while there are responses to write:
	// an idle keep-alive connection holds its read buffer alone.
	if inp == nil {
		inp = fastBufs.Get().(*[]byte)
		*inp = (*inp)[:0]
	}
	in := *inp
	var outp *[]byte
	var out []byte
	getOut := func() {
		if outp == nil {
			outp = fastBufs.Get().(*[]byte)
			out = (*outp)[:0]
		}
	}
	putOut := func() {
		if outp != nil {
			*outp = out[:0]
			fastBufs.Put(outp)
			outp, out = nil, nil
		}
	}
	handed := false
	defer func() {
		if v := recover(); v != nil {
			// As net/http does for a handler: log, and close this
			// connection only.
			s.log.Error("panic serving a request; connection closed", "remote", c.RemoteAddr().String(), "panic", v, "stack", string(debug.Stack()))
		}
		if !handed {
			// Closed, then untracked, as net/http does: a drain that
			// waits for the connections to go does not return while
			// Close still updates the scoreboard.
			c.Close()
			s.track(c, http.StateClosed)
		}
		*inp = in[:0]
		fastBufs.Put(inp)
		putOut()
	}()
	if tc, ok := c.(*fastTLSConn); ok {
		// The handshake (tlsfast.go); h2 goes to net/http.
		ok, handed = s.startTLS(tc)
		if !ok {
			return
		}
	}
	to := s.timeouts
	sock := c // what raw system calls may read and write
	if pc, ok := c.(*proxyConn); ok {
		// The PROXY header first; what came after it in the same read
		// is the start of the first request.
		if pc.handshake() != nil {
			return
		}
		in = append(in, pc.buffered()...)
		sock = pc.Conn
	}
	// The fast path reads and writes with raw system calls (rawio.go).
	var (
		rd io.Reader = c
		wr io.Writer = c
	)
	raw := false
	if rawIOEnabled {
		if r := newRawIO(sock); r != nil {
			rd, wr, raw = r, r, true
		}
	}
	cl := s.fastPeer(c)
	sc := connSlot(c) // nil only without slots: the bounds are the fast path's own
	var (
		req      fastRequest
		fwdCarry any // a FastForwarder's, for net/http's first request
		first    = carry == nil
		now      = time.Now() // the clock, read once per read and once per request
		reqStart time.Time    // when the pending request's first bytes came; zero if none
		dl       deadlines
	)
	if carry != nil && carry.outp != nil {
		// The end of serveInline's response first.
		ok := s.flush(c, wr, carry.rest, &dl, carry.at)
		*carry.outp = (*carry.outp)[:0]
		fastBufs.Put(carry.outp)
		if !ok {
			return
		}
		s.idle(c, carry.at)
	}
	for {
		// Answer every complete request in the buffer.
		for len(in) > 0 {
			n := parseFast(in, &req)
			if n == parseMore {
				if reqStart.IsZero() {
					reqStart = now
				}
				break
			}
			// A request whose client a trusted proxy names twice goes
			// to net/http, which reads every line of the header.
			ok := n != parseHandoff && !s.status.Serves(bstr(req.path)) && !(cl.trusted && req.fwdTwice)
			if ok && sc != nil {
				sc.headerIn()
			}
			switch {
			case ok && s.health.serves(bstr(req.path)):
				getOut()
				s.track(c, http.StateActive)
				client, _ := cl.of(s, &req)
				out = s.answerHealth(out, &req, client, now)
			case ok:
				getOut()
				s.track(c, http.StateActive)
				out, now, ok = s.answerFast(c, out, &req, &cl, now, &fwdCarry)
			}
			if !ok {
				// net/http answers this request and the rest of the
				// connection, from the bytes read so far.
				if s.flush(c, wr, out, &dl, now) {
					// Active, so a drain does not close it as idle, and
					// tracked until net/http has it, so a drain that
					// counts connections does not miss it.
					s.track(c, http.StateActive)
					handed = true
					rc := replayed(c, bytes.Clone(in))
					if r, ok := rc.(*replayConn); ok {
						r.carry = fwdCarry
					}
					if !s.handoff.give(rc, c) {
						s.conns.Delete(c)
					}
				}
				return
			}
			in = in[:copy(in, in[n:])]
			first = false
			reqStart = time.Time{}
			if req.close {
				s.flush(c, wr, out, &dl, now)
				return
			}
			if len(out) >= fastOutFlush {
				if !s.flush(c, wr, out, &dl, now) {
					return
				}
				out = out[:0]
			}
		}
		if len(out) > 0 {
			if !s.flush(c, wr, out, &dl, now) {
				return
			}
			s.idle(c, now)
		}
		putOut()
		// Read more: a new request waits up to idle; a request's header
		// is bounded by the connection (conns.go): read_header from the
		// accept for the first, and the minimum rate.
		var err error
		hb := time.Time{}
		if sc != nil && (first || !reqStart.IsZero()) {
			hb = sc.headerBound()
		}
		switch {
		case !hb.IsZero():
			err = dl.read(c, hb, 0)
		case !reqStart.IsZero():
			err = dl.read(c, reqStart.Add(to.ReadHeader), 0)
		case first:
			err = dl.read(c, now.Add(to.ReadHeader), 0)
		default:
			err = dl.read(c, now.Add(to.Idle), to.Idle/8)
		}
		if err != nil {
			return
		}
		if cap(in)-len(in) < 512 {
			in = append(in, make([]byte, 0, cap(in))...)[:len(in)]
		}
		if sc != nil && raw {
			sc.settle() // rawIO reads the socket, not through sc.Read
		}
		m, err := rd.Read(in[len(in):cap(in)])
		in = in[:len(in)+m]
		if err != nil {
			return
		}
		now = time.Now()
		if sc != nil && raw { // else sc.Read counted them
			sc.headerBytes(m, now)
		}
	}
}

// deadlines are a connection's read and write deadlines as last set. A
// deadline later than the one set by at most slack is not set again: on
// keep-alive connections that spares two timer updates a request, for an
// idle or write bound shorter by at most an eighth (and at most a second).
type deadlines struct {
	readBy, writeBy time.Time
}

const maxDeadlineSlack = time.Second

func (d *deadlines) read(c net.Conn, by time.Time, slack time.Duration) error {
	return rearm(&d.readBy, by, slack, c.SetReadDeadline)
}

func (d *deadlines) write(c net.Conn, by time.Time, slack time.Duration) error {
	return rearm(&d.writeBy, by, slack, c.SetWriteDeadline)
}

func rearm(cur *time.Time, by time.Time, slack time.Duration, set func(time.Time) error) error {
	if by.After(*cur) && by.Sub(*cur) <= min(slack, maxDeadlineSlack) {
		return nil
	}
	*cur = by
	return set(by)
}

// fastClient is who is at the other end of a fast connection: its peer
// (the address a PROXY header gave, on a listener with proxy_protocol),
// and whether the peer is a trusted proxy whose header names the client.
type fastClient struct {
	peer    netip.Addr
	port    uint16
	remote  string // peer:port, for the access log ("" without one)
	trusted bool
	// tls is the connection's TLS state, read once after the handshake,
	// for the json access log only (nil otherwise).
	tls *tls.ConnectionState
}

// fastPeer reads c's peer once, for all its requests.
func (s *server) fastPeer(c net.Conn) fastClient {
	ap := addrPort(c.RemoteAddr())
	cl := fastClient{peer: ap.Addr(), port: ap.Port(), trusted: s.realIP.Trusts(ap.Addr())}
	if s.alog != nil {
		cl.remote = c.RemoteAddr().String()
	}
	if t, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok && s.alogJSON {
		cs := t.ConnectionState()
		cl.tls = &cs
	}
	return cl
}

// of returns the client of req and its address as the access log writes
// it: the peer's, or the one a trusted proxy's header names.
func (cl *fastClient) of(s *server, req *fastRequest) (netip.Addr, string) {
	if !cl.trusted {
		return cl.peer, cl.remote
	}
	v := req.fwdValue(s.realIP.Header())
	if v == nil {
		return cl.peer, cl.remote
	}
	client := s.realIP.Client(cl.peer, []string{bstr(v)})
	remote := cl.remote
	if client != cl.peer && s.alog != nil {
		remote = netip.AddrPortFrom(client, cl.port).String()
	}
	return client, remote
}

// addrPort reads a connection's address; the zero AddrPort when it is not
// an IP address.
func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return netip.AddrPortFrom(ip.Unmap(), uint16(t.Port))
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// idle marks c idle since now, as track does for http.StateIdle.
func (s *server) idle(c net.Conn, now time.Time) {
	if sc := connSlot(c); sc != nil {
		if w := sc.worker(); w != nil {
			w.SetState(scoreboard.KeepAlive)
		}
		sc.responded(now)
	}
	if v, ok := s.conns.Load(c); ok {
		ci := v.(*connInfo)
		ci.since.Store(now.UnixNano())
		ci.state.Store(int32(http.StateIdle))
	}
}

// flush writes out to w (c, or c's socket), bounded by the write timeout;
// it reports success.
func (s *server) flush(c net.Conn, w io.Writer, out []byte, dl *deadlines, now time.Time) bool {
	if len(out) == 0 {
		return true
	}
	if sc := connSlot(c); sc != nil {
		sc.setState(connWriting) // in the event model, no slot held
	}
	if t := s.timeouts.Write; t > 0 {
		if dl.write(c, now.Add(t), t/8) != nil {
			return false
		}
	}
	_, err := w.Write(out)
	return err == nil
}

var (
	status200     = []byte("HTTP/1.1 200 OK\r\n")
	connClose     = []byte("Connection: close\r\n")
	connKeepAlive = []byte("Connection: keep-alive\r\n")
)

// endHeader ends a fast response's header block: Date, the connection's
// fate, the blank line. Whether to close is decided once, here: a
// response that did not say "Connection: close" must not be followed by a
// close, or a client that sends its next request at once loses it.
func (s *server) endHeader(out []byte, req *fastRequest, now time.Time) []byte {
	return s.endHeaderNoDate(append(out, httpdate.Line(now)...), req)
}

// endHeaderNoDate is endHeader for a header that has its Date (an app's).
func (s *server) endHeaderNoDate(out []byte, req *fastRequest) []byte {
	if !req.close && s.isDraining() {
		req.close = true
	}
	switch {
	case req.close:
		out = append(out, connClose...)
	case req.keep10 && req.proto == "HTTP/1.0":
		out = append(out, connKeepAlive...)
	}
	return append(out, '\r', '\n')
}

// answerFast appends the response to req to out, keeping the scoreboard
// and counters as scored does for net/http; it reports false, with out
// unchanged, when the responder declines.
// start is when the request was read; answerFast returns the clock at the
// end of the request.
func (s *server) answerFast(c net.Conn, out []byte, req *fastRequest, cl *fastClient, start time.Time, carry *any) ([]byte, time.Time, bool) {
	x, ok := s.fastStart(c, req, cl, start, carry)
	if !ok {
		return out, start, false
	}
	if s.fwd == nil || x.file {
		out = append(out, status200...)
	}
	out = append(out, x.header...)
	if x.hasDate {
		out = s.endHeaderNoDate(out, req)
	} else {
		out = s.endHeader(out, req, start)
	}
	n := int64(0)
	if !req.head {
		out = append(out, x.body...)
		n = int64(len(x.body))
	}
	end := time.Now()
	s.fastEnd(&x, req, start, end, n)
	return out, end, true
}

// fastExchange is a request the fast path answers, between fastStart and
// fastEnd.
type fastExchange struct {
	slot         int // the event model's slot taken for it, or -1
	ws           *scoreboard.WorkerSlot
	method       string
	remote       string
	header, body []byte
	status       int
	hasDate      bool
	file         bool                 // the files in front of an app answered (Runtime.Files)
	tls          *tls.ConnectionState // the connection's (fastClient.tls)
}

// fastStart takes the request's slot (event) and scoreboard record and asks
// the responder (or the app's forwarder) for the answer; false, with all
// given back, when it declines.
func (s *server) fastStart(c net.Conn, req *fastRequest, cl *fastClient, start time.Time, carry *any) (fastExchange, bool) {
	x := fastExchange{slot: -1, method: "GET", status: http.StatusOK}
	slot := -1
	sc := connSlot(c)
	if sc != nil {
		slot = sc.slot
	}
	if s.cap != nil && s.model == ModelEvent {
		slot = s.requestSlot(sc)
		x.slot = slot
	}
	if req.head {
		x.method = "HEAD"
	}
	var client netip.Addr
	client, x.remote = cl.of(s, req)
	if s.board != nil && slot >= 0 {
		x.ws = s.board.Worker(s.proc, slot)
		x.ws.StartRequest(start, client, x.method, bstr(req.target), req.proto)
	}
	ok, app := false, true
	if s.files != nil {
		x.header, x.body, x.file, app = s.files.LookupFast(bstr(req.path))
		ok = x.file
	}
	if s.fwd != nil && app {
		var ans ForwardAnswer
		ans, *carry, ok = s.forward(c, req, client, cl.trusted)
		x.header, x.body, x.status, x.hasDate = ans.Header, ans.Body, ans.Status, ans.HasDate
	} else if s.fwd == nil {
		x.header, x.body, ok = s.fast.ServeFast(bstr(req.path))
	}
	if !ok {
		// net/http takes the request over: in the event model the slot
		// goes back (net/http's request takes one again) and the
		// connection is pending again meanwhile, or the child would
		// accept another connection on the slot and keep this request
		// waiting inside while a sibling idles; in the others the
		// connection's slot reads it again.
		if sc != nil && s.cap != nil && s.model == ModelEvent {
			sc.repend()
		}
		if x.ws != nil && s.model == ModelEvent {
			x.ws.SetState(scoreboard.Idle)
		} else if x.ws != nil {
			x.ws.SetState(scoreboard.Reading)
		}
		if x.slot >= 0 {
			s.cap.give(x.slot)
		}
		return x, false
	}
	x.tls = cl.tls
	return x, true
}

// fastEnd closes the scoreboard's record of a request fastStart began,
// whose answer sent n body bytes, logs it and gives its slot back.
func (s *server) fastEnd(x *fastExchange, req *fastRequest, start, end time.Time, n int64) {
	if x.ws != nil {
		s.endRequestAt(x.ws, start, end, n)
	}
	if s.alog != nil {
		lr := accesslog.Request{RemoteAddr: x.remote, Received: start, Method: x.method, URI: bstr(req.target),
			Proto: req.proto, Status: x.status, Bytes: n, TLS: x.tls}
		var ref, ua [1]string
		if req.hasReferer {
			ref[0] = bstr(req.referer)
			lr.Referer = ref[:]
		}
		if req.hasAgent {
			ua[0] = bstr(req.agent)
			lr.UserAgent = ua[:]
		}
		if s.alogJSON {
			lr.Duration = end.Sub(start)
		}
		s.alog.Log(&lr)
	}
	if x.slot >= 0 {
		s.cap.give(x.slot)
	}
}
