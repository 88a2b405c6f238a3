// Package h2test speaks HTTP/2 frame by frame, for tests that must send
// what a client library would not (a stalled body, a forbidden header, a
// connection left mid-request) to a server of phased's.
package h2test

import (
	"bytes"
	"io"
	"net"

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
