package accesslog

import (
	"crypto/tls"
	"net/http"
	"time"
)

// Request is one request as the access log records it, for a server that
// answers some requests without net/http (phased's fast path for small
// static files) and so cannot log them through Middleware. The strings
// are only read during Logger.Log: they may be views of a buffer the
// caller reuses afterwards.
type Request struct {
	RemoteAddr string // host:port, as http.Request.RemoteAddr
	Received   time.Time
	Method     string
	URI        string // the request target, as sent
	Proto      string
	Status     int
	Bytes      int64    // body bytes sent
	Referer    []string // the header's values; nil when absent
	UserAgent  []string
	// Duration is how long the request took, for the json and _duration
	// formats; zero means until Log is called (Log reads the clock then,
	// as Apache's %D does when it logs).
	Duration time.Duration
	// TLS is the connection's TLS state, nil over plain HTTP: the json
	// format records its version, cipher and client certificate's subject.
	TLS *tls.ConnectionState
}

// Logger writes Requests to a Writer in one format, exactly as Middleware
// writes the requests it sees.
type Logger struct {
	out    *Writer
	format Format
	times  timeCache
}

// NewLogger returns a Logger writing to w in format f.
func NewLogger(w *Writer, f Format) *Logger {
	if w == nil {
		panic("accesslog: NewLogger with a nil Writer")
	}
	return &Logger{out: w, format: f}
}

// Log writes r's line.
func (l *Logger) Log(r *Request) {
	e := entry{
		remoteAddr: r.RemoteAddr,
		received:   r.Received,
		method:     r.Method,
		uri:        r.URI,
		proto:      r.Proto,
		status:     r.Status,
		bytes:      r.Bytes,
		referer:    r.Referer,
		userAgent:  r.UserAgent,
		duration:   r.Duration,
		tls:        r.TLS,
	}
	if e.duration == 0 && l.format.Timed() {
		e.duration = time.Since(r.Received)
	}
	if r.Method == http.MethodHead {
		e.bytes = 0
	}
	writeEntry(l.out, l.format, &e, &l.times)
}

// writeEntry formats e into a pooled buffer and writes it to out.
func writeEntry(out *Writer, f Format, e *entry, tc *timeCache) {
	bp := linePool.Get().(*[]byte)
	b := appendEntry((*bp)[:0], f, e, tc)
	// Errors of batch writes surface through Writer.Flush and Close; a
	// request is never failed because its log line could not be written.
	out.Write(b)
	if cap(b) <= maxPooled {
		*bp = b
		linePool.Put(bp)
	}
}
