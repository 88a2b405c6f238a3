package childrt

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
)

// FastForwarder is what a handler offers to forward the plainest requests
// (those the fast path parses: a GET or HEAD without a body) to an app
// server without net/http: phased's proxy to the app a child owns
// (core/child/proxy). Behind a sync app server the child's own cost per
// request is what limits the throughput on a busy machine, and net/http's
// share of it (a request and a header map per request, a goroutine
// watching each client for a hang-up, hand-offs between goroutines) is
// the larger part of what is not system calls.
//
// ForwardFast forwards req and returns the answer for the fast path to
// send, with ok. Without ok, the request goes to net/http as any other,
// and the connection with it, with carry: nil when nothing was sent to
// the app (the handler forwards the request as usual), else what the
// handler needs to finish the request already at the app (its answer not
// yet read), which it takes back with FastCarried.
type FastForwarder interface {
	ForwardFast(req *ForwardRequest) (ans ForwardAnswer, carry any, ok bool)
}

// ForwardRequest is a request the fast path offers a FastForwarder. Its
// slices are valid only during the call.
type ForwardRequest struct {
	Head   bool   // HEAD, else GET
	Target []byte // path and query, as sent
	Proto  string // HTTP/1.1 or HTTP/1.0
	// Header is the request's header lines as sent, each ending in CRLF,
	// without the request line and the blank line.
	Header []byte
	Host   []byte     // the Host header's value, nil without one
	Client netip.Addr // the client (behind a trusted proxy: the one it names)
}

// ForwardAnswer is the answer to a forwarded request.
type ForwardAnswer struct {
	Status int
	// Header is the status line and the header lines, each ending in
	// CRLF, without Connection (the fast path adds it) and without the
	// blank line; Date is the fast path's to add when HasDate is false.
	Header  []byte
	HasDate bool
	Body    []byte // nil for HEAD
}

// carried is a connection's carry on its way to the handler, taken once.
type carried struct{ v atomic.Pointer[any] }

type carryKey struct{}

// FastCarried returns what a FastForwarder's ForwardFast left for the
// request r (its carry) when it let net/http finish it; nil for every
// other request. Only the first request of a connection the fast path
// handed over can have one, and only the first call returns it.
func FastCarried(r *http.Request) any {
	c, _ := r.Context().Value(carryKey{}).(*carried)
	if c == nil {
		return nil
	}
	if p := c.v.Swap(nil); p != nil {
		return *p
	}
	return nil
}

// withCarry puts the carry of a handed-over connection into its context.
func withCarry(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		c = fc.Conn
	}
	rc, ok := c.(*replayConn)
	if !ok || rc.carry == nil {
		return ctx
	}
	cr := &carried{}
	v := rc.carry
	rc.carry = nil
	cr.v.Store(&v)
	return context.WithValue(ctx, carryKey{}, cr)
}

// forward offers req to the forwarder; status page, health checks and
// ACME answers are the fast path's callers' and never come here. A TLS
// connection, or one from a trusted proxy (whose X-Forwarded-Proto and
// X-Forwarded-Host the app may be told), is left to net/http, as is a
// query that net/http's proxy would clean (";"), and nothing is sent.
func (s *server) forward(c net.Conn, req *fastRequest, client netip.Addr, trusted bool) (ForwardAnswer, any, bool) {
	if _, tls := c.(*fastTLSConn); tls || trusted || s.acme && hasPrefixFold(req.path, acmePrefix) {
		return ForwardAnswer{}, nil, false
	}
	for _, b := range req.target[len(req.path):] {
		if b == ';' {
			return ForwardAnswer{}, nil, false
		}
	}
	return s.fwd.ForwardFast(&ForwardRequest{Head: req.head, Target: req.target, Proto: req.proto,
		Header: req.header, Host: req.host, Client: client})
}
