package childrt

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/phasedhq/phased/internal/clientip"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// The PROXY protocol (HAProxy's send-proxy and send-proxy-v2, AWS NLB,
// nginx's proxy_protocol). On a listener with proxy_protocol every
// connection must start with a PROXY header, version 1 or 2, which names
// the client the balancer accepted: that address is the connection's
// RemoteAddr from then on, so the access log, the scoreboard, the allow
// lists, trusted_proxies and an app's X-Forwarded-For all see the client.
// A LOCAL header (a balancer's own health check) or v1's UNKNOWN leaves the
// peer's address.
//
// The header is read by the connection's own goroutine on its first Read
// (or RemoteAddr), never in Accept, bounded by timeouts.read_header: a
// client that connects and sends nothing holds one connection's goroutine
// for that long, as one that sends half a request does. It comes before
// anything else, TLS included (a TLS listener's handshake reads through
// it). go-proxyproto parses it. A connection without a valid header, or
// from a peer outside trusted_proxies when they are set, is closed
// without a byte written, counted in scoreboard.ProxyRejected, logged at
// debug, and warned about at most once a minute per child with how many
// went since: nothing it claims is ever taken as a client's address.

// proxyWarnEvery is how often a child warns about rejected connections.
const proxyWarnEvery = time.Minute

// proxyBufSize is the reader a header is read through: a v1 header is at
// most 107 bytes and must fit whole; what follows the header in it is
// handed on.
const proxyBufSize = 256

var errUntrustedProxy = errors.New("the peer is not in trusted_proxies")

// proxyListener requires a PROXY header on every connection it accepts.
type proxyListener struct {
	net.Listener
	addr     string // as configured, for the log
	trusted  clientip.Nets
	timeout  time.Duration
	counters *scoreboard.Counters
	log      *slog.Logger
	warn     warnEvery // every proxyWarnEvery
}

func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &proxyConn{Conn: c, l: l}, nil
}

// reject counts and logs a connection refused for err.
func (l *proxyListener) reject(peer net.Addr, err error) {
	l.counters.Add(scoreboard.ProxyRejected, 1)
	l.log.Debug("connection without a valid PROXY header closed", "listen", l.addr, "peer", peer.String(), "err", err)
	n, ok := l.warn.add(1, time.Now())
	if !ok {
		return
	}
	l.log.Warn("connections without a valid PROXY header closed (proxy_protocol is on for this listener); see phased_proxy_protocol_rejected_total",
		"listen", l.addr, "peer", peer.String(), "err", err, "connections", n)
}

// proxyConn is a connection whose PROXY header is read on first use.
type proxyConn struct {
	net.Conn // the accepted connection (a slotConn under a child's gate)
	l        *proxyListener

	once   sync.Once
	err    error
	br     *bufio.Reader // the header's reader, until what it holds past the header is read
	remote net.Addr      // the client the header names; nil = the peer

	dmu      sync.Mutex
	deadline time.Time // the read deadline the server set
}

// CloseWrite passes net/http's half-close on (closeWrite).
func (c *proxyConn) CloseWrite() error { return closeWrite(c.Conn) }

// handshake reads the header once and reports whether the connection may
// be served; a connection that may not is closed.
func (c *proxyConn) handshake() error {
	c.once.Do(func() {
		peer := c.Conn.RemoteAddr()
		if len(c.l.trusted) > 0 && !c.l.trusted.Contains(addrPort(peer).Addr()) {
			c.err = errUntrustedProxy
		} else {
			c.err = c.readHeader()
		}
		if c.err != nil {
			c.l.reject(peer, c.err)
			c.err = fmt.Errorf("PROXY protocol: %w", c.err)
			c.br = nil
			c.Conn.Close()
		}
	})
	return c.err
}

// readHeader reads the header within the server's read deadline, or the
// listener's timeout when none is set.
func (c *proxyConn) readHeader() error {
	c.dmu.Lock()
	d := c.deadline
	c.dmu.Unlock()
	if d.IsZero() && c.l.timeout > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.l.timeout)); err != nil {
			return err
		}
		defer c.Conn.SetReadDeadline(time.Time{})
	}
	c.br = bufio.NewReaderSize(c.Conn, proxyBufSize)
	h, err := proxyproto.Read(c.br)
	if err != nil {
		return err
	}
	if h.Command.IsProxy() {
		// The destination (the balancer's own address) is left out:
		// LocalAddr stays the socket's, which redirect_https matches.
		if src, _, ok := h.TCPAddrs(); ok {
			c.remote = src
		}
	}
	if c.br.Buffered() == 0 {
		c.br = nil
	}
	return nil
}

// buffered returns, once, what the header's reader holds past the header
// (the start of the first request), after which reads go straight to the
// socket.
func (c *proxyConn) buffered() []byte {
	if c.br == nil {
		return nil
	}
	b, _ := c.br.Peek(c.br.Buffered())
	b = append([]byte(nil), b...)
	c.br = nil
	return b
}

func (c *proxyConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	if c.br != nil {
		n, err := c.br.Read(p)
		if c.br.Buffered() == 0 {
			c.br = nil
		}
		return n, err
	}
	return c.Conn.Read(p)
}

func (c *proxyConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// RemoteAddr is the client the header names, or the peer.
func (c *proxyConn) RemoteAddr() net.Addr {
	if c.handshake() == nil && c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

func (c *proxyConn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	c.deadline = t
	c.dmu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *proxyConn) SetDeadline(t time.Time) error {
	c.dmu.Lock()
	c.deadline = t
	c.dmu.Unlock()
	return c.Conn.SetDeadline(t)
}

// wrapProxy puts the PROXY protocol on the gates of listeners that want
// it; it runs before wrapTLS, since the header comes before TLS.
func (s *server) wrapProxy(r *Runtime) {
	for i := range s.gates {
		if i >= len(r.lopts) || !r.lopts[i].ProxyProtocol {
			continue
		}
		s.gates[i] = &proxyListener{Listener: s.gates[i], addr: r.lopts[i].Addr, trusted: r.trusted,
			timeout: r.Timeouts.ReadHeader, counters: r.counters, log: r.Log, warn: warnEvery{every: proxyWarnEvery}}
	}
}
