package childrt

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/phasedhq/phased/internal/sockconn"
)

// The fast path over TLS. A TLS listener of a child with a FastResponder
// is served as a plain one is (fast.go), through the *tls.Conn instead of
// the raw socket: its connection's goroutine shakes hands, bounded as
// net/http bounds it and by the header bound that runs from the accept
// (conns.go); a connection that negotiated a protocol other than HTTP/1.1
// by ALPN goes to phased's HTTP/2 server (h2.go) or, for acme-tls/1, to
// net/http as it is; the others are read with the strict parser and answered from the
// responder's bytes, and anything else goes to net/http with the bytes
// read replayed, as for plain connections. net/http sets Request.TLS from
// a connection that has a ConnectionState method (tlsReplayConn), as from a
// *tls.Conn, so handlers, the status page and the log see the same request.
//
// Go's net/http spends about twice the CPU per keep-alive request of the
// fast path over the same crypto/tls (bench/tls/RESULTS.md).

// fastTLSConn is a TLS connection the fast path serves. It is not a
// *tls.Conn, so that track leaves its header bound to the fast path (as for
// a plain connection), not to net/http's states.
type fastTLSConn struct{ *tls.Conn }

// tlsReplayConn is a TLS connection handed to net/http with the plaintext
// the fast path had read from it and not used. Its ConnectionState
// (promoted) is what net/http sets Request.TLS from.
type tlsReplayConn struct {
	*tls.Conn
	pending []byte
}

func (c *tlsReplayConn) Read(p []byte) (int, error) { return replay(&c.pending, p, c.Conn) }

// fastTLSListener accepts TLS connections for the fast path.
type fastTLSListener struct {
	net.Listener
	cfg *tls.Config
}

func (l fastTLSListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &fastTLSConn{tls.Server(c, l.cfg)}, nil
}

// replayed returns c, from which the fast path read pending and did not
// use it, for net/http.
func replayed(c net.Conn, pending []byte) net.Conn {
	if tc, ok := c.(*fastTLSConn); ok {
		return &tlsReplayConn{Conn: tc.Conn, pending: pending}
	}
	return &replayConn{Conn: c, pending: pending}
}

// startTLS shakes hands on c, a connection of a TLS listener the fast path
// serves. It reports whether the fast path goes on serving c; if not and
// handed is true, c went to net/http; if not and handed is false, c is to be
// closed.
func (s *server) startTLS(c *fastTLSConn) (ok, handed bool) {
	// As net/http: the handshake is bounded by the shortest of the
	// header, read and write timeouts, and (the connection's own bound,
	// conns.go) by the header bound from the accept.
	now := time.Now()
	var by time.Time
	if d := handshakeTimeout(s.timeouts); d > 0 {
		by = now.Add(d)
	}
	if sc := connSlot(c); sc != nil {
		if hb := sc.headerBound(); !hb.IsZero() && (by.IsZero() || hb.Before(by)) {
			by = hb
		}
	}
	if !by.IsZero() {
		if c.SetDeadline(by) != nil {
			return false, false
		}
	}
	if err := c.HandshakeContext(context.Background()); err != nil {
		if re, ok := err.(tls.RecordHeaderError); ok && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			lingerClose(re.Conn)
			return false, false
		}
		s.log.Debug("http: TLS handshake error", "remote", c.RemoteAddr().String(), "err", err)
		lingerClose(c.NetConn())
		return false, false
	}
	if !by.IsZero() {
		// The fast path sets its own deadlines from here on.
		if c.SetDeadline(time.Time{}) != nil {
			return false, false
		}
	}
	if p := c.ConnectionState().NegotiatedProtocol; p == "h2" && s.h2 != nil {
		s.h2.ServeConn(c)
		return false, true
	} else if p != "" && p != "http/1.1" {
		// HTTP/2 (or an ACME challenge): net/http's, as before.
		s.track(c, http.StateActive)
		if !s.handoff.give(c.Conn, c) {
			s.conns.Delete(c)
		}
		return false, true
	}
	return true, false
}

// A refused handshake's lingering close reads and drops what the client
// still sends for lingerTLS at most, up to lingerTLSBytes.
const (
	lingerTLS      = time.Second
	lingerTLSBytes = 64 << 10
)

// lingerClose ends a connection whose last words to the client (a TLS
// alert: "certificate required", "bad certificate"; or the 400 for plain
// HTTP) the client may not have read yet, lingering (sockconn.Linger).
// Closed at once with the client's bytes unread (with TLS 1.3 a client
// sends its request right after its Finished, before it learns of the
// refusal) the socket resets the connection, and a client that meets the
// reset first (curl: "getpeername() failed", exit 55) never reads why it
// was refused. The caller closes c.
func lingerClose(c net.Conn) { sockconn.Linger(c, lingerTLS, lingerTLSBytes) }

// looksLikeHTTP reports whether a TLS record header is the start of an
// HTTP request, as net/http checks.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// handshakeTimeout is net/http's bound on a TLS handshake: the shortest
// positive one of the header, read and write timeouts.
func handshakeTimeout(t Timeouts) time.Duration {
	var d time.Duration
	for _, v := range []time.Duration{t.ReadHeader, t.Read, t.Write} {
		if v > 0 && (d == 0 || v < d) {
			d = v
		}
	}
	return d
}
