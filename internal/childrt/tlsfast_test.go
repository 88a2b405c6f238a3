package childrt

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/h2/h2test"
	"golang.org/x/net/http2"
)

// tlsHandler is what net/http serves on a TLS listener: it names the path,
// the protocol and the TLS version net/http gave the request.
var tlsHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Path", "slow")
	tlsv := "none"
	if r.TLS != nil {
		tlsv = tls.VersionName(r.TLS.Version)
	}
	w.Header().Set("X-TLS", tlsv)
	fmt.Fprintf(w, "slow %s %s %s", r.Method, r.URL.RequestURI(), r.Proto)
})

// startTLSFast serves testFast and tlsHandler on a TLS listener that offers
// h2 and http/1.1; it returns the address and the client's TLS settings.
func startTLSFast(t *testing.T, model Model) (string, *tls.Config) {
	t.Helper()
	return startTLS(t, model, testFast{})
}

// startTLS is startTLSFast with fast as the responder (nil: none).
func startTLS(t *testing.T, model Model, fast FastResponder) (string, *tls.Config) {
	t.Helper()
	rt, addr, events, _ := modelRuntime(t, model, 8)
	rt.Fast = fast
	rt.Timeouts.ReadHeader = 500 * time.Millisecond
	cfg := withTLS(t, rt, addr)
	serveForTest(t, rt, events, tlsHandler)
	return addr, cfg
}

// withTLS makes rt's listener at addr a TLS one offering HTTP/2, with a
// certificate for localhost, and returns a client config that trusts it.
func withTLS(t *testing.T, rt *Runtime, addr string) *tls.Config {
	t.Helper()
	certPEM, keyPEM := selfSigned(t)
	rt.lopts = []contract.Listener{{Addr: addr, TLS: &contract.TLS{
		Certificates: []contract.Certificate{{Cert: certPEM, Key: keyPEM}}, MinVersion: tls.VersionTLS12, HTTP2: true}}}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// TestFastPathOverTLS: on a TLS listener, HTTP/1.1 requests the responder
// answers are the fast path's; the rest of the connection, from the first
// request it does not answer (pipelined behind one it did), is net/http's,
// which sees the request's TLS state; h2 by ALPN is phased's HTTP/2 server's,
// answering from the responder too; plain HTTP
// sent to the TLS port gets net/http's 400; a client that does not finish
// its handshake, or sends no request after it, is cut by the header bound.
func TestFastPathOverTLS(t *testing.T) {
	for _, model := range []Model{ModelWorker, ModelEvent} {
		t.Run(string(model), func(t *testing.T) {
			addr, cfg := startTLSFast(t, model)
			h1 := cfg.Clone()
			h1.NextProtos = []string{"http/1.1"}
			c, err := tls.Dial("tcp", addr, h1)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			br := bufio.NewReader(c)
			io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
			if r := readReplies(t, c, br, 1, "GET"); r[0].path != "fast" || r[0].body != "fast" || r[0].close {
				t.Fatalf("GET /a over TLS: %+v", r[0])
			}
			// Pipelined: /a answered fast, /b (declined) and what follows
			// by net/http, from the bytes the fast path read.
			io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b?x=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")
			r := readReplies(t, c, br, 3, "GET")
			if r[0].path != "fast" {
				t.Errorf("first pipelined /a: %+v", r[0])
			}
			for i, want := range []string{"slow GET /b?x=1 HTTP/1.1", "slow GET /a HTTP/1.1"} {
				if got := r[i+1]; got.path != "slow" || got.body != want || got.hdr.Get("X-TLS") != tls.VersionName(c.ConnectionState().Version) {
					t.Errorf("pipelined request %d: %+v (X-TLS %q), want %q with the TLS state", i+2, got, got.hdr.Get("X-TLS"), want)
				}
			}

			// HTTP/2 by ALPN: phased's server (h2.go), which answers /a
			// from the responder and runs the handler, with the TLS
			// state, for the rest.
			tr := &http.Transport{TLSClientConfig: cfg.Clone(), ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			for _, tc := range []struct{ path, body string }{{"/a", "fast"}, {"/b?x=1", "slow GET /b?x=1 HTTP/2.0"}} {
				resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != 2 || string(b) != tc.body || tc.body != "fast" && resp.Header.Get("X-TLS") == "none" {
					t.Errorf("h2 %s: %s %q X-TLS %q", tc.path, resp.Proto, b, resp.Header.Get("X-TLS"))
				}
			}

			// Plain HTTP to the TLS port.
			pc := dialSend(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
			pc.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, _ := io.ReadAll(pc)
			if !strings.HasPrefix(string(got), "HTTP/1.0 400 Bad Request") {
				t.Errorf("plain HTTP to the TLS port: %q", got)
			}

			// No handshake, and no request after one: closed by the
			// header bound (500 ms), well before the test's 5 s.
			silent := dialSend(t, addr, "")
			silent.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := silent.Read(make([]byte, 1)); err == nil || isTimeout(err) {
				t.Errorf("a connection that never shakes hands: %v", err)
			}
			idle, err := tls.Dial("tcp", addr, h1)
			if err != nil {
				t.Fatal(err)
			}
			defer idle.Close()
			idle.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := idle.Read(make([]byte, 1)); err == nil || isTimeout(err) {
				t.Errorf("a connection that sends no request: %v", err)
			}
		})
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestHTTP2WithoutFastPath: a child without a fast path (a CGI or FastCGI
// gateway, a Go handler of its own) serves HTTP/2 on its TLS listener with
// phased's HTTP/2 server too, through net/http's TLSNextProto: a request
// with a TE field other than "trailers" is the stream error RFC 9113 asks
// for (net/http's server answered it 400), and a plain request reaches the
// handler over HTTP/2 with its TLS state.
func TestHTTP2WithoutFastPath(t *testing.T) {
	addr, cfg := startTLS(t, ModelEvent, nil)
	cfg.NextProtos = []string{"h2"}

	tr := &http.Transport{TLSClientConfig: cfg.Clone(), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "slow GET /a HTTP/2.0" || resp.Header.Get("X-TLS") == "none" {
		t.Fatalf("h2: %s %q X-TLS %q", resp.Proto, b, resp.Header.Get("X-TLS"))
	}

	_, fr := h2test.Dial(t, addr, cfg, 5*time.Second)
	h2test.Request(fr, 1, "GET", "/a", true, "te", "gzip")
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no answer to TE: gzip: %v", err)
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID != 1 || f.ErrCode != http2.ErrCodeProtocol {
				t.Fatalf("RST_STREAM %d %v, want 1 PROTOCOL_ERROR", f.StreamID, f.ErrCode)
			}
			return
		case *http2.HeadersFrame:
			t.Fatalf("TE: gzip was answered (net/http's HTTP/2 server), not reset")
		}
	}
}

// TestRefusedHandshakeLingers: a TLS 1.3 client without the certificate a
// listener requires has its request sent before it learns of the refusal;
// the child sends the alert, then FIN, and reads what the client sent
// until the client closes (a lingering close), instead of closing with
// the request unread, which resets the connection: curl, meeting the
// reset first, reported "getpeername() failed" (exit 55) instead of the
// server's "certificate required". The same for plain HTTP sent to a TLS
// listener and its 400. On the fast path's handshake and net/http's.
func TestRefusedHandshakeLingers(t *testing.T) {
	t.Run("fast path", func(t *testing.T) { testRefusedHandshakeLingers(t, testFast{}) })
	t.Run("net/http", func(t *testing.T) { testRefusedHandshakeLingers(t, nil) })
}

// testRefusedHandshakeLingers is TestRefusedHandshakeLingers with fast as
// the child's responder: nil, none, and net/http shakes hands.
func testRefusedHandshakeLingers(t *testing.T, fast FastResponder) {
	rt, addr, events, _ := modelRuntime(t, ModelEvent, 8)
	rt.Fast = fast
	cfg := withTLS(t, rt, addr)
	rt.lopts[0].TLS.ClientAuth = "require"
	certPEM, _ := selfSigned(t)
	rt.lopts[0].TLS.ClientCAs = certPEM
	serveForTest(t, rt, events, tlsHandler)

	// What the client's socket gets after the server's last words: EOF
	// after a FIN, not a reset.
	after := func(t *testing.T, raw net.Conn) {
		t.Helper()
		raw.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.Copy(io.Discard, raw); err != nil {
			t.Errorf("the connection after the refusal: %v, want EOF (FIN, not a reset)", err)
		}
	}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		t.Fatalf("TLS 1.3: the client finishes before the server refuses: %v", err)
	}
	io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: localhost\r\n\r\n")
	time.Sleep(200 * time.Millisecond) // the refusal, and with it the close, comes first
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 10)); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("read: %v, want the server's alert: certificate required", err)
	}
	after(t, raw)

	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	io.WriteString(plain, "GET / HTTP/1.1\r\nHost: localhost\r\nX-Long: "+strings.Repeat("x", 4000)+"\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	plain.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := bufio.NewReader(plain).ReadString('\n')
	if !strings.HasPrefix(got, "HTTP/1.0 400 Bad Request") {
		t.Fatalf("plain HTTP to TLS: %q %v, want a 400", got, err)
	}
	after(t, plain)
}
