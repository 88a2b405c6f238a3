package childrt

import (
	"net"
	"net/http"
	"strings"
	"time"
	"unsafe"

	"github.com/phasedhq/phased/internal/h2"
)

// HTTP/2 on the fast path's TLS listeners is served by phased's own server
// (internal/h2), not net/http's: the plainest requests (what the HTTP/1
// fast path would answer) are answered on the connection's goroutine from
// the responder's bytes, every other request runs the child's handler as
// net/http's would, with the same scoreboard, access log, status page and
// timeouts. h2c on plain listeners, and TLS listeners of children without
// a fast path, stay with net/http's HTTP/2.

// newH2 makes the child's HTTP/2 server.
func (s *server) newH2(r *Runtime) *h2.Server {
	hs := &h2.Server{
		Handler:        s.srv.Handler,
		ConnState:      s.track,
		ConnContext:    connContext,
		Draining:       s.isDraining,
		BaseServer:     s.srv,
		PrefaceTimeout: handshakeTimeout(r.Timeouts),
		IdleTimeout:    r.Timeouts.Idle,
		WriteTimeout:   r.Timeouts.Write,
		Log:            r.Log,
	}
	if s.fast != nil {
		hs.Inline = s.inlineH2
	}
	return hs
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
	if req.path, ok = targetPath(req.target); !ok {
		return h2.Answer{}, false
	}
	for _, f := range r.Fields {
		switch f.Name {
		case "referer":
			if req.hasReferer {
				return h2.Answer{}, false
			}
			req.referer, req.hasReferer = sbytes(f.Value), true
		case "user-agent":
			if req.hasAgent {
				return h2.Answer{}, false
			}
			req.agent, req.hasAgent = sbytes(f.Value), true
		case "x-forwarded-for":
			req.fwdTwice = req.fwdTwice || req.xff != nil
			req.xff = sbytes(f.Value)
		case "forwarded":
			req.fwdTwice = req.fwdTwice || req.forwarded != nil
			req.forwarded = sbytes(f.Value)
		case "x-real-ip":
			req.fwdTwice = req.fwdTwice || req.xRealIP != nil
			req.xRealIP = sbytes(f.Value)
		case "content-length", "expect", "range", "authorization":
			return h2.Answer{}, false
		default:
			if strings.HasPrefix(f.Name, "if-") {
				return h2.Answer{}, false
			}
		}
	}
	cl, _ := (*r.Conn).(*fastClient)
	if cl == nil {
		cl = new(fastClient)
		*cl = s.fastPeer(c)
		*r.Conn = cl
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
