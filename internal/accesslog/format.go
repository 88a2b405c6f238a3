package accesslog

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Format is the layout of an access-log line. The zero value is
// [FormatCombined], Apache's and phased's default.
type Format int

const (
	// FormatCombined is Apache's combined log format,
	// `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`.
	FormatCombined Format = iota
	// FormatCommon is Apache's common log format, `%h %l %u %t "%r" %>s %b`.
	FormatCommon
	// FormatJSON is one JSON object per line with the fields of the combined
	// format plus the request's duration: time (RFC 3339, microseconds),
	// remote_host, remote_user ("" when none), request, status, bytes,
	// referer and user_agent ("" when absent), and duration_us. Strings are
	// escaped as encoding/json does, invalid UTF-8 becoming U+FFFD.
	FormatJSON
	// FormatCommonDuration is the common format followed by the time taken
	// to serve the request in microseconds, Apache's %D:
	// `%h %l %u %t "%r" %>s %b %D`.
	FormatCommonDuration
	// FormatCombinedDuration is the combined format followed by %D:
	// `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %D`.
	FormatCombinedDuration
)

// formatNames are the formats' names, by Format.
var formatNames = [...]string{
	FormatCombined:         "combined",
	FormatCommon:           "common",
	FormatJSON:             "json",
	FormatCommonDuration:   "common_duration",
	FormatCombinedDuration: "combined_duration",
}

// FormatNames returns the names ParseFormat accepts, in Format order.
func FormatNames() []string { return append([]string(nil), formatNames[:]...) }

// ParseFormat returns the format named s ("common", "combined", "json",
// "common_duration" or "combined_duration"), in any case; "" means
// "combined". Any other value is an error naming it and the valid names.
func ParseFormat(s string) (Format, error) {
	if s == "" {
		return FormatCombined, nil
	}
	for f, name := range formatNames {
		if strings.EqualFold(s, name) {
			return Format(f), nil
		}
	}
	return 0, fmt.Errorf("unknown access log format %q (valid: %s)", s, strings.Join(formatNames[:], ", "))
}

// Timed reports whether lines in f carry the request's duration (json and
// the _duration formats), so the clock must be read when a request ends.
func (f Format) Timed() bool {
	return f == FormatJSON || f == FormatCommonDuration || f == FormatCombinedDuration
}

// String returns the name of f as ParseFormat reads it.
func (f Format) String() string {
	if f >= 0 && int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// MarshalText returns the name of f, so a Format can sit in a config struct.
func (f Format) MarshalText() ([]byte, error) {
	if f < 0 || int(f) >= len(formatNames) {
		return nil, fmt.Errorf("invalid access log format %d", int(f))
	}
	return []byte(f.String()), nil
}

// UnmarshalText sets f to the format named text, as ParseFormat.
func (f *Format) UnmarshalText(text []byte) error {
	v, err := ParseFormat(string(text))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// entry is what one access-log line records.
type entry struct {
	remoteAddr string // host:port, as http.Request.RemoteAddr
	user       string
	hasUser    bool
	received   time.Time
	method     string
	uri        string
	proto      string
	status     int
	bytes      int64
	referer    []string // the header's values; nil when absent
	userAgent  []string
	duration   time.Duration
	tls        *tls.ConnectionState // nil over plain HTTP
}

// appendEntry appends e in format f to b, with the final newline; tc, if
// not nil, caches the formatted %t.
func appendEntry(b []byte, f Format, e *entry, tc *timeCache) []byte {
	if f == FormatJSON {
		return appendJSON(b, e)
	}
	b = append(b, remoteHost(e.remoteAddr)...)
	b = append(b, " - "...)
	switch {
	case !e.hasUser:
		b = append(b, '-')
	case e.user == "":
		b = append(b, `""`...)
	default:
		b = appendEscaped(b, e.user)
	}
	b = append(b, ' ')
	if tc != nil {
		b = tc.appendCLF(b, e.received)
	} else {
		b = appendCLFTime(b, e.received)
	}
	b = append(b, ` "`...)
	b = appendEscaped(b, e.method)
	b = append(b, ' ')
	b = appendEscaped(b, e.uri)
	b = append(b, ' ')
	b = appendEscaped(b, e.proto)
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, ' ')
	if e.bytes == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendInt(b, e.bytes, 10)
	}
	if f == FormatCombined || f == FormatCombinedDuration {
		b = append(b, ` "`...)
		b = appendHeader(b, e.referer)
		b = append(b, `" "`...)
		b = appendHeader(b, e.userAgent)
		b = append(b, '"')
	}
	if f == FormatCommonDuration || f == FormatCombinedDuration {
		b = append(b, ' ')
		b = strconv.AppendInt(b, max(e.duration.Microseconds(), 0), 10)
	}
	return append(b, '\n')
}

// appendHeader appends a request header as Apache's %{Name}i: "-" when
// absent, the values joined by ", " and escaped otherwise.
func appendHeader(b []byte, values []string) []byte {
	if len(values) == 0 {
		return append(b, '-')
	}
	for i, v := range values {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendEscaped(b, v)
	}
	return b
}

// remoteHost returns the host part of a host:port address, without the
// brackets of an IPv6 literal, as Apache's %h; "-" when addr is empty; addr
// itself when it has no port.
func remoteHost(addr string) string {
	if addr == "" {
		return "-"
	}
	if addr[0] == '[' {
		if i := strings.IndexByte(addr, ']'); i > 0 {
			return addr[1:i]
		}
		return addr
	}
	if i := strings.LastIndexByte(addr, ':'); i >= 0 && strings.IndexByte(addr[:i], ':') < 0 {
		return addr[:i]
	}
	return addr
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends s escaped as Apache's ap_escape_logitem: `"` and `\`
// get a backslash, \b \n \r \t \v their C escapes, and every other byte that
// is not printable ASCII becomes \xhh.
func appendEscaped(b []byte, s string) []byte {
	i := firstUnsafe(s)
	if i == len(s) {
		return append(b, s...)
	}
	b = append(b, s[:i]...)
	start := i
	for ; i < len(s); i++ {
		c := s[i]
		if logSafe[c] {
			continue
		}
		b = append(b, s[start:i]...)
		start = i + 1
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, `\b`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		case '\v':
			b = append(b, `\v`...)
		default:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	return append(b, s[start:]...)
}

// logSafe reports, per byte, whether appendEscaped copies it as it is.
var logSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// firstUnsafe returns the index of the first byte of s that needs escaping,
// or len(s). It tests eight bytes at a time: headers are mostly clean, and
// this halves the cost of a typical User-Agent.
func firstUnsafe(s string) int {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		control := (x - ones*0x20) & ^x & high           // a byte < 0x20
		nonASCII := ((x&^high + ones) | x) & high        // a byte >= 0x7f
		q := x ^ (ones * '"')                            // a zero byte where x has '"'
		bs := x ^ (ones * '\\')                          // a zero byte where x has '\\'
		special := (q-ones)&^q&high | (bs-ones)&^bs&high // a quote or a backslash
		if control|nonASCII|special != 0 {
			break
		}
	}
	for ; i < len(s) && logSafe[s[i]]; i++ {
	}
	return i
}

const months = "JanFebMarAprMayJunJulAugSepOctNovDec"

// appendCLFTime appends t as Apache's %t: [10/Oct/2000:13:55:36 -0700].
func appendCLFTime(b []byte, t time.Time) []byte {
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	_, offset := t.Zone()
	b = append(b, '[')
	b = append2(b, day)
	b = append(b, '/')
	b = append(b, months[3*(month-1):3*month]...)
	b = append(b, '/')
	b = append4(b, year)
	b = append(b, ':')
	b = append2(b, hour)
	b = append(b, ':')
	b = append2(b, minute)
	b = append(b, ':')
	b = append2(b, sec)
	b = append(b, ' ')
	b = appendOffset(b, offset, false)
	return append(b, ']')
}

// timeCache keeps the last %t formatted, as Apache's cached_explode: most
// requests are logged in the same second as the one before.
type timeCache struct {
	last atomic.Pointer[cachedTime]
}

type cachedTime struct {
	sec  int64
	loc  *time.Location
	text []byte
}

// appendCLF appends t as appendCLFTime does.
func (c *timeCache) appendCLF(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	if ct := c.last.Load(); ct != nil && ct.sec == sec && ct.loc == loc {
		return append(b, ct.text...)
	}
	text := appendCLFTime(make([]byte, 0, 28), t)
	c.last.Store(&cachedTime{sec: sec, loc: loc, text: text})
	return append(b, text...)
}

// appendRFC3339Micro appends t as 2000-10-10T13:55:36.000000-07:00.
func appendRFC3339Micro(b []byte, t time.Time) []byte {
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	_, offset := t.Zone()
	b = append4(b, year)
	b = append(b, '-')
	b = append2(b, int(month))
	b = append(b, '-')
	b = append2(b, day)
	b = append(b, 'T')
	b = append2(b, hour)
	b = append(b, ':')
	b = append2(b, minute)
	b = append(b, ':')
	b = append2(b, sec)
	b = append(b, '.')
	us := t.Nanosecond() / 1000
	b = append2(b, us/10000)
	b = append2(b, us/100%100)
	b = append2(b, us%100)
	if offset == 0 {
		return append(b, 'Z')
	}
	return appendOffset(b, offset, true)
}

// appendOffset appends a zone offset in seconds as -0700, or -07:00 with colon.
func appendOffset(b []byte, offset int, colon bool) []byte {
	sign := byte('+')
	if offset < 0 {
		sign = '-'
		offset = -offset
	}
	b = append(b, sign)
	b = append2(b, offset/3600)
	if colon {
		b = append(b, ':')
	}
	return append2(b, offset%3600/60)
}

func append2(b []byte, n int) []byte {
	return append(b, byte('0'+n/10%10), byte('0'+n%10))
}

func append4(b []byte, n int) []byte {
	if n < 0 || n > 9999 {
		return strconv.AppendInt(b, int64(n), 10)
	}
	return append(b, byte('0'+n/1000), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
}

// TLSProtocol is mod_ssl's name for a TLS version (its SSL_PROTOCOL,
// nginx's $ssl_protocol): TLSv1.3.
func TLSProtocol(version uint16) string {
	return strings.Replace(tls.VersionName(version), "TLS 1", "TLSv1", 1)
}

// appendJSON appends e as one JSON object and a newline.
func appendJSON(b []byte, e *entry) []byte {
	b = append(b, `{"time":"`...)
	b = appendRFC3339Micro(b, e.received)
	b = append(b, `","remote_host":`...)
	host := remoteHost(e.remoteAddr)
	if host == "-" {
		host = ""
	}
	b = appendJSONString(b, host)
	b = append(b, `,"remote_user":`...)
	b = appendJSONString(b, e.user)
	b = append(b, `,"request":"`...)
	b = appendJSONChars(b, e.method)
	b = append(b, ' ')
	b = appendJSONChars(b, e.uri)
	b = append(b, ' ')
	b = appendJSONChars(b, e.proto)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, `,"referer":"`...)
	b = appendJSONHeader(b, e.referer)
	b = append(b, `","user_agent":"`...)
	b = appendJSONHeader(b, e.userAgent)
	b = append(b, `","duration_us":`...)
	b = strconv.AppendInt(b, e.duration.Microseconds(), 10)
	if t := e.tls; t != nil {
		// mod_ssl's %{SSL_PROTOCOL}x, %{SSL_CIPHER}x (by IANA's name, as
		// Go names it) and %{SSL_CLIENT_S_DN}x; nginx's $ssl_protocol,
		// $ssl_cipher and $ssl_client_s_dn.
		b = append(b, `,"tls_version":`...)
		b = appendJSONString(b, TLSProtocol(t.Version))
		b = append(b, `,"tls_cipher":`...)
		b = appendJSONString(b, tls.CipherSuiteName(t.CipherSuite))
		if len(t.VerifiedChains) > 0 { // as SSL_CLIENT_VERIFY: SUCCESS
			b = append(b, `,"tls_client_s_dn":`...)
			b = appendJSONString(b, t.PeerCertificates[0].Subject.String())
		}
	}
	return append(b, "}\n"...)
}

func appendJSONHeader(b []byte, values []string) []byte {
	for i, v := range values {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendJSONChars(b, v)
	}
	return b
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONChars(b, s)
	return append(b, '"')
}

// appendJSONChars appends s escaped for the inside of a JSON string: quotes,
// backslashes, control characters, U+2028 and U+2029 escaped, invalid UTF-8
// replaced by U+FFFD, as encoding/json does.
func appendJSONChars(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
