package h2

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phasedhq/phased/internal/httpdate"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// stream is a request being handled. Fields marked mu are under the
// connection's mu; the others are the reader's (or set before the handler
// starts).
type stream struct {
	sc     *conn
	id     uint32
	cancel context.CancelFunc
	body   *pipe // nil: the request has no body
	req    *http.Request

	declLen int64 // the request's content-length, or -1
	gotLen  int64 // body bytes received

	sendWin    int64 // mu
	recvWin    int64 // mu: what the client may still send
	recvUnack  int64 // mu: body bytes read and not yet given back
	remoteDone bool  // mu: the client ended its side
	gone       bool  // mu: reset, or the connection closed
	ended      bool  // mu: out of the streams map
}

// onHeaders opens a stream, or takes a stream's trailers.
func (sc *conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if st := sc.stream(id); st != nil {
		return sc.onTrailers(st, f)
	}
	if id <= sc.maxID {
		// A stream that ended, or an id below one already used.
		return http2.ConnectionError(http2.ErrCodeStreamClosed)
	}
	sc.mu.Lock()
	sc.maxID = id
	open, away := len(sc.streams), sc.goingAway
	sc.mu.Unlock()
	if away {
		return nil // after GOAWAY: not processed, the client may retry it
	}
	r := Request{Conn: &sc.inline}
	if !requestFields(f, &r) || f.HasPriority() && f.Priority.StreamDep == id {
		sc.resetStream(id, http2.ErrCodeProtocol)
		return nil
	}
	if open >= int(sc.maxStream) {
		sc.resetStream(id, http2.ErrCodeRefusedStream)
		return nil
	}
	end := f.StreamEnded()
	if f.Truncated {
		sc.answer(id, false, Answer{Status: http.StatusRequestHeaderFieldsTooLarge})
		if !end {
			sc.resetStream(id, http2.ErrCodeNo)
		}
		return nil
	}
	if end && sc.srv.Inline != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if a, ok := sc.srv.Inline(sc.nc, &r); ok {
			sc.answer(id, r.Method == http.MethodHead, a)
			return nil
		}
	}
	req, declLen, ok := sc.newRequest(&r, end)
	if !ok {
		sc.resetStream(id, http2.ErrCodeProtocol)
		return nil
	}
	ctx, cancel := context.WithCancel(sc.ctx)
	st := &stream{sc: sc, id: id, cancel: cancel, declLen: declLen, recvWin: streamWindow}
	if !end {
		st.body = newPipe()
		st.body.lim = bodyLimits{minRate: int64(sc.srv.MinRate), grace: sc.srv.RateGrace}
		if d := sc.srv.ReadTimeout; d > 0 {
			st.body.lim.by = time.Now().Add(d)
		}
		req.Body = &requestBody{st: st}
	}
	st.req = req.WithContext(ctx)
	sc.mu.Lock()
	st.sendWin = sc.initWin
	st.remoteDone = end
	sc.streams[id] = st
	sc.mu.Unlock()
	go sc.runHandler(st)
	return nil
}

// requestFields checks a request's header block as RFC 9113 (8.2, 8.3)
// asks and fills r; false is a malformed request.
func requestFields(f *http2.MetaHeadersFrame, r *Request) bool {
	var seen [4]bool
	for _, hf := range f.Fields {
		if !hf.IsPseudo() {
			break
		}
		var i int
		switch hf.Name {
		case ":method":
			i, r.Method = 0, hf.Value
		case ":scheme":
			i, r.Scheme = 1, hf.Value
		case ":authority":
			i, r.Authority = 2, hf.Value
		case ":path":
			i, r.Path = 3, hf.Value
		default:
			return false // unknown, or a response's (:status)
		}
		if seen[i] {
			return false
		}
		seen[i] = true
	}
	r.Fields = f.RegularFields()
	for _, hf := range r.Fields {
		if connectionSpecific(hf.Name) || hf.Name == "te" && hf.Value != "trailers" {
			return false
		}
	}
	if r.Method == http.MethodConnect {
		return r.Authority != "" && !seen[1] && !seen[3]
	}
	return r.Method != "" && r.Scheme != "" && r.Path != ""
}

// connectionSpecific reports whether a lower-case field name is one of
// HTTP/1's connection-specific fields, which HTTP/2 forbids (RFC 9113
// 8.2.2).
func connectionSpecific(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// newRequest makes the http.Request a handler gets.
func (sc *conn) newRequest(r *Request, end bool) (*http.Request, int64, bool) {
	req := &http.Request{
		Method:     r.Method,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     make(http.Header, len(r.Fields)),
		RemoteAddr: sc.remote,
		RequestURI: r.Path,
		TLS:        sc.tls,
		Host:       r.Authority,
		Body:       http.NoBody,
	}
	var err error
	if r.Method == http.MethodConnect {
		req.URL = &url.URL{Host: r.Authority}
		req.RequestURI = r.Authority
	} else if req.URL, err = url.ParseRequestURI(r.Path); err != nil {
		return nil, 0, false
	}
	var cookies []string
	for _, hf := range r.Fields {
		if hf.Name == "cookie" {
			cookies = append(cookies, hf.Value)
			continue
		}
		k := http.CanonicalHeaderKey(hf.Name)
		req.Header[k] = append(req.Header[k], hf.Value)
	}
	if len(cookies) > 0 {
		req.Header["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if req.Host == "" {
		req.Host = req.Header.Get("Host")
	}
	declLen := int64(-1)
	if v := req.Header["Content-Length"]; len(v) > 0 {
		n, ok := parseContentLength(v[0])
		if !ok || len(v) > 1 && v[1] != v[0] {
			return nil, 0, false
		}
		declLen = n
	}
	switch {
	case end:
		req.ContentLength = 0
		if declLen > 0 {
			return nil, 0, false
		}
	case declLen >= 0:
		req.ContentLength = declLen
	default:
		req.ContentLength = -1
	}
	for _, v := range req.Header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length", "":
				continue
			}
			if req.Trailer == nil {
				req.Trailer = make(http.Header)
			}
			req.Trailer[k] = nil
		}
	}
	delete(req.Header, "Trailer")
	return req, declLen, true
}

// onTrailers takes the header block that ends a request's body.
func (sc *conn) onTrailers(st *stream, f *http2.MetaHeadersFrame) error {
	sc.mu.Lock()
	done := st.remoteDone
	sc.mu.Unlock()
	if done {
		sc.resetStream(st.id, http2.ErrCodeStreamClosed)
		sc.endStream(st, errStreamReset, false)
		return nil
	}
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
		sc.resetStream(st.id, http2.ErrCodeProtocol)
		sc.endStream(st, errStreamReset, false)
		return nil
	}
	if st.declLen >= 0 && st.gotLen != st.declLen {
		sc.resetStream(st.id, http2.ErrCodeProtocol)
		sc.endStream(st, errStreamReset, false)
		return nil
	}
	if st.req.Trailer != nil {
		st.body.setTrailer(st.req.Trailer, f.RegularFields())
	}
	sc.remoteEnd(st)
	return nil
}

// remoteEnd marks the client's side of st ended.
func (sc *conn) remoteEnd(st *stream) {
	sc.mu.Lock()
	st.remoteDone = true
	sc.mu.Unlock()
	if st.body != nil {
		st.body.closeWithError(io.EOF)
	}
}

func (sc *conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Header().Length) // padding included, as flow control counts
	data := f.Data()
	sc.mu.Lock()
	if n > sc.recvWin {
		sc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	sc.recvWin -= n
	st := sc.streams[id]
	if st == nil || st.remoteDone {
		// Not open for the client: its bytes are given back to the
		// connection.
		sc.mu.Unlock()
		if sc.idle(id) {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		sc.giveBack(nil, n)
		sc.resetStream(id, http2.ErrCodeStreamClosed)
		if st != nil {
			sc.endStream(st, errStreamReset, false)
		}
		return nil
	}
	if n > st.recvWin {
		sc.mu.Unlock()
		sc.resetStream(id, http2.ErrCodeFlowControl)
		sc.endStream(st, errStreamReset, false)
		return nil
	}
	st.recvWin -= n
	// Padding, and what a handler that closed its body will not read, is
	// given back at once.
	back := n - int64(len(data))
	st.gotLen += int64(len(data))
	sc.mu.Unlock()
	if st.declLen >= 0 && (st.gotLen > st.declLen || f.StreamEnded() && st.gotLen != st.declLen) {
		sc.resetStream(id, http2.ErrCodeProtocol)
		sc.endStream(st, errStreamReset, false)
		return nil
	}
	if len(data) > 0 && !st.body.write(data) {
		back += int64(len(data))
	}
	if back > 0 {
		sc.giveBack(st, back)
	}
	if f.StreamEnded() {
		sc.remoteEnd(st)
	}
	return nil
}

// giveBack counts n more bytes of st (nil: none) and the connection as read
// (by the handler, or dropped) and sends WINDOW_UPDATEs for what was read,
// once it is worth a frame: half a window.
func (sc *conn) giveBack(st *stream, n int64) {
	var sInc, cInc int64
	sc.mu.Lock()
	sc.recvUnacked += n
	if st != nil {
		st.recvUnack += n
	}
	if st != nil && !st.remoteDone && !st.gone && st.recvUnack >= streamWindow/2 {
		sInc, st.recvUnack = st.recvUnack, 0
		st.recvWin += sInc
	}
	if sc.recvUnacked >= connWindow/2 {
		cInc, sc.recvUnacked = sc.recvUnacked, 0
		sc.recvWin += cInc
	}
	sc.mu.Unlock()
	if sInc == 0 && cInc == 0 {
		return
	}
	sc.wmu.Lock()
	if sInc > 0 {
		sc.wr().fw.WriteWindowUpdate(st.id, uint32(sInc))
	}
	if cInc > 0 {
		sc.wr().fw.WriteWindowUpdate(0, uint32(cInc))
	}
	sc.flushLocked()
	sc.wmu.Unlock()
}

// endStream takes st out of the connection: its handler's reads and
// writes fail with err (nil: it finished). If the client had not ended its
// side, a finished stream is reset with NO_ERROR (RFC 9113 8.1).
func (sc *conn) endStream(st *stream, err error, finished bool) {
	sc.mu.Lock()
	if st.ended {
		sc.mu.Unlock()
		return
	}
	st.ended = true
	if err != nil {
		st.gone = true
	}
	remoteOpen := !st.remoteDone
	delete(sc.streams, st.id)
	if len(sc.streams) == 0 {
		sc.armIdleLocked(true) // the reader may be waiting with no bound
	}
	sc.cond.Broadcast()
	sc.mu.Unlock()
	var unread int64
	if st.body != nil {
		st.body.closeWithError(orEOF(err))
		// What the client sent that nobody will read is the
		// connection's again.
		unread = st.body.drop()
	}
	if !finished {
		st.cancel()
	}
	if finished && remoteOpen {
		sc.resetStream(st.id, http2.ErrCodeNo)
	}
	sc.giveBack(nil, unread)
}

func orEOF(err error) error {
	if err == nil {
		return errClientGone
	}
	return err
}

// answer writes an inline answer for stream id.
func (sc *conn) answer(id uint32, head bool, a Answer) {
	body := a.Body
	if head {
		body = nil
	}
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	fields := append(sc.fbuf[:0], hpack.HeaderField{Name: ":status", Value: statusText(a.Status)})
	fields, sc.lines = appendLines(fields, sc.lines[:0], a.Header)
	if !a.HasDate {
		fields = append(fields, hpack.HeaderField{Name: "date", Value: httpdate.Value(time.Now())})
	}
	sc.fbuf = fields
	if len(body) == 0 {
		sc.writeHeadersLocked(id, fields, true)
		return
	}
	// The body goes out now if the client's windows take it; otherwise
	// a goroutine sends it as the windows open.
	sc.mu.Lock()
	fits := int64(len(body)) <= sc.sendWin && int64(len(body)) <= sc.initWin && len(body) <= sc.peerMaxFrame
	if fits {
		sc.sendWin -= int64(len(body))
	}
	sc.mu.Unlock()
	if sc.writeHeadersLocked(id, fields, false) != nil {
		return
	}
	if fits {
		if err := sc.wr().fw.WriteData(id, true, body); err != nil {
			sc.writeFailed(err)
		}
		return
	}
	st := &stream{sc: sc, id: id, cancel: func() {}, declLen: -1, remoteDone: true}
	sc.mu.Lock()
	st.sendWin = sc.initWin
	sc.streams[id] = st
	sc.mu.Unlock()
	go func() {
		err := sc.sendData(st, body, true)
		sc.flush()
		sc.endStream(st, err, err == nil)
	}()
}

// statusText is a status code's digits.
func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 304:
		return "304"
	case 404:
		return "404"
	}
	return strconv.Itoa(code)
}

// appendLines appends the fields of HTTP/1 header lines, names lower-cased
// (in lines, which it returns grown), leaving out connection-specific
// ones. The fields are substrings of one string made of the lowered copy,
// not views of lines: the HPACK encoder keeps the fields it indexes in its
// dynamic table, and a view of a buffer written again for the next answer
// changed entries the client had already decoded (another stream's
// content-length, under load: TestConcurrentStreams).
func appendLines(fields []hpack.HeaderField, lines, header []byte) ([]hpack.HeaderField, []byte) {
	lines = append(lines, header...)
	start := len(lines) - len(header)
	for i := start; i < len(lines); {
		nl := bytes.IndexByte(lines[i:], '\n')
		if nl < 0 {
			nl = len(lines) - i
		}
		line := lines[i : i+nl]
		i += nl + 1
		for j := 0; j < len(line) && line[j] != ':'; j++ {
			if c := line[j]; 'A' <= c && c <= 'Z' {
				line[j] = c + 'a' - 'A'
			}
		}
	}
	for rest := string(lines[start:]); rest != ""; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		line = strings.TrimSuffix(line, "\r")
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name, value := line[:colon], strings.TrimSpace(line[colon+1:])
		if connectionSpecific(name) {
			continue
		}
		fields = append(fields, hpack.HeaderField{Name: name, Value: value})
	}
	return fields, lines
}

// sendData writes p as DATA frames of st as the client's windows allow,
// waiting for them; end ends the stream with the last one.
func (sc *conn) sendData(st *stream, p []byte, end bool) error {
	for {
		n, err := sc.takeWindow(st, len(p))
		if err == errWindowTimeout {
			sc.log.Info("h2: stream reset: the client gave no flow-control window within timeouts.write", "remote", sc.remote, "stream", st.id)
			sc.resetStream(st.id, http2.ErrCodeCancel)
			sc.flush()
			sc.endStream(st, err, false)
		}
		if err != nil {
			return err
		}
		last := end && n == len(p)
		sc.wmu.Lock()
		if sc.werr != nil {
			err = sc.werr
		} else if err = sc.wr().fw.WriteData(st.id, last, p[:n]); err != nil {
			err = sc.writeFailed(err)
		}
		sc.wmu.Unlock()
		if err != nil {
			return err
		}
		p = p[n:]
		if len(p) == 0 {
			return nil
		}
	}
}

// takeWindow takes up to want bytes of send window for st (0 for want 0),
// waiting until there is some.
func (sc *conn) takeWindow(st *stream, want int) (int, error) {
	if want == 0 {
		return 0, nil
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	flushed := false
	var by time.Time // the wait's bound, once it waits
	for {
		if sc.closed {
			return 0, errClientGone
		}
		if st.gone {
			return 0, errStreamReset
		}
		n := int64(min(want, sc.peerMaxFrame))
		n = min(n, sc.sendWin, st.sendWin)
		if n > 0 {
			sc.sendWin -= n
			st.sendWin -= n
			return int(n), nil
		}
		if !flushed {
			// What is written must reach the client, whose window
			// updates answer it.
			sc.mu.Unlock()
			sc.flush()
			sc.mu.Lock()
			flushed = true
			continue
		}
		if d := sc.srv.WriteTimeout; d > 0 {
			now := time.Now()
			if by.IsZero() {
				by = now.Add(d)
				t := time.AfterFunc(d, func() {
					sc.mu.Lock()
					sc.cond.Broadcast()
					sc.mu.Unlock()
				})
				defer t.Stop()
			} else if !now.Before(by) {
				return 0, errWindowTimeout
			}
		}
		sc.cond.Wait()
	}
}

// pipe is a request body: what DATA frames bring, for the handler to
// read.
type pipe struct {
	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	err     error // after buf: io.EOF, or why the stream ended
	closed  bool  // the handler closed the body
	trailer func()
	lim     bodyLimits
	got     int64         // bytes the client sent
	waited  time.Duration // time the handler spent waiting for them
}

// bodyLimits bound how a request body comes, as the HTTP/1 connections'
// do: all of it by by (zero: no bound), and at minRate bytes a second over
// the handler's waits for it beyond a first grace (0: no minimum).
type bodyLimits struct {
	by      time.Time
	minRate int64
	grace   time.Duration
}

// wait waits, under mu, for the client's next bytes within the body's
// limits; false when they did not come in time.
func (p *pipe) wait() bool {
	now := time.Now()
	bounded, d := false, time.Duration(0)
	if !p.lim.by.IsZero() {
		bounded, d = true, p.lim.by.Sub(now)
	}
	if r := p.lim.minRate; r > 0 {
		// The grace, and a second for each minRate bytes that came, as
		// the HTTP/1 connections count (childrt's rateBound).
		secs := min(p.got/r, 1<<30) // no overflow, whatever a body's size
		earned := time.Duration(secs)*time.Second + time.Duration(p.got%r)*time.Second/time.Duration(r)
		if left := p.lim.grace + earned - p.waited; !bounded || left < d {
			bounded, d = true, left
		}
	}
	if !bounded {
		p.cond.Wait()
		return true
	}
	if d <= 0 {
		return false
	}
	fired := false
	t := time.AfterFunc(d, func() {
		p.mu.Lock()
		fired = true
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	p.cond.Wait()
	t.Stop()
	p.waited += time.Since(now)
	return !fired || len(p.buf) > 0 || p.err != nil || p.closed
}

func newPipe() *pipe {
	p := new(pipe)
	p.cond.L = &p.mu
	return p
}

// write adds data; false if the handler closed the body.
func (p *pipe) write(data []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.err != nil {
		return false
	}
	p.buf = append(p.buf, data...)
	p.got += int64(len(data))
	p.cond.Signal()
	return true
}

// drop lets go of what is buffered and returns how many bytes it was.
func (p *pipe) drop() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := int64(len(p.buf))
	p.buf = nil
	return n
}

func (p *pipe) closeWithError(err error) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// setTrailer arranges for trailer to get fields when the body's end is
// read, as net/http fills Request.Trailer.
func (p *pipe) setTrailer(trailer http.Header, fields []hpack.HeaderField) {
	p.mu.Lock()
	p.trailer = func() {
		for _, hf := range fields {
			k := http.CanonicalHeaderKey(hf.Name)
			if _, ok := trailer[k]; ok {
				trailer[k] = append(trailer[k], hf.Value)
			}
		}
	}
	p.mu.Unlock()
}

func (p *pipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.buf) == 0 && p.err == nil && !p.closed {
		if !p.wait() {
			p.err = errBodyTimeout
		}
	}
	if p.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		if len(p.buf) == 0 {
			p.buf = nil
		}
		return n, nil
	}
	if p.err == io.EOF && p.trailer != nil {
		p.trailer()
		p.trailer = nil
	}
	return 0, p.err
}

// requestBody is a handler's Request.Body.
type requestBody struct {
	st       *stream
	asked    bool // 100 Continue sent, if it was asked for
	closed   bool
	timedOut bool // the body came too slowly, and the stream was reset
}

func (b *requestBody) Read(p []byte) (int, error) {
	st := b.st
	if !b.asked {
		b.asked = true
		if strings.EqualFold(st.req.Header.Get("Expect"), "100-continue") {
			st.sc.wmu.Lock()
			st.sc.writeHeadersLocked(st.id, []hpack.HeaderField{{Name: ":status", Value: "100"}}, false)
			st.sc.flushLocked()
			st.sc.wmu.Unlock()
		}
	}
	n, err := st.body.read(p)
	if n > 0 {
		st.sc.giveBack(st, int64(n))
	}
	if err == errBodyTimeout && !b.timedOut {
		b.timedOut = true
		sc := st.sc
		sc.log.Info("h2: stream reset: its request body was too slow (timeouts.read, timeouts.min_rate)", "remote", sc.remote, "stream", st.id)
		sc.resetStream(st.id, http2.ErrCodeCancel)
		sc.flush()
		sc.endStream(st, err, false)
	}
	return n, err
}

func (b *requestBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	p := b.st.body
	p.mu.Lock()
	p.closed = true
	unread := int64(len(p.buf))
	p.buf = nil
	p.cond.Broadcast()
	p.mu.Unlock()
	if unread > 0 {
		b.st.sc.giveBack(b.st, unread)
	}
	return nil
}
