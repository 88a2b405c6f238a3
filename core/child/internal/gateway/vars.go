package gateway

import (
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Script is what a request runs, as its CGI meta-variables name it.
type Script struct {
	// Name is SCRIPT_NAME, the URL path of the script.
	Name string

	// Filename is SCRIPT_FILENAME, its absolute file name.
	Filename string

	// PathInfo is PATH_INFO, the URL path after Name; "" for none.
	PathInfo string

	// DocumentRoot is DOCUMENT_ROOT, and the base of PATH_TRANSLATED.
	DocumentRoot string

	// Software is SERVER_SOFTWARE.
	Software string
}

// Vars calls emit with each RFC 3875 meta-variable of request r running
// script s, then each request header as HTTP_*, as Apache and nginx pass
// them. contentLength is the length of the body that will be sent, or 0
// when there is none. A value holding a NUL byte, which no environment can
// carry, is left out.
func Vars(r *http.Request, s Script, contentLength int64, emit func(name, value string)) {
	put := func(name, value string) {
		if strings.IndexByte(value, 0) < 0 {
			emit(name, value)
		}
	}
	put("GATEWAY_INTERFACE", "CGI/1.1")
	put("SERVER_SOFTWARE", s.Software)
	put("SERVER_PROTOCOL", r.Proto)
	put("REQUEST_METHOD", r.Method)
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		uri = r.URL.RequestURI()
	}
	put("REQUEST_URI", uri)
	put("QUERY_STRING", r.URL.RawQuery)
	put("SCRIPT_NAME", s.Name)
	put("SCRIPT_FILENAME", s.Filename)
	put("DOCUMENT_ROOT", s.DocumentRoot)
	if s.PathInfo != "" {
		put("PATH_INFO", s.PathInfo)
		put("PATH_TRANSLATED", strings.TrimSuffix(s.DocumentRoot, "/")+s.PathInfo)
	}

	host, port := splitHostPort(r.Host)
	put("SERVER_NAME", host)
	scheme, defPort := "http", "80"
	if r.TLS != nil {
		scheme, defPort = "https", "443"
		put("HTTPS", "on")
		TLSVars(r.TLS, put)
	}
	put("REQUEST_SCHEME", scheme)
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ip, lport, err := net.SplitHostPort(la.String()); err == nil {
			put("SERVER_ADDR", ip)
			port = lport
		}
	}
	if port == "" {
		port = defPort
	}
	put("SERVER_PORT", port)
	if ip, rport, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		put("REMOTE_ADDR", ip)
		put("REMOTE_PORT", rport)
	} else if r.RemoteAddr != "" {
		put("REMOTE_ADDR", r.RemoteAddr)
	}

	if ct := r.Header.Get("Content-Type"); ct != "" {
		put("CONTENT_TYPE", ct)
	}
	if contentLength > 0 {
		put("CONTENT_LENGTH", strconv.FormatInt(contentLength, 10))
	}
	if r.Host != "" {
		put("HTTP_HOST", r.Host)
	}
	for k, vv := range r.Header {
		name, ok := HeaderVar(k)
		if !ok {
			continue
		}
		sep := ", "
		if name == "HTTP_COOKIE" {
			sep = "; "
		}
		put(name, strings.Join(vv, sep))
	}
}

// HeaderVar returns the meta-variable that carries request header k,
// "HTTP_" and k in upper case with '-' as '_', and whether k is passed at
// all. A name with anything but ASCII letters, digits and '-' is not
// passed, so that "X_Real_IP" cannot pose as "X-Real-IP"; neither is Proxy
// (httpoxy: a script would take it for HTTP_PROXY), nor Host, Content-Type
// and Content-Length, which have variables of their own, nor the Reserved
// ones, which are not the client's to say.
func HeaderVar(k string) (string, bool) {
	if k == "" || Reserved(k) {
		return "", false
	}
	b := make([]byte, 0, 5+len(k))
	b = append(b, "HTTP_"...)
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-':
			c = '_'
		default:
			return "", false
		}
		b = append(b, c)
	}
	switch name := string(b); name {
	case "HTTP_PROXY", "HTTP_HOST", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH":
		return "", false
	default:
		return name, true
	}
}

// splitHostPort splits a Host header value into its host and port; port is
// "" when there is none.
func splitHostPort(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
}
