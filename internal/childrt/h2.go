package childrt

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
	"unsafe"

	"github.com/phasedhq/phased/internal/h2"
)

// HTTP/2 is served by phased's own server (internal/h2), not net/http's:
// the plainest requests (what the HTTP/1 fast path would answer) are
// answered on the connection's goroutine from the responder's bytes, every
// other request runs the child's handler as net/http's would, with the
// same scoreboard, access log, status page and timeouts. The fast path's
// TLS connections come to it from startTLS; the others (children without a
// fast path: CGI, FastCGI, a Go handler of their own) and h2c's (prior
// knowledge, on a listener with h2c) from net/http's TLSNextProto.

// newH2 makes the child's HTTP/2 server.
func (s *server) newH2(r *Runtime) *h2.Server {
	hs := &h2.Server{
		Handler:        s.srv.Handler,
		ConnState:      s.trackH2,
		ConnContext:    connContext,
		Draining:       s.isDraining,
		BaseServer:     s.srv,
		PrefaceTimeout: handshakeTimeout(r.Timeouts),
		IdleTimeout:    r.Timeouts.Idle,
		WriteTimeout:   r.Timeouts.Write,
		ReadTimeout:    r.Timeouts.Read,
		MinRate:        r.Timeouts.MinRate,
		RateGrace:      (&connLimits{readHeader: r.Timeouts.ReadHeader}).grace(), // as the HTTP/1 connections have it
		Log:            r.Log,
	}
	if s.fast != nil {
		hs.Inline = s.inlineH2
	}
	return hs
}

// takeH2 has net/http give phased's HTTP/2 server the connections of its
// TLS listeners that negotiate h2, and those of its h2c listeners that
// begin with HTTP/2's preface, which net/http reads and then hands over as
// "unencrypted_http2" (a *tls.Conn wrapping the plain connection).
func (s *server) takeH2() {
	s.srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		"h2": func(_ *http.Server, c *tls.Conn, _ http.Handler) { s.h2.ServeConn(c) },
		"unencrypted_http2": func(_ *http.Server, c *tls.Conn, _ http.Handler) {
			if u, ok := c.NetConn().(interface{ UnencryptedNetConn() net.Conn }); ok {
				nc := u.UnencryptedNetConn()
				if sc := connSlot(nc); sc != nil {
					sc.leaveBounds() // the HTTP/1.1 header bounds held until the preface
				}
				s.h2.ServeConnPrefaced(nc)
			}
		},
	}
}

// inlineH2 answers an HTTP/2 GET or HEAD the fast path would answer over
// HTTP/1, and keeps the scoreboard, counters and access log as it does.
func (s *server) inlineH2(c net.Conn, r *h2.Request) (h2.Answer, bool) {
	if s.isDraining() || len(r.Path) > fastMaxTarget {
		return h2.Answer{}, false // draining: net/http's rules, Connection: close
	}
	start := time.Now()
	req := fastRequest{head: r.Method == http.MethodHead, proto: "HTTP/2.0", target: sbytes(r.Path)}
	var ok bool
	if req.path, ok = targetPath(req.target); !ok || s.status.Serves(bstr(req.path)) || s.health.serves(bstr(req.path)) {
		return h2.Answer{}, false // the status page and health checks are the handler's
	}
	for _, f := range r.Fields {
		if !req.field(sbytes(f.Name), sbytes(f.Value)) {
			return h2.Answer{}, false
		}
	}
	cl, _ := (*r.Conn).(*fastClient)
	if cl == nil {
		cl = new(fastClient)
		*cl = s.fastPeer(c)
		*r.Conn = cl
	}
	if cl.trusted && req.fwdTwice {
		return h2.Answer{}, false // as over HTTP/1: the handler reads every value
	}
	// Under worker and prefork the answer takes the connection's slot,
	// unless a stream's request runs on it: the request then goes to the
	// handler, which waits for a slot (h2slots.go).
	if s.model != ModelEvent && s.cap != nil {
		if sc := connSlot(c); sc != nil && sc.slot >= 0 {
			if !sc.tryOwnSlot() {
				return h2.Answer{}, false
			}
			defer s.streamDone(sc, sc.slot)
		}
	}
	x, ok := s.fastStart(c, &req, cl, start, nil)
	if !ok {
		return h2.Answer{}, false
	}
	n := int64(len(x.body))
	if req.head {
		n = 0
	}
	s.fastEnd(&x, &req, start, time.Now(), n)
	return h2.Answer{Status: x.status, Header: x.header, Body: x.body, HasDate: x.hasDate}, true
}

// sbytes views s as bytes that nobody writes to.
func sbytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
