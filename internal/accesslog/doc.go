// Package accesslog writes the access log of a phased child: one line per
// request, in Apache's common or combined format, either followed by the
// duration, or as JSON.
//
// # The story
//
// The master opens the access log once, with O_APPEND, while it is still
// privileged (the open-logs phase), and every child it spawns inherits the
// descriptor. Many children, each with many goroutines, therefore append to
// one file at once. Two things follow.
//
// Lines must never be torn. Linux makes each write(2) to an O_APPEND file on
// a local file system atomic with respect to the others, so a line is safe
// as long as it is never split across two writes. A [Writer] only ever
// writes whole lines, many at a time, with one Write call per batch.
//
// Writes must be rare. An unbuffered write per request costs a Go server
// about a quarter of its throughput, so a Writer batches lines and writes a
// batch when the buffer would overflow (BufferSize, 32 KiB by default) or
// when the oldest line has waited FlushInterval (200ms by default). A child
// calls [Writer.Close] after its last request, in child-exit, so nothing is
// lost when it retires.
//
// [Middleware] wraps the child's handler. Per request it takes the time,
// wraps the ResponseWriter to count the status and body bytes, and after the
// handler returns appends the line to a pooled buffer and hands it to the
// Writer: no fmt, no per-line allocation beyond the wrapper. The wrapper
// keeps http.Flusher, http.Hijacker (websockets), io.ReaderFrom (sendfile)
// and Unwrap (http.ResponseController) working.
//
// Lines are never lost silently. A batch whose write fails (a full disk,
// an I/O error) is dropped, since a later retry could interleave with
// other children's lines; the Writer counts its lines ([Writer.Dropped],
// [WriterOptions.OnDrop], which a phased child adds to the master's shared
// counters: phased_access_log_dropped_lines_total and
// phased_access_log_write_errors_total on /metrics) and tells the error
// log ([WriterOptions.Log]) once per cause (an errno) with the lines lost so
// far, and again when a write succeeds after failing, with how many were
// lost meanwhile.
//
// A child's setup is then:
//
//	f := os.NewFile(fd, "access.log") // inherited from the master
//	w := accesslog.NewWriter(f, accesslog.WriterOptions{})
//	defer w.Close()
//	srv := &http.Server{Handler: accesslog.Middleware(app, w, accesslog.FormatCombined)}
//
// # Formats
//
// [FormatCommon] and [FormatCombined] are byte for byte Apache's
//
//	%h %l %u %t "%r" %>s %b
//	%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"
//
// for instance
//
//	127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"
//
// with Apache's escaping of the request line, user and headers (\" \\ \n
// \xhh ...), "-" for an absent header or user and for a body of zero bytes,
// and the host alone (no port) as %h. [FormatCommonDuration] and
// [FormatCombinedDuration] append Apache's %D, the time taken in
// microseconds:
//
//	%h %l %u %t "%r" %>s %b %D
//	%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %D
//
// [FormatJSON] writes one object per line with the fields of the combined
// format plus the duration in microseconds.
//
// The package is part of phased's public SDK and imports only the standard
// library.
package accesslog
