package childrt

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/phasedhq/phased/internal/accesslog"
	"github.com/phasedhq/phased/internal/clientip"
	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// proxyRuntime serves slowHandler (and the fast path when fast) on a
// listener with proxy_protocol (TLS too when tlsOn), trusting trusted,
// with an access log and counters; readHeader bounds the header.
type proxyServer struct {
	addr     string
	board    *scoreboard.Board
	counters *scoreboard.Counters
	log      *syncBuffer
	errlog   *syncBuffer
	tls      *tls.Config // the client's, when the listener speaks TLS
}

func proxyRuntime(t *testing.T, fast, tlsOn bool, trusted []string) *proxyServer {
	return proxyModelRuntime(t, ModelWorker, fast, tlsOn, trusted)
}

func proxyModelRuntime(t *testing.T, model Model, fast, tlsOn bool, trusted []string) *proxyServer {
	t.Helper()
	rt, addr, events, b := modelRuntime(t, model, 8)
	if fast {
		rt.Fast = testFast{}
	}
	k, err := scoreboard.CreateCounters()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	ps := &proxyServer{addr: addr, board: b, counters: k, log: new(syncBuffer), errlog: new(syncBuffer)}
	rt.counters = k
	rt.Timeouts.ReadHeader = 500 * time.Millisecond
	rt.Log = slog.New(slog.NewTextHandler(ps.errlog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt.trusted = mustNets(t, trusted)
	rt.lopts = []contract.Listener{{Addr: addr, ProxyProtocol: true}}
	if tlsOn {
		certPEM, keyPEM := selfSigned(t)
		rt.lopts[0].TLS = &contract.TLS{Certificates: []contract.Certificate{{Cert: certPEM, Key: keyPEM}}, MinVersion: tls.VersionTLS12}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(certPEM)
		ps.tls = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	}
	rt.access, rt.format = accesslog.NewWriter(ps.log, accesslog.WriterOptions{}), accesslog.FormatCommon
	serveForTest(t, rt, events, slowHandler)
	return ps
}

// header is a PROXY header of version v from src.
func header(t *testing.T, v byte, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(v, net.TCPAddrFromAddrPort(mustAddrPort(t, src)), net.TCPAddrFromAddrPort(mustAddrPort(t, "192.0.2.1:443")))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// send writes pre (a PROXY header, or anything) and then, through TLS when
// ps speaks it, a request for path; it returns the response, or the error
// the connection ended with.
func (ps *proxyServer) send(t *testing.T, pre []byte, path string) (*http.Response, error) {
	t.Helper()
	c, err := net.Dial("tcp", ps.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	var conn net.Conn = c
	if ps.tls != nil {
		c.Write(pre)
		tc := tls.Client(c, ps.tls)
		if err := tc.Handshake(); err != nil {
			return nil, err
		}
		conn = tc
		_, err = io.WriteString(conn, req)
	} else {
		_, err = c.Write(append(pre, req...)) // header and request in one segment
	}
	if err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// TestProxyProtocol: v1 and v2 headers name the client, which the access
// log and the scoreboard show, on the fast path, through net/http and
// under TLS (the header before the handshake); a header sent alone, ahead
// of the request, works as well as one in the same segment.
func TestProxyProtocol(t *testing.T) {
	for _, tt := range []struct {
		name        string
		model       Model
		fast, tlsOn bool
		path        string
	}{
		{"fast", ModelWorker, true, false, "/a"},
		{"net/http", ModelWorker, false, false, "/b"},
		{"tls", ModelWorker, true, true, "/a"},
		{"event fast", ModelEvent, true, false, "/a"},
		{"event handed to net/http", ModelEvent, true, false, "/b"},
		{"prefork", ModelPrefork, true, false, "/a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ps := proxyModelRuntime(t, tt.model, tt.fast, tt.tlsOn, nil)
			for i, h := range [][]byte{header(t, 1, "198.51.100.7:4242"), header(t, 2, "[2001:db8::7]:4242")} {
				resp, err := ps.send(t, h, tt.path)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("v%d: %v %v", i+1, resp, err)
				}
			}
			// The header in a segment of its own, the request later.
			if !tt.tlsOn {
				c, err := net.Dial("tcp", ps.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.Write(header(t, 2, "203.0.113.5:1"))
				time.Sleep(50 * time.Millisecond)
				io.WriteString(c, "GET "+tt.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
				if r := readReplies(t, c, bufio.NewReader(c), 1, "GET"); r[0].code != 200 {
					t.Fatalf("header then request: %d", r[0].code)
				}
			}
			time.Sleep(1200 * time.Millisecond) // the access log's flush
			got := ps.log.String()
			for _, want := range []string{"198.51.100.7 - - ", "2001:db8::7 - - "} {
				if !strings.Contains(got, "\n"+want) && !strings.HasPrefix(got, want) {
					t.Errorf("access log lacks %q:\n%s", want, got)
				}
			}
			if !tt.tlsOn && !strings.Contains(got, "203.0.113.5 - - ") {
				t.Errorf("access log lacks the split header's client:\n%s", got)
			}
			if strings.Contains(got, "127.0.0.1") {
				t.Errorf("the balancer's address was logged:\n%s", got)
			}
			clients := map[string]bool{}
			for _, ws := range ps.board.Snapshot().Workers {
				for _, w := range ws {
					clients[w.Client.String()] = true
				}
			}
			if !clients["2001:db8::7"] && !clients["203.0.113.5"] {
				t.Errorf("scoreboard clients %v", clients)
			}
			if n := ps.counters.Get(scoreboard.ProxyRejected); n != 0 {
				t.Errorf("%d rejected", n)
			}
		})
	}
}

// TestProxyProtocolRejects: a connection without a valid PROXY header (none,
// a malformed one, one too slow, or a peer outside trusted_proxies) is
// closed without an answer, counted, logged at debug and warned about once
// a minute; what it claims never becomes a client's address.
func TestProxyProtocolRejects(t *testing.T) {
	for _, fast := range []bool{true, false} {
		name := map[bool]string{true: "fast", false: "net/http"}[fast]
		t.Run(name, func(t *testing.T) {
			ps := proxyRuntime(t, fast, false, nil)
			for _, pre := range [][]byte{
				nil, // no header: the request itself
				[]byte("PROXY TCP4 198.51.100.7 nonsense 1 2\r\n"),
				[]byte("PROXY TCP4 198.51.100.7 192.0.2.1 1\r\n"),
				append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0xff, 0xff), // v2, length past the data
			} {
				if resp, err := ps.send(t, pre, "/a"); err == nil {
					t.Fatalf("%q answered: %v", pre, resp.Status)
				}
			}
			// Too slow: a header that never completes.
			c, err := net.Dial("tcp", ps.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "PROXY TCP4 198.51.100.7")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			if n, err := c.Read(make([]byte, 1)); err == nil || n > 0 {
				t.Fatalf("a stalled header: %d bytes, %v", n, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("the stalled header was closed after %s", d)
			}
			if n := ps.counters.Get(scoreboard.ProxyRejected); n != 5 {
				t.Errorf("ProxyRejected = %d, want 5", n)
			}
			logged := ps.errlog.String()
			if strings.Count(logged, "level=WARN") != 1 || strings.Count(logged, "connection without a valid PROXY header closed") != 5 {
				t.Errorf("error log:\n%s", logged)
			}
			time.Sleep(1200 * time.Millisecond)
			if ps.log.String() != "" {
				t.Errorf("a rejected connection was logged as a request:\n%s", ps.log.String())
			}
		})
	}
	t.Run("untrusted peer", func(t *testing.T) {
		ps := proxyRuntime(t, true, false, []string{"10.0.0.0/8"})
		if resp, err := ps.send(t, header(t, 2, "198.51.100.7:1"), "/a"); err == nil {
			t.Fatalf("a peer outside trusted_proxies was served: %v", resp.Status)
		}
		if n := ps.counters.Get(scoreboard.ProxyRejected); n != 1 {
			t.Errorf("ProxyRejected = %d", n)
		}
		ps = proxyRuntime(t, true, false, []string{"127.0.0.0/8"})
		if resp, err := ps.send(t, header(t, 2, "198.51.100.7:1"), "/a"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("a trusted peer: %v %v", resp, err)
		}
	})
	t.Run("local", func(t *testing.T) {
		ps := proxyRuntime(t, false, false, nil)
		h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := ps.send(t, b, "/b"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("LOCAL: %v %v", resp, err)
		}
		time.Sleep(1200 * time.Millisecond)
		if !strings.HasPrefix(ps.log.String(), "127.0.0.1 ") {
			t.Errorf("a LOCAL header's connection is logged as:\n%s", ps.log.String())
		}
	})
}

func selfSigned(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var c, k bytes.Buffer
	pem.Encode(&c, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&k, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	return c.Bytes(), k.Bytes()
}

func mustNets(t *testing.T, cidrs []string) clientip.Nets {
	t.Helper()
	n, err := clientip.ParseNets(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
