// Package h2test speaks HTTP/2 frame by frame, for tests that must send
// what a client library would not (a stalled body, a forbidden header, a
// connection left mid-request) to a server of phased's.
package h2test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Start sends c's client preface and SETTINGS (settings, or none) and
// returns a framer that reads and writes c.
func Start(c net.Conn, settings ...http2.Setting) *http2.Framer {
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(settings...)
	return fr
}

// Dial connects to addr (over TLS with cfg, offering h2 alone; plain TCP
// for h2c when cfg is nil), bounds every read and write of the connection
// by within, closes it when t ends, and starts HTTP/2 on it (Start).
func Dial(t testing.TB, addr string, cfg *tls.Config, within time.Duration, settings ...http2.Setting) (net.Conn, *http2.Framer) {
	t.Helper()
	var c net.Conn
	var err error
	if cfg != nil {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"h2"}
		c, err = tls.Dial("tcp", addr, cfg)
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(within))
	return c, Start(c, settings...)
}

// Request sends the HEADERS frame of a request on stream id: method and
// path to localhost over https, then fields (name, value, ...); end ends
// the stream (no body).
func Request(fr *http2.Framer, id uint32, method, path string, end bool, fields ...string) error {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	all := append([]string{":method", method, ":scheme", "https", ":authority", "localhost", ":path", path}, fields...)
	for i := 0; i+1 < len(all); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: all[i], Value: all[i+1]})
	}
	return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: end, EndHeaders: true})
}
