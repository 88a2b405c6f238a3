package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/phasedhq/phased/core/child/internal/gateway"
	"github.com/phasedhq/phased/internal/childrt"
	"github.com/phasedhq/phased/internal/sockconn"
	"golang.org/x/net/http/httpguts"
)

// ForwardFast forwards a plain request from the child's fast path
// (childrt.FastForwarder) without net/http: the request the app gets is
// the one ServeHTTP would send (the client's header lines less the
// hop-by-hop and forwarding ones, X-Forwarded-For, -Host, -Proto and
// X-Request-Id set), and an answer with a length that fits
// app.response_buffer_size, read whole, is sent as ServeHTTP would send
// it. Anything else goes to ServeHTTP: before the request reaches the app
// when the request has something the fast path leaves out (then nothing
// is carried), after it when the answer does (a stream, chunks, a large
// body, 1xx...: the app's connection is carried with its answer unread,
// and ServeHTTP reads it from there, never sending the request twice).
func (p *Proxy) ForwardFast(req *childrt.ForwardRequest) (childrt.ForwardAnswer, any, bool) {
	var no childrt.ForwardAnswer
	if req.Host == nil {
		return no, nil, false // HTTP/1.0 without Host: net/http names the app
	}
	bp := fwdBufs.Get().(*[]byte)
	defer fwdBufs.Put(bp)
	out, ok := p.fastRequest((*bp)[:0], req)
	*bp = out[:0]
	if !ok {
		return no, nil, false
	}
	c := p.tr.takeIdle()
	reused := c != nil
	if c == nil && p.o.Exchange != nil {
		if x, err := p.o.Exchange(); err != nil {
			return no, nil, false // ServeHTTP dials again, and answers its failure
		} else if x != nil {
			return p.exchangeFast(x, out, req.Head)
		}
	}
	if c == nil {
		var err error
		if c, err = p.tr.dialNew(context.Background()); err != nil {
			return no, nil, false
		}
	}
	_, err := c.bw.Write(out)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.close()
		if reused {
			return no, nil, false // the app had closed it: sent again afresh
		}
		return no, &fastCarry{err: err}, false
	}
	if p.o.ReadTimeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(p.o.ReadTimeout))
	}
	head, err := peekHead(c)
	if p.o.ReadTimeout > 0 && err == nil {
		c.nc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.close() // not sent again: the app has had it for app.read_timeout
			return no, &fastCarry{err: readTimedOut(err, p.o.ReadTimeout)}, false
		}
		if reused && c.br.Buffered() == 0 {
			// Closed before any answer, as RoundTrip resends (a GET or
			// HEAD is replayable): ServeHTTP does it.
			c.close()
			return no, nil, false
		}
		return no, &fastCarry{c: c}, false // ServeHTTP reads the error itself
	}
	var ans fastAnswer
	if head == nil || !p.parseAnswer(head, req.Head, &ans) {
		return no, &fastCarry{c: c}, false
	}
	c.br.Discard(len(head))
	a := childrt.ForwardAnswer{Status: ans.status, Header: ans.header, HasDate: ans.date}
	if !req.Head && ans.length > 0 {
		a.Body = make([]byte, ans.length)
		if _, err := io.ReadFull(c.br, a.Body); err != nil {
			c.close()
			return no, &fastCarry{err: fmt.Errorf("reading the app's response: %w", err)}, false
		}
	}
	if ans.keep && !req.Head {
		p.tr.put(c)
	} else {
		c.done()
	}
	return a, nil, true
}

// exchangeFast is ForwardFast on a new connection outside the netpoller
// (sockconn.Exchange), for an app that closes each connection after its
// answer: the request out is written, the answer read into a pooled
// buffer, and the connection closed; an answer the fast path does not send
// (or one that keeps the connection) goes on as a Conn, with what was read
// of it, to ServeHTTP (or to the idle pool).
func (p *Proxy) exchangeFast(x *sockconn.Exchange, out []byte, isHead bool) (childrt.ForwardAnswer, any, bool) {
	var no childrt.ForwardAnswer
	if _, err := x.Write(out); err != nil {
		x.Close()
		return no, &fastCarry{err: err}, false
	}
	bp := answerBufs.Get().(*[]byte)
	defer answerBufs.Put(bp)
	buf := *bp
	if p.o.ReadTimeout > 0 {
		x.SetReadDeadline(time.Now().Add(p.o.ReadTimeout))
	}
	n, end := 0, -1
	for n < len(buf) {
		m, err := x.Read(buf[n:])
		n += m
		if errors.Is(err, os.ErrDeadlineExceeded) {
			x.Close()
			return no, &fastCarry{err: readTimedOut(err, p.o.ReadTimeout)}, false
		}
		if end = bytes.Index(buf[:n], []byte("\r\n\r\n")); end >= 0 || err != nil {
			break
		}
	}
	if p.o.ReadTimeout > 0 {
		x.SetReadDeadline(time.Time{}) // a body that has begun flows unbounded
	}
	var ans fastAnswer
	if end < 0 || !p.parseAnswer(buf[:end+4], isHead, &ans) {
		return no, p.carryExchange(x, buf[:n]), false // ServeHTTP reads the rest, or the error
	}
	a := childrt.ForwardAnswer{Status: ans.status, Header: ans.header, HasDate: ans.date}
	have := buf[end+4 : n]
	if !isHead && ans.length > 0 {
		a.Body = make([]byte, ans.length)
		got := copy(a.Body, have)
		have = have[got:]
		for got < len(a.Body) {
			m, err := x.Read(a.Body[got:])
			got += m
			if err != nil && got < len(a.Body) {
				x.Close()
				return no, &fastCarry{err: fmt.Errorf("reading the app's response: %w", err)}, false
			}
		}
	}
	if ans.keep && !isHead && len(have) == 0 {
		// An app that keeps its connections (behind an app that closed
		// one, or the first): into the pool, in the netpoller.
		if nc, err := x.Conn(); err == nil {
			p.tr.put(newAppConn(nc, nc))
		}
		return a, nil, true
	}
	x.Close()
	return a, nil, true
}

// carryExchange hands the exchange's connection to ServeHTTP with what
// was read of its answer (got) still to read.
func (p *Proxy) carryExchange(x *sockconn.Exchange, got []byte) *fastCarry {
	nc, err := x.Conn()
	if err != nil {
		x.Close()
		return &fastCarry{err: err}
	}
	return &fastCarry{c: newAppConn(nc, io.MultiReader(bytes.NewReader(bytes.Clone(got)), nc))}
}

// answerBufs are the buffers exchangeFast reads an answer's head into,
// the size of an app connection's reader (a longer head is ServeHTTP's).
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// fastCarry is what ForwardFast leaves ServeHTTP: the app's connection
// with its answer unread, or the error that ended the exchange.
type fastCarry struct {
	c   *appConn
	err error
}

type carryKey struct{}

// serveCarried finishes a request ForwardFast sent: the transport reads
// the answer from the carried connection.
func (p *Proxy) serveCarried(w http.ResponseWriter, r *http.Request, fc *fastCarry) {
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), carryKey{}, fc)))
}

// fwdBufs are the buffers requests to the app are made in.
var fwdBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2<<10); return &b }}

// fastRequest appends to out the request the app gets; false when the
// request has a header the fast path leaves to ServeHTTP.
func (p *Proxy) fastRequest(out []byte, req *childrt.ForwardRequest) ([]byte, bool) {
	out = append(out, "GET "...)
	if req.Head {
		out = append(out[:0], "HEAD "...)
	}
	out = append(out, req.Target...)
	out = append(out, " HTTP/1.1\r\nHost: "...)
	out = append(out, req.Host...)
	out = append(out, "\r\n"...)
	var id []byte
	for rest := req.Header; len(rest) > 0; {
		nl := bytes.IndexByte(rest, '\n')
		line := rest[:nl+1]
		rest = rest[nl+1:]
		colon := bytes.IndexByte(line, ':')
		name := line[:colon]
		switch {
		case fold(name, "host"), fold(name, "forwarded"), fold(name, "x-forwarded-for"),
			fold(name, "x-forwarded-host"), fold(name, "x-forwarded-proto"),
			fold(name, "keep-alive"), fold(name, "proxy-connection"), fold(name, "proxy-authenticate"),
			fold(name, "proxy-authorization"), fold(name, "trailer"), gateway.Reserved(name):
			continue // set below, hop-by-hop, or not the client's to say
		case fold(name, "x-request-id"):
			if id == nil {
				id = bytes.Trim(line[colon+1:len(line)-2], " \t")
			}
			continue
		case fold(name, "connection"):
			if _, names := connection(line[colon+1 : len(line)-2]); names {
				return out, false
			}
			continue
		case fold(name, "te"):
			return out, false // "TE: trailers" is passed on by ServeHTTP
		}
		out = append(out, line...)
	}
	out = append(out, "X-Forwarded-For: "...)
	out = req.Client.AppendTo(out)
	out = append(out, "\r\nX-Forwarded-Host: "...)
	out = append(out, req.Host...)
	out = append(out, "\r\nX-Forwarded-Proto: http\r\nX-Request-Id: "...)
	if validRequestID(string(id)) {
		out = append(out, id...)
	} else {
		var b [16]byte
		rand.Read(b[:])
		out = hex.AppendEncode(out, b[:])
	}
	if p.sendfile != nil {
		out = append(out, "\r\nX-Sendfile-Type: "+gateway.SendfileType...)
	}
	return append(out, "\r\n\r\n"...), true
}

// peekHead waits for the answer's whole head in c's reader and returns
// it, unread; nil when it does not fit the reader.
func peekHead(c *appConn) ([]byte, error) {
	for n := 1; ; {
		b, err := c.br.Peek(n)
		if err != nil {
			if len(b) == c.br.Size() {
				return nil, nil // a head this long is ServeHTTP's
			}
			return nil, err
		}
		b, _ = c.br.Peek(c.br.Buffered())
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			return b[:i+4], nil
		}
		if n = len(b) + 1; n > c.br.Size() {
			return nil, nil
		}
	}
}

// fastAnswer is an answer's head as parseAnswer reads it.
type fastAnswer struct {
	status int
	header []byte // to send: status line and header lines
	length int64
	date   bool
	keep   bool // the app keeps the connection
}

// parseAnswer reads the head of the app's answer into a: true when it is
// one ForwardFast sends itself, a final answer with a Content-Length that
// fits response_buffer_size and nothing that makes it a stream, with a
// Content-Type when it has a body (net/http would sniff one).
func (p *Proxy) parseAnswer(head []byte, isHead bool, a *fastAnswer) bool {
	nl := bytes.IndexByte(head, '\n')
	line := head[:nl+1]
	if len(line) < 14 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || line[len(line)-2] != '\r' ||
		(line[7] != '0' && line[7] != '1') || len(line) > 14 && line[12] != ' ' {
		return false
	}
	code, err := strconv.Atoi(string(line[9:12]))
	text := http.StatusText(code)
	if err != nil || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified || text == "" {
		return false
	}
	a.status, a.keep, a.length = code, line[7] == '1', -1
	out := make([]byte, 0, len(head)+16)
	out = append(out, "HTTP/1.1 "...)
	out = append(out, line[9:12]...)
	out = append(out, ' ')
	out = append(out, text...)
	out = append(out, "\r\n"...)
	ctype := false
	for rest := head[nl+1 : len(head)-2]; len(rest) > 0; {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 1 || rest[nl-1] != '\r' {
			return false
		}
		line := rest[:nl-1]
		rest = rest[nl+1:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !httpguts.ValidHeaderFieldName(bstr(line[:colon])) {
			return false
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		if !httpguts.ValidHeaderFieldValue(bstr(value)) {
			return false
		}
		switch {
		case fold(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || a.length >= 0 || value[0] == '+' {
				return false
			}
			a.length = n
		case fold(name, "connection"):
			closes, names := connection(value)
			if names {
				return false
			}
			a.keep = a.keep && !closes
			continue
		case p.sendfile != nil && fold(name, "x-sendfile"):
			return false // the child sends the file: ServeHTTP's (sendfile.go)
		case fold(name, "keep-alive"), fold(name, "proxy-connection"), fold(name, "proxy-authenticate"),
			fold(name, "proxy-authorization"), fold(name, "te"), fold(name, "upgrade"):
			continue // hop-by-hop
		case fold(name, "transfer-encoding"), fold(name, "trailer"), fold(name, "x-accel-buffering"):
			return false
		case fold(name, "content-type"):
			if bytes.HasPrefix(bytes.ToLower(value), []byte("text/event-stream")) {
				return false
			}
			ctype = true
		case fold(name, "date"):
			a.date = true
		}
		out = append(out, name...)
		out = append(out, ": "...)
		out = append(out, value...)
		out = append(out, "\r\n"...)
	}
	if a.length < 0 || a.length > p.o.ResponseBufferSize || a.length > 0 && !ctype && !isHead {
		return false
	}
	a.header = out
	return true
}

// connection reads a Connection header's value: whether it says close,
// and whether it names headers (hop-by-hop, then), anything but close and
// keep-alive, which the fast path leaves to ServeHTTP.
func connection(value []byte) (closes, names bool) {
	for _, tok := range bytes.Split(value, []byte(",")) {
		switch tok = bytes.Trim(tok, " \t"); {
		case fold(tok, "close"):
			closes = true
		case len(tok) > 0 && !fold(tok, "keep-alive"):
			names = true
		}
	}
	return closes, names
}

// fold reports whether b is s, ASCII case-insensitively (s in lower case).
func fold(b []byte, s string) bool { return gateway.FoldEqual(b, s) }

// bstr views b as a string for the length of a call that does not keep it.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
