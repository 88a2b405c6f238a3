package h2

import (
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/phasedhq/phased/internal/httpdate"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// runHandler serves st's request with the server's Handler.
func (sc *conn) runHandler(st *stream) {
	w := &responseWriter{st: st, header: make(http.Header), declLen: -1, head: st.req.Method == http.MethodHead}
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				sc.log.Error("h2: panic serving a request", "remote", sc.remote, "panic", fmt.Sprint(v), "stack", string(buf))
			}
			sc.resetStream(st.id, http2.ErrCodeInternal)
			sc.flush()
			sc.endStream(st, errStreamReset, false)
			return
		}
		err := w.finish()
		sc.endStream(st, err, err == nil)
		if w.closeConn {
			sc.mu.Lock()
			away := sc.goingAway
			sc.mu.Unlock()
			if !away {
				sc.goAway(http2.ErrCodeNo)
			}
		}
		sc.flush()
		st.cancel()
	}()
	sc.srv.Handler.ServeHTTP(w, st.req)
}

// responseWriter is a handler's http.ResponseWriter: its writes are
// gathered up to chunkSize and sent as DATA frames, the first preceded by
// the HEADERS frame.
type responseWriter struct {
	st        *stream
	header    http.Header
	status    int // 0 until the final status is set
	sent      bool
	buf       []byte
	written   int64
	declLen   int64
	head      bool
	trailers  []string // declared with the "Trailer" header
	closeConn bool
	err       error
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 || w.err != nil {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code < 200 {
		if code == http.StatusSwitchingProtocols {
			return
		}
		// An informational answer (103 Early Hints) goes out now.
		fields := []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(code)}}
		fields = appendHeader(fields, w.header, nil)
		sc := w.st.sc
		sc.wmu.Lock()
		w.err = sc.writeHeadersLocked(w.st.id, fields, false)
		sc.flushLocked()
		sc.wmu.Unlock()
		return
	}
	w.status = code
	if v := w.header.Get("Content-Length"); v != "" {
		if n, ok := parseContentLength(v); ok {
			w.declLen = n
		} else {
			w.header.Del("Content-Length")
		}
	}
	for _, v := range w.header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" {
				w.trailers = append(w.trailers, k)
			}
		}
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declLen >= 0 && w.written+int64(len(p)) > w.declLen {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.head {
		return len(p), nil
	}
	if len(w.buf)+len(p) <= chunkSize {
		if w.buf == nil {
			w.buf = make([]byte, 0, min(chunkSize, max(len(p), 512)))
		}
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if err := w.send(false); err != nil {
		return 0, err
	}
	if len(p) <= chunkSize {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if w.err = w.st.sc.sendData(w.st, p, false); w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func (w *responseWriter) WriteString(s string) (int, error) {
	return w.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// Flush sends what is written.
func (w *responseWriter) Flush() { w.FlushError() }

// FlushError is Flush for http.ResponseController.
func (w *responseWriter) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.send(false); err != nil {
		return err
	}
	return w.st.sc.flush()
}

// send writes the HEADERS frame if it is not out yet and the gathered
// body; end ends the stream (trailers, if any, follow it).
func (w *responseWriter) send(end bool) error {
	if w.err != nil {
		return w.err
	}
	sc := w.st.sc
	var trailers []hpack.HeaderField
	if end {
		trailers = w.trailerFields()
	}
	if !w.sent {
		w.sent = true
		if end && w.declLen < 0 && bodyAllowed(w.status) && !w.head {
			// The whole answer is at hand: say its length.
			w.header.Set("Content-Length", strconv.Itoa(len(w.buf)))
		}
		fields := []hpack.HeaderField{{Name: ":status", Value: statusText(w.status)}}
		fields = appendHeader(fields, w.header, w.buf)
		if _, ok := w.header["Date"]; !ok {
			fields = append(fields, hpack.HeaderField{Name: "date", Value: httpdate.Value(time.Now())})
		}
		if strings.EqualFold(w.header.Get("Connection"), "close") {
			w.closeConn = true
		}
		sc.wmu.Lock()
		w.err = sc.writeHeadersLocked(w.st.id, fields, end && len(w.buf) == 0 && len(trailers) == 0)
		sc.wmu.Unlock()
		if w.err != nil {
			return w.err
		}
		if end && len(w.buf) == 0 && len(trailers) == 0 {
			return nil
		}
	}
	if len(w.buf) > 0 || end && len(trailers) == 0 {
		w.err = sc.sendData(w.st, w.buf, end && len(trailers) == 0)
		w.buf = w.buf[:0]
		if w.err != nil {
			return w.err
		}
	}
	if end && len(trailers) > 0 {
		sc.wmu.Lock()
		w.err = sc.writeHeadersLocked(w.st.id, trailers, true)
		sc.wmu.Unlock()
	}
	return w.err
}

// finish ends the response when the handler returns.
func (w *responseWriter) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if w.declLen >= 0 && w.written < w.declLen && !w.head && bodyAllowed(w.status) {
		// Shorter than it said: the client must not take it whole.
		w.st.sc.resetStream(w.st.id, http2.ErrCodeInternal)
		return errStreamReset
	}
	return w.send(true)
}

// trailerFields are the trailers the handler set, declared ones and
// those named with http.TrailerPrefix.
func (w *responseWriter) trailerFields() []hpack.HeaderField {
	var fields []hpack.HeaderField
	for _, k := range w.trailers {
		for _, v := range w.header[k] {
			fields = append(fields, hpack.HeaderField{Name: strings.ToLower(k), Value: v})
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vs {
				fields = append(fields, hpack.HeaderField{Name: strings.ToLower(name), Value: v})
			}
		}
	}
	return fields
}

// appendHeader appends a handler's header fields, lower-cased, without
// connection-specific ones and trailers; a missing Content-Type is sniffed
// from body, as net/http does.
func appendHeader(fields []hpack.HeaderField, h http.Header, body []byte) []hpack.HeaderField {
	_, hasCT := h["Content-Type"]
	for k, vs := range h {
		name := strings.ToLower(k)
		if connectionSpecific(name) || name == "trailer" || strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			fields = append(fields, hpack.HeaderField{Name: name, Value: v})
		}
	}
	if !hasCT && len(body) > 0 {
		fields = append(fields, hpack.HeaderField{Name: "content-type", Value: http.DetectContentType(body)})
	}
	return fields
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == 204 || status == 304)
}
