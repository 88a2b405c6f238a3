package fastcgi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
)

// DefaultMaxHeaderBytes bounds the CGI header block of a response when
// Options.MaxHeaderBytes is 0.
const DefaultMaxHeaderBytes = 64 << 10

// maxHeaderLines bounds the header lines of a response, whatever their size.
const maxHeaderLines = 1000

// errHeadTooLarge is returned by readHead for a header block past its bound.
var errHeadTooLarge = fmt.Errorf("%w: response header block too large", ErrProtocol)

// head is the CGI header block of a response, as RFC 3875 section 6 has it.
type head struct {
	status int
	header http.Header
}

// hopByHop are the headers that describe one connection, which the child's
// own connection to the client replaces; an app's are dropped.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// readHead reads the CGI header block that starts the response in r, up to
// the empty line that ends it, reading at most max bytes, and returns it
// with the bytes of the body already read past it.
func readHead(r io.Reader, max int) (head, []byte, error) {
	buf := make([]byte, 0, min(max, 4<<10))
	lineStart := 0 // start of the first line not yet known to be complete
	for empty := 0; ; {
		// Look for the empty line among the complete lines read so far.
		for {
			i := bytes.IndexByte(buf[lineStart:], '\n')
			if i < 0 {
				break
			}
			line := buf[lineStart : lineStart+i]
			if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
				h, err := parseHead(buf[:lineStart])
				return h, buf[lineStart+i+1:], err
			}
			lineStart += i + 1
		}
		if len(buf) >= max {
			return head{}, nil, errHeadTooLarge
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), max-len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), max)])
		buf = buf[:len(buf)+n]
		switch {
		case n > 0:
			empty = 0 // Look at what came first; an error comes back at the next read.
		case err == io.EOF && len(buf) == 0:
			return head{}, nil, fmt.Errorf("%w: empty response", ErrProtocol)
		case err == io.EOF:
			return head{}, nil, fmt.Errorf("%w: response ended within its header block", ErrProtocol)
		case err != nil:
			return head{}, nil, err
		case empty > 100:
			return head{}, nil, io.ErrNoProgress
		default:
			empty++
		}
	}
}

// parseHead parses the header lines of block, each ending in LF or CRLF.
// The Status header gives the status; without it, a Location header makes
// it 302 and anything else 200. It refuses an empty block, a line that is
// not a valid header, a Status that is not a final status, and more than
// maxHeaderLines lines. Hop-by-hop headers and a Content-Length that is not
// one decimal number are dropped.
func parseHead(block []byte) (head, error) {
	if len(block) == 0 {
		return head{}, fmt.Errorf("%w: response without a header", ErrProtocol)
	}
	h := head{header: make(http.Header)}
	lines := 0
	for len(block) > 0 {
		i := bytes.IndexByte(block, '\n')
		line := block[:i]
		block = block[i+1:]
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if lines++; lines > maxHeaderLines {
			return head{}, fmt.Errorf("%w: more than %d header lines", ErrProtocol, maxHeaderLines)
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validName(line[:colon]) {
			return head{}, fmt.Errorf("%w: malformed header line %.64q", ErrProtocol, line)
		}
		value := bytes.Trim(line[colon+1:], " \t")
		if !validValue(value) {
			return head{}, fmt.Errorf("%w: bad value of header %.64q", ErrProtocol, line[:colon])
		}
		name := textproto.CanonicalMIMEHeaderKey(string(line[:colon]))
		if name == "Status" {
			code, err := parseStatus(value)
			if err != nil {
				return head{}, err
			}
			h.status = code
			continue
		}
		if hopByHop[name] {
			continue
		}
		h.header[name] = append(h.header[name], string(value))
	}
	if cl, ok := h.header["Content-Length"]; ok {
		if len(cl) != 1 || !isDecimal(cl[0]) {
			delete(h.header, "Content-Length")
		}
	}
	if h.status == 0 {
		h.status = http.StatusOK
		if _, ok := h.header["Location"]; ok {
			h.status = http.StatusFound
		}
	}
	return h, nil
}

// parseStatus parses a Status header value: three digits of a final status
// (200 to 599), then optionally a space and a reason phrase.
func parseStatus(v []byte) (int, error) {
	if len(v) < 3 || len(v) > 3 && v[3] != ' ' || !isDecimal(string(v[:3])) {
		return 0, fmt.Errorf("%w: bad Status %.40q", ErrProtocol, v)
	}
	code, _ := strconv.Atoi(string(v[:3]))
	if code < 200 || code > 599 {
		return 0, fmt.Errorf("%w: Status %d is no final status", ErrProtocol, code)
	}
	return code, nil
}

func isDecimal(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validName reports whether b is an HTTP token (RFC 9110 section 5.6.2).
func validName(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

// validValue reports whether b holds no control character but tab.
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// tokenChar marks the ASCII characters allowed in an HTTP token.
var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
