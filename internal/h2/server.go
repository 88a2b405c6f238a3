// Package h2 is phased's HTTP/2 server (RFC 9113) for connections that
// negotiated h2 by ALPN.
//
// Go's net/http serves HTTP/2 with a goroutine for every stream and a
// scheduler goroutine that owns the connection's writes, so a small answer
// costs several goroutine hand-offs, two TLS records and two write system
// calls: about five times nginx's CPU a request (bench/tls/RESULTS.md).
// This server reads a connection's frames on one goroutine and answers the
// plainest requests (a GET or HEAD the child's static responder holds in
// memory) on that goroutine, as the HTTP/1 fast path does: the HEADERS and
// DATA frames of every answer to a batch of requests go out in one write.
// Every other request runs its http.Handler on a goroutine of its own with
// a ResponseWriter that writes frames under the connection's write lock,
// with flow control both ways.
//
// Frames are read and written with golang.org/x/net/http2's Framer and
// header blocks coded with its hpack package; what this package adds is the
// connection's and streams' states, flow control, and the mapping to
// net/http's Handler. h2spec's conformance cases pass
// (internal/e2e/tls TestH2Spec).
package h2

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phasedhq/phased/internal/sockconn"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Server serves HTTP/2 connections with ServeConn.
type Server struct {
	// Handler serves the requests Inline does not answer.
	Handler http.Handler
	// Inline, if set, may answer a GET or HEAD request without a body on
	// the connection's goroutine; ok false sends the request to Handler.
	// It must not block. r is valid only during the call.
	Inline func(c net.Conn, r *Request) (a Answer, ok bool)
	// ConnState, if set, is told when a connection starts serving
	// (http.StateActive: it reads frames or has streams open) and when it
	// waits for its client with no stream open (http.StateIdle).
	ConnState func(net.Conn, http.ConnState)
	// ConnContext, if set, makes the context of a connection's requests.
	ConnContext func(context.Context, net.Conn) context.Context
	// Draining, if set, reports whether the server is stopping: a
	// connection then sends GOAWAY and closes once its streams are done.
	Draining func() bool
	// BaseServer is put in requests' contexts as http.ServerContextKey.
	BaseServer *http.Server

	MaxConcurrentStreams uint32        // 0: 128, nginx's
	PrefaceTimeout       time.Duration // from ServeConn to the client's first SETTINGS
	IdleTimeout          time.Duration // with no stream open; 0: none
	// WriteTimeout bounds each write to the client, and each wait for the
	// client's flow-control window (nginx's send_timeout); 0: none.
	WriteTimeout time.Duration
	// ReadTimeout bounds a request body, from its HEADERS to its end;
	// 0: none. MinRate, when above 0, is the slowest a body may come in
	// bytes a second on average over the time its handler spent waiting
	// for it, once it has waited RateGrace (mod_reqtimeout's MinRate, as
	// the HTTP/1 connections have it). A body that is too late or too slow
	// fails its handler's Read and its stream is reset (CANCEL).
	ReadTimeout    time.Duration
	MinRate        int
	RateGrace      time.Duration
	MaxHeaderBytes int // 0: http.DefaultMaxHeaderBytes
	Log            *slog.Logger
}

// Request is what Inline is asked: the pseudo-header fields and the
// regular ones, lower-case as sent.
type Request struct {
	Method, Scheme, Authority, Path string
	Fields                          []hpack.HeaderField
	// Conn is Inline's to keep what it learnt of the connection, for
	// the connection's next requests.
	Conn *any
}

// Answer is an inline response.
type Answer struct {
	Status int
	// Header holds header lines as HTTP/1 writes them ("Name: value"
	// with CRLF). Names are sent lower-case; connection-specific fields
	// are dropped.
	Header []byte
	Body   []byte // not sent for HEAD
	// HasDate: Header holds a Date line; otherwise one is added.
	HasDate bool
}

const (
	streamWindow  = 256 << 10 // the receive window a stream starts with
	connWindow    = 1 << 20   // the connection's receive window
	maxWindow     = 1<<31 - 1
	chunkSize     = 16 << 10 // a handler's writes are gathered up to this
	writeBufSize  = 16 << 10
	readBufSize   = 4 << 10
	maxFrameSize  = 16 << 10 // what the server reads (RFC 9113's default)
	deadlineSlack = time.Second
)

// slack is how much older than a new one a deadline of d may be and stay:
// deadlineSlack, or a tenth of d for a shorter bound, so that a deadline
// is never more than a tenth short.
func slack(d time.Duration) time.Duration { return min(deadlineSlack, d/10) }

var errClientGone = errors.New("h2: client disconnected")
var errStreamReset = errors.New("h2: stream reset by the client")
var errBodyTimeout = errors.New("h2: request body too slow")
var errWindowTimeout = errors.New("h2: no flow-control window from the client within the write timeout")

// ServeConn serves c, which has negotiated h2, until the client leaves,
// an error ends it or the server drains. It closes c.
func (s *Server) ServeConn(c net.Conn) {
	sc := newConn(s, c)
	sc.serve(false)
}

// ServeConnPrefaced is ServeConn for a connection whose client preface
// has been read already (h2c with prior knowledge, which net/http
// recognizes before it hands the connection over).
func (s *Server) ServeConnPrefaced(c net.Conn) {
	sc := newConn(s, c)
	sc.serve(true)
}

type conn struct {
	srv    *Server
	nc     net.Conn
	br     *bufio.Reader
	fr     *http2.Framer
	ctx    context.Context
	cancel context.CancelFunc
	remote string
	tls    *tls.ConnectionState
	log    *slog.Logger

	// The write side, under wmu. w is nil while the connection is idle.
	wmu   sync.Mutex
	w     *writer
	henc  *hpack.Encoder
	hbuf  bytes.Buffer
	werr  error
	wdl   time.Time // the write deadline last set
	fbuf  []hpack.HeaderField
	lines []byte

	// Shared with the handlers, under mu; cond wakes writers waiting for
	// send window.
	mu           sync.Mutex
	cond         sync.Cond
	streams      map[uint32]*stream
	sendWin      int64 // the client's window for the connection
	initWin      int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerMaxFrame int   // the client's SETTINGS_MAX_FRAME_SIZE
	closed       bool
	goingAway    bool  // GOAWAY sent: no new streams
	recvWin      int64 // what the client may still send on the connection
	recvUnacked  int64 // bytes consumed and not yet given back

	rdl time.Time // mu: the read deadline last set

	// maxID is the highest stream id the client opened: the reader's,
	// which writes it under mu and reads it without.
	maxID uint32

	// The reader's own.
	inline    any // Request.Conn
	state     http.ConnState
	peerGone  bool // the client sent GOAWAY
	maxStream uint32
}

func newConn(s *Server, c net.Conn) *conn {
	sc := &conn{
		srv:          s,
		nc:           c,
		remote:       c.RemoteAddr().String(),
		streams:      make(map[uint32]*stream),
		sendWin:      65535,
		initWin:      65535,
		peerMaxFrame: 16384,
		recvWin:      65535,
		maxStream:    s.MaxConcurrentStreams,
		log:          s.Log,
	}
	if sc.maxStream == 0 {
		sc.maxStream = 128
	}
	if sc.log == nil {
		sc.log = slog.Default()
	}
	sc.cond.L = &sc.mu
	if cs, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := cs.ConnectionState()
		sc.tls = &st
	}
	ctx := context.Background()
	if s.BaseServer != nil {
		ctx = context.WithValue(ctx, http.ServerContextKey, s.BaseServer)
	}
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, c)
	}
	sc.ctx, sc.cancel = context.WithCancel(ctx)
	sc.br = bufio.NewReaderSize(c, readBufSize)
	sc.fr = http2.NewFramer(nil, sc.br)
	sc.fr.SetMaxReadFrameSize(maxFrameSize)
	maxHeader := s.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = http.DefaultMaxHeaderBytes
	}
	sc.fr.MaxHeaderListSize = uint32(maxHeader)
	sc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	sc.henc = hpack.NewEncoder(&sc.hbuf)
	return sc
}

// writer is a connection's write buffer and the framer that fills it,
// taken from writers while the connection has something to write: an idle
// connection holds neither (the framer keeps its largest frame's buffer).
type writer struct {
	bw *bufio.Writer
	fw *http2.Framer
}

var writers = sync.Pool{New: func() any {
	w := &writer{bw: bufio.NewWriterSize(nil, writeBufSize)}
	w.fw = http2.NewFramer(w.bw, nil)
	return w
}}

// wr is the connection's writer, taken from the pool if it has none. The
// caller holds wmu.
func (sc *conn) wr() *writer {
	if sc.w == nil {
		sc.w = writers.Get().(*writer)
		sc.w.bw.Reset(deadlineWriter{sc})
	}
	return sc.w
}

// releaseWriter gives an idle connection's writer back to the pool.
func (sc *conn) releaseWriter() {
	sc.wmu.Lock()
	if w := sc.w; w != nil && w.bw.Buffered() == 0 {
		w.bw.Reset(nil)
		writers.Put(w)
		sc.w = nil
	}
	sc.wmu.Unlock()
}

// deadlineWriter writes to the connection with the write timeout armed.
type deadlineWriter struct{ sc *conn }

func (w deadlineWriter) Write(p []byte) (int, error) {
	sc := w.sc
	if d := sc.srv.WriteTimeout; d > 0 {
		now := time.Now()
		if by := now.Add(d); by.Sub(sc.wdl) > slack(d) {
			if err := sc.nc.SetWriteDeadline(by); err != nil {
				return 0, err
			}
			sc.wdl = by
		}
	}
	return sc.nc.Write(p)
}

func (sc *conn) setState(st http.ConnState) {
	if sc.state == st {
		return
	}
	sc.state = st
	if f := sc.srv.ConnState; f != nil {
		f(sc.nc, st)
	}
}

func (sc *conn) serve(prefaced bool) {
	defer sc.close()
	sc.setState(http.StateActive)
	if d := sc.srv.PrefaceTimeout; d > 0 {
		sc.nc.SetReadDeadline(time.Now().Add(d))
	}
	if !prefaced {
		var preface [len(http2.ClientPreface)]byte
		if _, err := io.ReadFull(sc.br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
			return
		}
	}
	sc.wmu.Lock()
	sc.wr().fw.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: sc.maxStream},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: sc.fr.MaxHeaderListSize},
	)
	sc.wr().fw.WriteWindowUpdate(0, connWindow-65535)
	err := sc.flushLocked()
	sc.wmu.Unlock()
	if err != nil {
		return
	}
	sc.mu.Lock()
	sc.recvWin = connWindow
	sc.mu.Unlock()

	first := true
	for {
		if sc.br.Buffered() == 0 {
			if !sc.waitInput() {
				return
			}
		}
		f, err := sc.fr.ReadFrame()
		if err != nil {
			if !sc.readError(err) {
				return
			}
			continue
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				sc.goAway(http2.ErrCodeProtocol)
				return
			}
			first = false
			sc.mu.Lock()
			sc.nc.SetReadDeadline(time.Time{})
			sc.rdl = time.Time{}
			sc.mu.Unlock()
		}
		if err := sc.process(f); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				sc.goAway(http2.ErrCode(ce))
			}
			return
		}
	}
}

// waitInput flushes what is written and waits for the client's next
// bytes, the connection idle if no stream is open. It reports false when
// the connection is to end.
func (sc *conn) waitInput() bool {
	if sc.flush() != nil {
		return false
	}
	for {
		// Under mu: a stream that ends meanwhile arms the idle bound
		// itself (endStream), and this must not undo it.
		sc.mu.Lock()
		open := len(sc.streams)
		away := sc.goingAway
		if open > 0 && !sc.rdl.IsZero() {
			sc.nc.SetReadDeadline(time.Time{})
			sc.rdl = time.Time{}
		}
		sc.mu.Unlock()
		if open == 0 {
			if away || sc.peerGone {
				return false
			}
			if f := sc.srv.Draining; f != nil && f() {
				sc.goAway(http2.ErrCodeNo)
				return false
			}
			sc.setState(http.StateIdle)
			sc.releaseWriter()
			sc.mu.Lock()
			if len(sc.streams) == 0 {
				sc.armIdleLocked(false)
			}
			sc.mu.Unlock()
		}
		_, err := sc.br.Peek(1)
		if err == nil {
			sc.setState(http.StateActive)
			return true
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return false
		}
		sc.mu.Lock()
		open = len(sc.streams)
		sc.mu.Unlock()
		if open == 0 {
			// Idle for IdleTimeout: say so, as net/http does.
			sc.goAway(http2.ErrCodeNo)
			return false
		}
		// A stream opened meanwhile: no idle bound while it lasts.
	}
}

// armIdleLocked sets the idle bound from now, if there is one, unless the
// one set is less than slack older (always when force). The caller
// holds mu.
func (sc *conn) armIdleLocked(force bool) {
	d := sc.srv.IdleTimeout
	if d <= 0 {
		return
	}
	if by := time.Now().Add(d); force || sc.rdl.IsZero() || by.Sub(sc.rdl) > slack(d) {
		sc.nc.SetReadDeadline(by)
		sc.rdl = by
	}
}

// readError handles a frame that could not be read; false ends the
// connection.
func (sc *conn) readError(err error) bool {
	var se http2.StreamError
	if errors.As(err, &se) {
		if se.StreamID > sc.maxID && se.StreamID%2 == 1 {
			sc.mu.Lock()
			sc.maxID = se.StreamID // a HEADERS frame that opened it and was refused
			sc.mu.Unlock()
		}
		sc.resetStream(se.StreamID, se.Code)
		return true
	}
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		sc.goAway(http2.ErrCode(ce))
	case errors.Is(err, http2.ErrFrameTooLarge):
		sc.goAway(http2.ErrCodeFrameSize)
	}
	return false
}

func (sc *conn) process(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := f.ForeachSetting(sc.applySetting); err != nil {
			return err
		}
		sc.wmu.Lock()
		sc.wr().fw.WriteSettingsAck()
		sc.wmu.Unlock()
	case *http2.MetaHeadersFrame:
		return sc.onHeaders(f)
	case *http2.DataFrame:
		return sc.onData(f)
	case *http2.WindowUpdateFrame:
		return sc.onWindowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			sc.wmu.Lock()
			sc.wr().fw.WritePing(true, f.Data)
			sc.wmu.Unlock()
		}
	case *http2.RSTStreamFrame:
		if sc.idle(f.StreamID) {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if st := sc.stream(f.StreamID); st != nil {
			sc.endStream(st, errStreamReset, false)
		}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			sc.resetStream(f.StreamID, http2.ErrCodeProtocol)
		}
	case *http2.GoAwayFrame:
		sc.peerGone = true
	case *http2.PushPromiseFrame, *http2.ContinuationFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil
}

// idle reports whether stream id was never opened.
func (sc *conn) idle(id uint32) bool { return id > sc.maxID }

func (sc *conn) stream(id uint32) *stream {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.streams[id]
}

func (sc *conn) applySetting(s http2.Setting) error {
	if err := s.Valid(); err != nil {
		return err
	}
	switch s.ID {
	case http2.SettingInitialWindowSize:
		sc.mu.Lock()
		defer sc.mu.Unlock()
		delta := int64(s.Val) - sc.initWin
		sc.initWin = int64(s.Val)
		for _, st := range sc.streams {
			st.sendWin += delta
			if st.sendWin > maxWindow {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
		}
		sc.cond.Broadcast()
	case http2.SettingMaxFrameSize:
		sc.mu.Lock()
		sc.peerMaxFrame = int(s.Val)
		sc.mu.Unlock()
	case http2.SettingHeaderTableSize:
		sc.wmu.Lock()
		sc.henc.SetMaxDynamicTableSizeLimit(s.Val)
		sc.wmu.Unlock()
	}
	return nil
}

func (sc *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if f.StreamID == 0 {
		sc.sendWin += int64(f.Increment)
		if sc.sendWin > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		sc.cond.Broadcast()
		return nil
	}
	if sc.idle(f.StreamID) {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	st := sc.streams[f.StreamID]
	if st == nil {
		return nil // a stream that ended: updates may still be on their way
	}
	st.sendWin += int64(f.Increment)
	if st.sendWin > maxWindow {
		sc.mu.Unlock()
		sc.resetStream(st.id, http2.ErrCodeFlowControl)
		sc.endStream(st, errStreamReset, false)
		sc.mu.Lock()
		return nil
	}
	sc.cond.Broadcast()
	return nil
}

// goAway tells the client that the connection ends, with code, after the
// streams it has opened; they may still finish (NO_ERROR).
func (sc *conn) goAway(code http2.ErrCode) {
	sc.mu.Lock()
	sc.goingAway = true
	last := sc.maxID
	sc.mu.Unlock()
	sc.wmu.Lock()
	sc.wr().fw.WriteGoAway(last, code, nil)
	sc.flushLocked()
	sc.wmu.Unlock()
}

// resetStream sends RST_STREAM for id.
func (sc *conn) resetStream(id uint32, code http2.ErrCode) {
	sc.wmu.Lock()
	sc.wr().fw.WriteRSTStream(id, code)
	sc.wmu.Unlock()
}

func (sc *conn) flush() error {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	return sc.flushLocked()
}

func (sc *conn) flushLocked() error {
	if sc.werr != nil {
		return sc.werr
	}
	if sc.w == nil || sc.w.bw.Buffered() == 0 {
		return nil
	}
	if err := sc.w.bw.Flush(); err != nil {
		sc.werr = err
		sc.nc.Close() // the reader sees it and ends the connection
		return err
	}
	return nil
}

// close ends the connection: every stream is told, the socket closed.
func (sc *conn) close() {
	sc.flush()
	sc.releaseWriter()
	sc.mu.Lock()
	sc.closed = true
	streams := make([]*stream, 0, len(sc.streams))
	for _, st := range sc.streams {
		streams = append(streams, st)
	}
	sc.cond.Broadcast()
	sc.mu.Unlock()
	for _, st := range streams {
		st.body.closeWithError(errClientGone)
		st.cancel()
	}
	sc.cancel()
	sc.linger()
	sc.nc.Close()
	if f := sc.srv.ConnState; f != nil {
		f(sc.nc, http.StateClosed)
	}
}

// What a closing connection reads and drops of the client's last frames:
// for lingerTime at most, up to lingerBytes.
const (
	lingerTime  = time.Second
	lingerBytes = 64 << 10
)

// linger closes the connection lingering (sockconn.Linger), as Go's own
// HTTP/2 server keeps reading for a second after its GOAWAY: closed at
// once with the client's bytes unread (a PING sent after the client's own
// GOAWAY), the socket resets the connection, and the client may meet the
// reset before the frames it was sent.
func (sc *conn) linger() {
	sc.wmu.Lock()
	failed := sc.werr != nil // the socket is closed already
	sc.wmu.Unlock()
	if !failed {
		sockconn.Linger(sc.nc, lingerTime, lingerBytes)
	}
}

// writeHeaders encodes fields and writes them as the HEADERS frame (and
// CONTINUATIONs) of stream id. The caller holds wmu.
func (sc *conn) writeHeadersLocked(id uint32, fields []hpack.HeaderField, end bool) error {
	sc.hbuf.Reset()
	for _, f := range fields {
		sc.henc.WriteField(f)
	}
	block := sc.hbuf.Bytes()
	sc.mu.Lock()
	max := sc.peerMaxFrame
	sc.mu.Unlock()
	first := true
	for first || len(block) > 0 {
		frag := block
		if len(frag) > max {
			frag = frag[:max]
		}
		block = block[len(frag):]
		var err error
		if first {
			err = sc.wr().fw.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0})
			first = false
		} else {
			err = sc.wr().fw.WriteContinuation(id, len(block) == 0, frag)
		}
		if err != nil {
			return sc.writeFailed(err)
		}
	}
	return nil
}

func (sc *conn) writeFailed(err error) error {
	if sc.werr == nil {
		sc.werr = err
		sc.nc.Close()
	}
	return sc.werr
}

// parseInt64 parses a content-length value: digits only.
func parseContentLength(v string) (int64, bool) {
	if v == "" || strings.TrimLeft(v, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
