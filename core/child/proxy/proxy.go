// Package proxy forwards a phased child's requests to the app server it
// owns, over HTTP/1.1 on the app's unix socket or loopback port, the way
// nginx in front of Unicorn or gunicorn does, inside the child:
//
//   - A request reaches the app only when it is whole: its body is read
//     first (in memory up to a size, then in a temporary file; 413 above
//     the limit, before a byte of it is read, so Expect: 100-continue is
//     answered right), so a slow client never holds an app process.
//   - A response is read from the app as fast as it sends it (in memory,
//     then a temporary file, to a limit), so the app is free before a slow
//     reader has its response. A response that is a stream (Server-Sent
//     Events, X-Accel-Buffering: no) flows through as it comes, and any
//     response without a length is flushed to the client as it arrives.
//   - Upgrade (WebSocket) passes through; hop-by-hop headers are dropped;
//     X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto and X-Request-Id
//     are set; trailers pass through both ways.
//
// At most Conns requests are at the app at once, the child's slots: one
// under prefork, as Unicorn and Passenger serve, threads_per_child under
// worker and event, for a threaded app server (puma, gunicorn's gthread).
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/phasedhq/phased/core/child/internal/gateway"
	"github.com/phasedhq/phased/core/child/internal/spool"
	"github.com/phasedhq/phased/internal/childrt"
	"github.com/phasedhq/phased/internal/clientip"
	"github.com/phasedhq/phased/internal/sockconn"
	"golang.org/x/net/http/httpguts"
)

// Options configures a Proxy.
type Options struct {
	// Dial connects to the app server. Required.
	Dial func(ctx context.Context) (net.Conn, error)
	// Exchange, when set, connects to the app server for one request
	// outside the netpoller, as the fast path prefers when no idle
	// connection is kept (ForwardFast); it returns nil when it cannot
	// (an app on a TCP port).
	Exchange func() (*sockconn.Exchange, error)
	// Conns is how many requests may be at the app at once. Default 1.
	Conns int
	// MaxBodySize is the largest request body taken (413 above).
	MaxBodySize int64
	// BodyBufferSize is how much of a request body is held in memory; the
	// rest goes to a temporary file in TempDir.
	BodyBufferSize int64
	// ResponseBufferSize is how much of a response is read ahead in
	// memory, MaxTempFileSize how much more in a temporary file; past both
	// the rest flows at the client's pace.
	ResponseBufferSize int64
	MaxTempFileSize    int64
	// TempDir is where temporary files go (the child's own folder).
	TempDir string
	// ReadTimeout bounds the wait for the app's answer to begin, once it
	// has the request (app.read_timeout); past it the client gets 504.
	// It also closes a WebSocket's tunnel silent both ways for as long.
	// 0 = no bound.
	ReadTimeout time.Duration
	// SendfilePaths are the folders whose files the app may name in an
	// X-Sendfile answer header for the child to send (sendfile.go); none:
	// X-Sendfile passes through as any header.
	SendfilePaths []string
	// Log receives the app server's failures.
	Log *slog.Logger
}

// Proxy is the http.Handler that forwards to the app.
type Proxy struct {
	o        Options
	rp       *httputil.ReverseProxy
	tr       *transport
	sendfile *gateway.Sendfile // Options.SendfilePaths; nil: X-Sendfile is the app's
}

// CloseIdle closes the kept-alive connections to the app that no request
// uses. The child calls it once it has drained, before it sends the app its
// stop signal: an app server that closes gracefully waits for its open
// connections (node's server.close keeps a connection its
// closeIdleConnections did not see idle until keepAliveTimeout), and the
// child would wait for it until app.stop_timeout.
func (p *Proxy) CloseIdle() { p.tr.closeIdle() }

var appURL = &url.URL{Scheme: "http", Host: "app"}

// New returns a Proxy for o.
func New(o Options) *Proxy {
	if o.Conns < 1 {
		o.Conns = 1
	}
	p := &Proxy{o: o, sendfile: gateway.NewSendfile(o.SendfilePaths)}
	upgrades := &http.Transport{ // WebSocket: the connection becomes the body
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := o.Dial(ctx)
			if t := tunnelOf(ctx); t != nil && err == nil {
				return t.dialed(c), nil
			}
			return c, err
		},
		MaxConnsPerHost:    o.Conns,
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	upgrades.ResponseHeaderTimeout = o.ReadTimeout
	p.tr = newTransport(o.Dial, o.Conns, upgrades)
	p.tr.readTimeout = o.ReadTimeout
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: p.tr,
		// What the app sent goes to the client at once, whatever its
		// length: a stream with a Content-Length (X-Accel-Buffering: no)
		// flows too. A body read ahead is written in large pieces, so the
		// flushes cost nothing there.
		FlushInterval:  -1,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.failed,
		BufferPool:     spool.Buffers,
		ErrorLog:       slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
	}
	return p
}

// ServeHTTP forwards r to the app once its body is in.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.sendfile != nil {
		r = withSendfile(r)
	}
	if fc, ok := childrt.FastCarried(r).(*fastCarry); ok {
		p.serveCarried(w, r, fc)
		return
	}
	if r.Header.Get("Upgrade") != "" && hasToken(r.Header, "Connection", "upgrade") {
		p.serveUpgrade(w, r) // a WebSocket: both ways as it comes
		return
	}
	if r.ContentLength > p.o.MaxBodySize {
		gateway.TooLarge(w, r, gateway.MaxBodyMessage)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		st := &spool.Store{Dir: p.o.TempDir, MemMax: p.o.BodyBufferSize}
		n, err := spool.Fill(st, io.LimitReader(r.Body, p.o.MaxBodySize+1))
		switch {
		case n > p.o.MaxBodySize:
			// Not r.Body.Close: on a chunked body it would wait for up to
			// 256K more of it before the 413 goes out, and a client that
			// sent a little too much waits for the answer instead.
			st.Close()
			gateway.TooLarge(w, r, gateway.MaxBodyMessage)
			return
		case err != nil:
			st.Close()
			p.bodyFailed(w, r, err)
			return
		}
		r.Body.Close()
		r.Body = spool.NewReader(st)
		// Held whole: the transport may send it again on a new connection.
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(spool.NewReader(st)), nil }
		r.ContentLength = n
		r.TransferEncoding = nil
		if len(r.Trailer) > 0 {
			r.ContentLength = -1 // chunked, to carry the trailers
		}
		defer st.Close()
	}
	p.rp.ServeHTTP(w, r)
}

// bodyFailed answers a request whose body did not arrive.
func (p *Proxy) bodyFailed(w http.ResponseWriter, r *http.Request, err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		w.Header().Set("Connection", "close")
		http.Error(w, "408 Request Timeout: the body did not arrive in time", http.StatusRequestTimeout)
		return
	}
	if r.Context().Err() != nil {
		return // the client is gone
	}
	p.o.Log.Warn("request body not taken", "err", err, "path", r.URL.Path)
	w.Header().Set("Connection", "close")
	http.Error(w, "400 Bad Request: the body could not be read", http.StatusBadRequest)
}

// rewrite makes the request the app gets: the same, with the client's
// address, host, scheme and a request id in X-Forwarded-* headers. The
// scheme and host are the child's own, unless the request came through a
// trusted proxy (trusted_proxies), which may say what it was asked for: a
// balancer that ends TLS sends X-Forwarded-Proto: https, and the app must
// know its client is on HTTPS (to make its links and secure cookies).
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(appURL)
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	if clientip.FromTrustedProxy(pr.In.Context()) {
		if v := pr.In.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			pr.Out.Header.Set("X-Forwarded-Proto", v)
		}
		if v := pr.In.Header.Get("X-Forwarded-Host"); v != "" && httpguts.ValidHostHeader(v) {
			pr.Out.Header.Set("X-Forwarded-Host", v)
		}
	}
	pr.Out.Header.Del("Expect") // the body is here already: 100-continue was the child's to answer
	for k := range pr.Out.Header {
		if gateway.Reserved(k) {
			delete(pr.Out.Header, k)
		}
	}
	gateway.ClientCertHeaders(pr.Out.Header, pr.In.TLS)
	if p.sendfile != nil {
		pr.Out.Header.Set("X-Sendfile-Type", gateway.SendfileType)
	}
	id := pr.In.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		var b [16]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	pr.Out.Header.Set("X-Request-Id", id)
}

// validRequestID reports whether a client's X-Request-Id may be passed on:
// short, and only letters, digits and - _ . : (no header injection, no
// log noise).
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)) {
			return false
		}
	}
	return true
}

// modifyResponse is the reverse proxy's look at an answer: an X-Sendfile
// one is the child's to send, any other is read ahead.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if p.sendfile != nil {
		if err := p.takeSendfile(resp); err != nil {
			return err
		}
	}
	return p.readAhead(resp)
}

// readAhead frees the app from the client's pace: a response that fits in
// memory is read whole at once; a larger one, or one without a length, is
// read ahead as it comes; a stream goes through as it comes.
func (p *Proxy) readAhead(resp *http.Response) error {
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.Body == nil || resp.Body == http.NoBody {
		return nil
	}
	if resp.Header.Get("X-Accel-Buffering") == "no" {
		resp.Header.Del("X-Accel-Buffering")
		return nil
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/event-stream") {
		return nil
	}
	st := spool.Store{Dir: p.o.TempDir, MemMax: p.o.ResponseBufferSize}
	if n := resp.ContentLength; n >= 0 && n <= p.o.ResponseBufferSize && len(resp.Trailer) == 0 {
		// The common case: small, known length. Read it now, straight
		// into its own memory.
		st.Mem = make([]byte, n)
		if _, err := io.ReadFull(resp.Body, st.Mem); err != nil {
			resp.Body.Close()
			return fmt.Errorf("reading the app's response: %w", err)
		}
		resp.Body.Close()
		resp.Body = spool.NewReader(&st)
		return nil
	}
	resp.Body = spool.NewReadAhead(resp.Body, st, p.o.ResponseBufferSize+p.o.MaxTempFileSize)
	return nil
}

// failed answers a request the app did not answer: 502 when it cannot be
// reached or broke off, 504 when it took too long; nothing when the client
// is gone.
func (p *Proxy) failed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errSendfile) {
		p.serveSendfile(w, r)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	code := http.StatusBadGateway
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		code = http.StatusGatewayTimeout
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		code = http.StatusServiceUnavailable
	}
	p.o.Log.Warn("the app server did not answer", "err", err, "method", r.Method, "path", r.URL.Path, "status", code)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s: the app server did not answer\n", code, http.StatusText(code))
}

// readTimedOut says which key bounded a wait that timed out (err, a
// read's), for the error log; other errors are as they are.
func readTimedOut(err error, d time.Duration) error {
	if d > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("no answer within app.read_timeout (%s): %w", d, err)
	}
	return err
}

// hasToken reports whether header key lists token (case-insensitive).
func hasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
