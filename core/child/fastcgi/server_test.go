package fastcgi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/phasedhq/phased/core/child/internal/testkit"
)

// fakeRequest is a request as the fake server read it.
type fakeRequest struct {
	flags  byte
	params map[string]string
	stdin  []byte
}

// fakeServer is a FastCGI server on a unix socket in the test's folder
// that answers each request with what respond writes: the test decides
// how well or badly it behaves. It keeps a connection open only when the
// request asked for it and respond returned true.
type fakeServer struct {
	addr    string
	respond func(c net.Conn, req *fakeRequest) (keep bool)

	mu    sync.Mutex
	reqs  []*fakeRequest
	conns int
}

func newFakeServer(t testing.TB, respond func(c net.Conn, req *fakeRequest) bool) *fakeServer {
	t.Helper()
	s := &fakeServer{respond: respond}
	s.addr = testkit.ServeUnix(t, "fcgi.sock", func(ln net.Listener) {
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			wg.Go(func() { s.serveConn(c) })
		}
	})
	return s
}

func (s *fakeServer) serveConn(c net.Conn) {
	defer c.Close()
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		req, err := readFakeRequest(c)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, req)
		s.mu.Unlock()
		if !s.respond(c, req) || req.flags&flagKeepConn == 0 {
			return
		}
	}
}

// requests returns how many requests came, on how many connections.
func (s *fakeServer) requests() (reqs, conns int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs), s.conns
}

func (s *fakeServer) last() *fakeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return nil
	}
	return s.reqs[len(s.reqs)-1]
}

// readFakeRequest reads one request, up to its empty STDIN record.
func readFakeRequest(r io.Reader) (*fakeRequest, error) {
	req := &fakeRequest{params: map[string]string{}}
	var params []byte
	began := false
	for {
		var hb [headerLen]byte
		if _, err := io.ReadFull(r, hb[:]); err != nil {
			return nil, err
		}
		h, err := parseHeader(hb[:])
		if err != nil {
			return nil, err
		}
		if (h.length+uint16(h.padding))%8 != 0 {
			return nil, fmt.Errorf("record of type %d not padded to 8 bytes", h.typ)
		}
		body := make([]byte, int(h.length)+int(h.padding))
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, err
		}
		c := body[:h.length]
		if h.id != requestID {
			return nil, fmt.Errorf("request id %d", h.id)
		}
		switch h.typ {
		case typeBeginRequest:
			if began || len(c) != 8 || binary.BigEndian.Uint16(c) != roleResponder {
				return nil, errors.New("bad BEGIN_REQUEST")
			}
			began, req.flags = true, c[2]
		case typeParams:
			if len(c) > 0 {
				params = append(params, c...)
				continue
			}
			ps, err := parsePairs(params)
			if err != nil {
				return nil, err
			}
			for _, p := range ps {
				req.params[p.Name] = p.Value
			}
		case typeStdin:
			if len(c) == 0 {
				return req, nil
			}
			req.stdin = append(req.stdin, c...)
		default:
			return nil, fmt.Errorf("record type %d", h.typ)
		}
	}
}

// rec returns one record of the request, as a server would send it.
func rec(typ uint8, content string) []byte {
	return appendRecord(nil, typ, requestID, []byte(content))
}

// stdout returns a whole response: stdout in records, then the end.
func stdout(s string) []byte {
	b := appendStream(nil, typeStdout, requestID, []byte(s))
	b = append(b, rec(typeStdout, "")...)
	return append(b, endRequest(0, statusRequestComplete)...)
}

func endRequest(appStatus uint32, protocolStatus byte) []byte {
	var c [8]byte
	binary.BigEndian.PutUint32(c[:], appStatus)
	c[4] = protocolStatus
	return appendRecord(nil, typeEndRequest, requestID, c[:])
}

// answer returns a respond function that writes b and keeps the
// connection.
func answer(b []byte) func(net.Conn, *fakeRequest) bool {
	return func(c net.Conn, _ *fakeRequest) bool {
		_, err := c.Write(b)
		return err == nil
	}
}

// okResponse is a CGI response with a body.
var okResponse = stdout("Content-Type: text/plain\r\nX-App: 1\r\n\r\nhello")

// testClient returns a client of s.
func testClient(s *fakeServer, keep bool) *Client {
	return &Client{
		Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", s.addr)
		},
		KeepConn: keep,
	}
}

// readAll reads a response to its end and closes it.
func readAll(resp *Response) ([]byte, error) {
	var b bytes.Buffer
	_, err := io.Copy(&b, resp)
	resp.Close()
	return b.Bytes(), err
}

// discardLog is a logger that writes nowhere.
var discardLog = slog.New(slog.DiscardHandler)
