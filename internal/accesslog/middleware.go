package accesslog

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Middleware returns a handler that serves with h and then logs the request
// to w in format f: the remote host, the user named by basic auth, the time
// the request was received, the request line, the final status, the bytes of
// body sent, the Referer and User-Agent headers and, in the json and
// _duration formats, the duration.
// A request is logged even when h panics; if h had not yet written a status,
// the line says 500. Middleware panics if w is nil.
//
// The http.ResponseWriter that h receives forwards to the server's:
// http.Flusher, http.Hijacker, io.ReaderFrom (so a file served with
// http.ServeContent still goes out with sendfile) and io.StringWriter, and
// an Unwrap method through which http.ResponseController reaches the rest.
// Where the server's writer lacks one, Hijack reports http.ErrNotSupported,
// Flush does nothing and ReadFrom copies through Write. Bytes written on a
// hijacked connection are not counted, and a hijacked request that wrote no
// status is logged with 101 (Switching Protocols), the usual reason to
// hijack.
func Middleware(h http.Handler, w *Writer, f Format) http.Handler {
	return newMiddleware(h, w, f, time.Now)
}

// newMiddleware is Middleware with a clock, for tests.
func newMiddleware(h http.Handler, w *Writer, f Format, now func() time.Time) *middleware {
	if w == nil {
		panic("accesslog: Middleware with a nil Writer")
	}
	return &middleware{next: h, out: w, format: f, now: now}
}

type middleware struct {
	next   http.Handler
	out    *Writer
	format Format
	now    func() time.Time
	times  timeCache
}

// maxPooled is the largest line buffer put back in the pool.
const maxPooled = 64 << 10

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := m.now()
	rw := &responseWriter{ResponseWriter: w}
	returned := false
	defer func() { m.log(r, rw, start, returned) }()
	m.next.ServeHTTP(rw, r)
	returned = true
}

// log appends the request's line to the Writer; returned reports whether
// the handler returned rather than panicked.
func (m *middleware) log(r *http.Request, rw *responseWriter, start time.Time, returned bool) {
	e := entry{
		remoteAddr: r.RemoteAddr,
		received:   start,
		method:     r.Method,
		uri:        r.RequestURI,
		proto:      r.Proto,
		status:     rw.status,
		bytes:      rw.bytes,
		referer:    r.Header["Referer"],
		userAgent:  r.Header["User-Agent"],
		tls:        r.TLS,
	}
	if m.format.Timed() {
		e.duration = m.now().Sub(start) // reading the clock is a third of the cost
	}
	if e.status == 0 {
		if returned {
			e.status = http.StatusOK // what net/http sends for a handler that wrote nothing
		} else {
			e.status = http.StatusInternalServerError
		}
	}
	if r.Method == http.MethodHead {
		e.bytes = 0 // net/http discards the body of a HEAD response
	}
	if _, ok := r.Header["Authorization"]; ok {
		e.user, _, e.hasUser = r.BasicAuth()
	}

	writeEntry(m.out, m.format, &e, &m.times)
}

// responseWriter records the status and the body bytes of a response.
type responseWriter struct {
	http.ResponseWriter
	status int   // final status; 0 until one is sent
	bytes  int64 // body bytes accepted by the underlying writer
}

var (
	_ http.Flusher    = (*responseWriter)(nil)
	_ http.Hijacker   = (*responseWriter)(nil)
	_ io.ReaderFrom   = (*responseWriter)(nil)
	_ io.StringWriter = (*responseWriter)(nil)
)

// WriteHeader records code unless it is informational (1xx other than 101),
// which is not the final status, and forwards it.
func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 && (code < 100 || code > 199 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// WriteString forwards to the underlying writer's WriteString, if any, to
// save a copy.
func (w *responseWriter) WriteString(s string) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int
	var err error
	if sw, ok := w.ResponseWriter.(io.StringWriter); ok {
		n, err = sw.WriteString(s)
	} else {
		n, err = w.ResponseWriter.Write([]byte(s))
	}
	w.bytes += int64(n)
	return n, err
}

// ReadFrom forwards to the underlying writer's ReadFrom, which net/http
// implements with sendfile(2) or splice(2) for files and sockets.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

// Flush sends any buffered data to the client.
func (w *responseWriter) Flush() {
	w.FlushError() // http.Flusher has no way to report an error
}

// FlushError sends any buffered data to the client and returns the
// underlying writer's error; http.ResponseController.Flush calls it.
func (w *responseWriter) FlushError() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over to the handler, as http.Hijacker.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return conn, brw, err
}

// Unwrap returns the underlying ResponseWriter, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides everything but Write, so io.Copy cannot loop back into
// ReadFrom.
type writerOnly struct{ io.Writer }
