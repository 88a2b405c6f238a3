package childrt

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

// Ambiguous framing. RFC 9112 section 6.3 asks a server that receives a
// request with both Content-Length and Transfer-Encoding to close the
// connection after responding (whichever framing it used, an intermediary
// may have used the other, and what it took for the next request is part
// of this one's body), and section 6.1 asks the same of an HTTP/1.0
// request with Transfer-Encoding. net/http does neither: it drops
// Content-Length in favour of chunked and keeps the connection, ignores
// Transfer-Encoding on HTTP/1.0 and keeps a keep-alive connection, and by
// the time a handler runs it has removed both headers from the request, so
// no handler can tell.
//
// So every connection net/http serves reads through a framingConn, which
// looks at the bytes on their way in: in each run of non-empty lines (a
// request's header block is one) it notes a line starting
// "Transfer-Encoding:" and one starting "Content-Length:" or ending
// " HTTP/1.0", and once a run holds Transfer-Encoding with either, it
// marks the connection. The scored handler then answers with "Connection:
// close", and net/http closes after the response, as Apache does. A run of
// lines is a header block or a piece of a body; a body that looks like such
// a header can only make the connection close early, which is always
// allowed, and a real header block is never missed, since its lines are
// never merged with others but at its start (the request line, which may
// follow a body that does not end in a newline). Apache likewise closes
// after Content-Length with Transfer-Encoding.
//
// The fast path never answers such a request: it hands anything with
// Content-Length or Transfer-Encoding to net/http, with the bytes it read,
// which then pass through the framingConn too.

// framingConn is a connection net/http serves, with the scan of what it
// reads.
type framingConn struct {
	net.Conn
	scan framingScan // touched by Read only: net/http reads one at a time
	bad  atomic.Bool // a request's framing was ambiguous: close after the response
}

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.bad.Load() && c.scan.feed(p[:n]) {
		c.bad.Store(true)
	}
	return n, err
}

// ReadFrom keeps the connection's own ReadFrom (sendfile) for net/http's
// response bodies, when it has one.
func (c *framingConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite sends the peer a FIN through the connection below, which
// net/http does after an answer it closes on with a request body unread
// (closeWriteAndWait): see closeWrite.
func (c *framingConn) CloseWrite() error { return closeWrite(c.Conn) }

// closeWrite shuts c's sending side down (a FIN) when c, or the connection
// it wraps, can (a TCP socket); it does nothing otherwise. net/http
// finds CloseWrite by a type assertion on the connection it serves: each
// wrapper between it and the socket must pass it on, or an answer closed
// on with a request body unread (413 for a body over the limit) goes
// without a FIN, and the close that follows half a second later, with the
// body still coming, resets the connection: a client still sending could
// lose the answer.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// framingListener hands net/http its connections as framingConns; a TLS
// connection it hands as it is, since net/http must see the *tls.Conn to
// shake hands and to speak HTTP/2 (and the ConnectionState of one the fast
// path hands over, tlsReplayConn, to set Request.TLS), and the bytes a
// framingConn would see below a *tls.Conn are ciphertext. (HTTP/2 has no such ambiguity; HTTP/1.1 over
// TLS goes without the check.)
type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

// wrap is c as net/http gets it.
func (framingListener) wrap(c net.Conn) net.Conn {
	switch c.(type) {
	case *tls.Conn, *tlsReplayConn:
		return c
	}
	return &framingConn{Conn: c}
}

type framingKey struct{}

// ambiguousFraming reports whether r came on a connection on which a
// request was framed ambiguously (see framingConn).
func ambiguousFraming(r *http.Request) bool {
	c, _ := r.Context().Value(framingKey{}).(*framingConn)
	return c != nil && c.bad.Load()
}

// withFramingConn puts c, if it is a framingConn, into ctx.
func withFramingConn(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, framingKey{}, fc)
	}
	return ctx
}

// Names of the header lines framingScan looks for, lower-cased, and the
// request line's end it looks for.
const (
	teLine   = "transfer-encoding:"
	clLine   = "content-length:"
	http10   = " http/1.0"
	headKeep = len(teLine) // the longest prefix kept of a line
	tailKeep = len(http10) + 1
)

// framingScan follows a byte stream line by line, keeping of the current
// line its length, its first headKeep bytes lower-cased and its last
// tailKeep bytes, and of the current run of non-empty lines what it held.
type framingScan struct {
	n          int // bytes of the current line so far
	head       [headKeep]byte
	tail       [tailKeep]byte
	te, cl, v0 bool // the run has Transfer-Encoding, Content-Length, an HTTP/1.0 request line
}

// feed scans b, the next bytes of the stream, and reports whether a run of
// lines framed a request ambiguously.
func (s *framingScan) feed(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i]
		}
		s.add(seg)
		if i < 0 {
			return false
		}
		b = b[i+1:]
		if s.endLine() {
			return true
		}
	}
	return false
}

// add appends seg, a piece of the current line, to what is kept of it.
func (s *framingScan) add(seg []byte) {
	for k := s.n; k < headKeep && k-s.n < len(seg); k++ {
		c := seg[k-s.n]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		s.head[k] = c
	}
	if len(seg) >= tailKeep {
		copy(s.tail[:], seg[len(seg)-tailKeep:])
	} else if len(seg) > 0 {
		copy(s.tail[:], s.tail[len(seg):])
		copy(s.tail[tailKeep-len(seg):], seg)
	}
	s.n += len(seg)
}

// endLine ends the current line and reports whether its run of lines is
// now ambiguous framing.
func (s *framingScan) endLine() bool {
	n := s.n
	s.n = 0
	line := s.tail[:]
	if n > 0 && line[tailKeep-1] == '\r' {
		n--
		line = line[:tailKeep-1]
	}
	if n == 0 { // an empty line ends the run
		s.te, s.cl, s.v0 = false, false, false
		return false
	}
	head := s.head[:min(n, headKeep)]
	switch {
	case string(head) == teLine:
		s.te = true
	case bytes.HasPrefix(head, []byte(clLine)):
		s.cl = true
	case n >= len(http10) && bytes.EqualFold(line[len(line)-len(http10):], []byte(http10)):
		s.v0 = true
	}
	return s.te && (s.cl || s.v0)
}
