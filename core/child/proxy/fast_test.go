package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/childrt"
)

// seenApp records the requests it gets (method, target, Host, header) and
// answers "hello" (with a length: Go's server knows it), or, for /stream,
// flushes it out chunked.
type seenApp struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (a *seenApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.reqs = append(a.reqs, r.Clone(r.Context()))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Keep-Alive", "timeout=5") // hop-by-hop: not passed on
	w.Write([]byte("hello"))
	if r.URL.Path == "/stream" {
		w.(http.Flusher).Flush()
	}
}

func (a *seenApp) taken() []*http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*http.Request(nil), a.reqs...)
}

func fwdReq(target, header string) *childrt.ForwardRequest {
	return &childrt.ForwardRequest{Target: []byte(target), Proto: "HTTP/1.1", Host: []byte("example.org"),
		Header: []byte(header), Client: netip.MustParseAddr("192.0.2.1")}
}

const clientHeader = "Host: example.org\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-Proto: https\r\n" +
	"X-Request-Id: id-1\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nAccept: text/html\r\nUser-Agent: ua\r\n" +
	"X-SSL-Client-Verify: SUCCESS\r\nx-ssl-client-s-dn: CN=admin\r\n"

// TestForwardFastSendsWhatServeHTTPSends: the app gets the same request
// from ForwardFast as from ServeHTTP (the client's forwarding and
// hop-by-hop headers replaced or dropped), and the client gets the same
// answer, less the hop-by-hop headers; the app's connection is kept.
func TestForwardFastSendsWhatServeHTTPSends(t *testing.T) {
	app := &seenApp{}
	p, conns := testApp(t, app, time.Minute)
	ans, carry, ok := p.ForwardFast(fwdReq("/p?q=1", clientHeader))
	if !ok || carry != nil {
		t.Fatalf("not answered: %v %v", ok, carry)
	}
	head := string(ans.Header)
	if ans.Status != 200 || string(ans.Body) != "hello" || !ans.HasDate || !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") ||
		!strings.Contains(head, "Content-Length: 5\r\n") || !strings.Contains(head, "Content-Type: text/plain\r\n") ||
		strings.Contains(head, "Keep-Alive") || strings.Contains(head, "Connection") {
		t.Fatalf("answer %d %q %q", ans.Status, head, ans.Body)
	}
	req := httptest.NewRequest("GET", "/p?q=1", nil)
	req.Host, req.RemoteAddr = "example.org", "192.0.2.1:1234"
	for _, l := range strings.Split(strings.TrimSuffix(clientHeader, "\r\n"), "\r\n") {
		k, v, _ := strings.Cut(l, ": ")
		if k != "Host" {
			req.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	p.ServeHTTP(w, req)
	got := app.taken()
	if len(got) != 2 {
		t.Fatalf("the app got %d requests", len(got))
	}
	fast, slow := got[0], got[1]
	if fast.RequestURI != slow.RequestURI || fast.Host != slow.Host || fast.Proto != slow.Proto || fast.Method != slow.Method {
		t.Errorf("request line: fast %s %s %s %s, ServeHTTP %s %s %s %s", fast.Method, fast.RequestURI, fast.Proto, fast.Host,
			slow.Method, slow.RequestURI, slow.Proto, slow.Host)
	}
	if len(fast.Header) != len(slow.Header) {
		t.Errorf("header: fast %v, ServeHTTP %v", fast.Header, slow.Header)
	}
	for k, v := range slow.Header {
		if strings.Join(fast.Header[k], ",") != strings.Join(v, ",") {
			t.Errorf("%s: fast %q, ServeHTTP %q", k, fast.Header[k], v)
		}
	}
	if fast.Header.Get("X-Forwarded-For") != "192.0.2.1" || fast.Header.Get("X-Request-Id") != "id-1" || fast.Header.Get("Forwarded") != "" {
		t.Errorf("forwarding headers: %v", fast.Header)
	}
	if fast.Header.Get("X-Ssl-Client-Verify") != "" || fast.Header.Get("X-Ssl-Client-S-Dn") != "" || len(slow.Header["X-Ssl-Client-Verify"]) != 0 {
		t.Errorf("a client's X-SSL-Client-* reached the app: %v", fast.Header)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections to the app, want 1 (kept)", n)
	}
	// An X-Request-Id that may not be passed on is replaced.
	p.ForwardFast(fwdReq("/", "Host: example.org\r\nX-Request-Id: a b\r\n"))
	got = app.taken()
	if id := got[len(got)-1].Header.Get("X-Request-Id"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("X-Request-Id %q", id)
	}
}

// TestForwardFastLeavesTheRest: a request with a header the fast path
// leaves to ServeHTTP is not sent (no carry); an answer it does not send
// itself (chunked) is carried, and ServeHTTP reads it from the carried
// connection without sending the request again.
func TestForwardFastLeavesTheRest(t *testing.T) {
	app := &seenApp{}
	p, _ := testApp(t, app, time.Minute)
	for _, h := range []string{"Connection: x-private\r\nX-Private: 1\r\n", "TE: trailers\r\n"} {
		if _, carry, ok := p.ForwardFast(fwdReq("/", "Host: example.org\r\n"+h)); ok || carry != nil {
			t.Errorf("%q: ok %v, carry %v", h, ok, carry)
		}
	}
	if n := len(app.taken()); n != 0 {
		t.Fatalf("the app got %d requests", n)
	}
	_, carry, ok := p.ForwardFast(fwdReq("/stream", "Host: example.org\r\n"))
	fc, _ := carry.(*fastCarry)
	if ok || fc == nil || fc.c == nil {
		t.Fatalf("a chunked answer: ok %v, carry %v", ok, carry)
	}
	req := httptest.NewRequest("GET", "/stream", nil)
	w := httptest.NewRecorder()
	p.serveCarried(w, req, fc)
	if w.Code != 200 || w.Body.String() != "hello" || w.Header().Get("Keep-Alive") != "" {
		t.Fatalf("carried answer %d %v %q", w.Code, w.Header(), w.Body)
	}
	if n := len(app.taken()); n != 1 {
		t.Fatalf("the app got %d requests, want 1", n)
	}
}

// TestClientCertificateHeaders: a request over TLS with a verified client
// certificate reaches the app with X-SSL-Client-Verify: SUCCESS, the
// subject, issuer, serial and the certificate (URL-escaped PEM), whatever
// the client sent in those headers itself; one without a certificate with
// none of them.
func TestClientCertificateHeaders(t *testing.T) {
	app := &seenApp{}
	p, _ := testApp(t, app, time.Minute)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Clients CA", Organization: []string{"Example"}}}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(0xBEEF), Subject: pkix.Name{CommonName: "alice", Organization: []string{"Example"}},
		Issuer: ca.Subject, Raw: []byte("not really DER")}
	for _, tc := range []struct {
		name string
		tls  *tls.ConnectionState
		want map[string]string
	}{
		{"verified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf, ca}}},
			map[string]string{"X-Ssl-Client-Verify": "SUCCESS", "X-Ssl-Client-S-Dn": "CN=alice,O=Example", "X-Ssl-Client-I-Dn": "CN=Clients CA,O=Example",
				"X-Ssl-Client-Serial": "BEEF", "X-Ssl-Client-Cert": url.QueryEscape("-----BEGIN CERTIFICATE-----\nbm90IHJlYWxseSBERVI=\n-----END CERTIFICATE-----\n")}},
		{"none", &tls.ConnectionState{}, map[string]string{}},
	} {
		req := httptest.NewRequest("GET", "https://example.org/", nil)
		req.TLS = tc.tls
		req.Header.Set("X-SSL-Client-Verify", "SUCCESS") // the client's own
		req.Header.Set("X-SSL-Client-Cert", "forged")
		p.ServeHTTP(httptest.NewRecorder(), req)
		got := app.taken()
		h := got[len(got)-1].Header
		n := 0
		for k, v := range h {
			if strings.HasPrefix(k, "X-Ssl-Client-") {
				n++
				if tc.want[k] != strings.Join(v, ",") {
					t.Errorf("%s: %s %q, want %q", tc.name, k, v, tc.want[k])
				}
			}
		}
		if n != len(tc.want) {
			t.Errorf("%s: the app got %v", tc.name, h)
		}
	}
}
