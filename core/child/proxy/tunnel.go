package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// A tunnel is an upgraded request (a WebSocket) once the app's 101 has
// gone to the client: the client's connection and the app's, with bytes
// flowing both ways as they come. While it is silent both ways for its
// bound (app.read_timeout), both connections are closed, as nginx's
// proxy_read_timeout and Apache's tunnel timeout close an idle WebSocket:
// a client that vanished without a word (a laptop shut, a NAT that forgot
// the flow) would otherwise hold its app connection, and the app's
// resources for it, until TCP's keep-alive notices hours later. An app
// that keeps its sockets open through long silences sends pings (most
// WebSocket libraries do, every 20-30 s).
type tunnel struct {
	idle time.Duration
	// last is when bytes last went either way, as nanoseconds since
	// tunnelEpoch (monotonic).
	last    atomic.Int64
	app     net.Conn // set by the dial, before the 101 is read
	mu      sync.Mutex
	client  net.Conn // set by the hijack
	timer   *time.Timer
	expired bool
}

var tunnelEpoch = time.Now()

func (t *tunnel) touch() { t.last.Store(int64(time.Since(tunnelEpoch))) }

type tunnelKey struct{}

// tunnelOf returns the tunnel ServeHTTP put in ctx, or nil.
func tunnelOf(ctx context.Context) *tunnel {
	t, _ := ctx.Value(tunnelKey{}).(*tunnel)
	return t
}

// dialed wraps the app connection c of t's request, so that its bytes
// either way count as the tunnel's activity.
func (t *tunnel) dialed(c net.Conn) net.Conn {
	t.app = c
	t.touch()
	return &tunnelConn{Conn: c, t: t}
}

// opened starts t's idle bound once the client's connection c is taken
// over (the 101 is going out).
func (t *tunnel) opened(c net.Conn) {
	t.touch()
	t.mu.Lock()
	t.client = c
	t.timer = time.AfterFunc(t.idle, t.check)
	t.mu.Unlock()
}

// check closes both connections if nothing went either way for t.idle,
// and looks again when that would be otherwise.
func (t *tunnel) check() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil {
		return // ended
	}
	since := time.Since(tunnelEpoch) - time.Duration(t.last.Load())
	if since < t.idle {
		t.timer.Reset(t.idle - since)
		return
	}
	t.expired = true
	t.client.Close()
	if t.app != nil {
		t.app.Close()
	}
}

// end stops t's bound and reports whether it closed the tunnel.
func (t *tunnel) end() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	return t.expired
}

// tunnelConn is a tunnel's app connection.
type tunnelConn struct {
	net.Conn
	t *tunnel
}

func (c *tunnelConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.t.touch()
	}
	return n, err
}

func (c *tunnelConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.t.touch()
	}
	return n, err
}

// tunnelWriter is the ResponseWriter of an upgraded request: its Hijack,
// which the reverse proxy calls on the app's 101, opens the tunnel.
type tunnelWriter struct {
	http.ResponseWriter
	t *tunnel
}

func (w *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.t.opened(c)
	}
	return c, brw, err
}

func (w *tunnelWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveUpgrade forwards an upgraded request, its tunnel bounded by
// app.read_timeout (none when it is 0).
func (p *Proxy) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	if p.o.ReadTimeout <= 0 {
		p.rp.ServeHTTP(w, r)
		return
	}
	t := &tunnel{idle: p.o.ReadTimeout}
	p.rp.ServeHTTP(&tunnelWriter{ResponseWriter: w, t: t}, r.WithContext(context.WithValue(r.Context(), tunnelKey{}, t)))
	if t.end() {
		p.o.Log.Info("websocket closed: nothing either way within app.read_timeout",
			"read_timeout", p.o.ReadTimeout.String(), "path", r.URL.Path)
	}
}
