package childrt

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/status"
	"github.com/phasedhq/phased/internal/tickets"
	"golang.org/x/sys/unix"
)

// acmeTLSProto is the ALPN protocol of ACME's TLS-ALPN-01 challenge.
const acmeTLSProto = "acme-tls/1"

// ticketWatch is how often a child looks for rotated ticket keys.
const ticketWatch = 10 * time.Second

// tlsConfig builds the tls.Config of a TLS listener from what its master
// read: its certificates (the client's SNI picks one, the first when none
// matches), its versions and suites, ALPN (h2 when HTTP/2 is on), the
// ticket keys every child shares, and the answer to ACME's TLS-ALPN-01
// challenge from the master's challenge folder.
func tlsConfig(t *contract.TLS, keys *tickets.Keys, stop <-chan struct{}) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: t.MinVersion, CipherSuites: t.Ciphers, NextProtos: []string{"http/1.1"}}
	if t.HTTP2 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	for _, c := range t.Certificates {
		pair, err := tls.X509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", c.File, err)
		}
		cfg.Certificates = append(cfg.Certificates, pair)
	}
	if t.ClientAuth != "" {
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(t.ClientCAs) {
			return nil, errors.New("client_ca: no certificate")
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if t.ClientAuth == "optional" {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	if t.Challenges != "" {
		dir := t.Challenges
		cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if !slices.Contains(hello.SupportedProtos, acmeTLSProto) {
				return nil, nil // the listener's own configuration
			}
			pair, err := challengeCertificate(dir, hello.ServerName)
			if err != nil {
				return nil, err
			}
			return &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{acmeTLSProto}, Certificates: []tls.Certificate{pair}}, nil
		}
	}
	if len(cfg.Certificates) == 0 && cfg.GetConfigForClient == nil {
		return nil, errors.New("no certificate")
	}
	if keys != nil {
		keys.Watch(cfg, ticketWatch, stop)
	}
	return cfg, nil
}

// challengeCertificate reads the TLS-ALPN-01 certificate the master made
// for name: NAME.crt and NAME.key in dir.
func challengeCertificate(dir, name string) (tls.Certificate, error) {
	if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return tls.Certificate{}, fmt.Errorf("acme challenge for %q: not a host name", name)
	}
	return tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
}

// certificates returns, for each TLS certificate a listener serves, its
// names and when it expires, for the status page and the metrics.
func certificates(ls []contract.Listener) []status.Certificate {
	var out []status.Certificate
	for _, l := range ls {
		if l.TLS == nil {
			continue
		}
		for _, c := range l.TLS.Certificates {
			block, _ := pem.Decode(c.Cert)
			if block == nil {
				continue
			}
			leaf, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				continue
			}
			names := leaf.DNSNames
			if len(names) == 0 {
				names = []string{leaf.Subject.CommonName}
			}
			out = append(out, status.Certificate{Listener: l.Addr, File: c.File, Names: names, NotAfter: leaf.NotAfter})
		}
	}
	return out
}

// redirectHandler answers every request on a listener with redirect_https
// with a 301 to the same URL over HTTPS on port.
func redirectHandler(port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]" // IPv6
		}
		if port != "443" {
			host += ":" + port
		}
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
}

// acmeHTTPHandler answers ACME's HTTP-01 challenges from the master's
// challenge folder, and passes every other request on.
// acmePrefix is where ACME's HTTP-01 answers are asked for.
const acmePrefix = "/.well-known/acme-challenge/"

func acmeHTTPHandler(dir string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.URL.Path, acmePrefix)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if token == "" || strings.ContainsAny(token, "/\\.") {
			http.NotFound(w, r)
			return
		}
		b, err := os.ReadFile(filepath.Join(dir, token))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(b)
	})
}

// wrapTLS makes the gates of TLS listeners speak TLS. With a fast path,
// their HTTP/1.1 connections are the fast path's (tlsfast.go); plain
// listeners that only redirect are served by net/http, never by the fast
// path.
func (s *server) wrapTLS(r *Runtime) {
	s.slowPath = make([]bool, len(s.gates))
	s.stopTLS = make(chan struct{})
	for i := range s.gates {
		if i >= len(r.lopts) {
			continue
		}
		o := r.lopts[i]
		s.slowPath[i] = o.TLS != nil || o.RedirectHTTPS != ""
		if o.TLS == nil {
			continue
		}
		cfg, err := tlsConfig(o.TLS, r.tickets, s.stopTLS)
		if err != nil {
			r.Log.Error("TLS listener cannot serve", "listen", o.Addr, "err", err)
			continue
		}
		if o.TLS.HTTP2 {
			leaveH2Bounds(cfg)
		}
		if s.fastOn() && o.RedirectHTTPS == "" {
			s.slowPath[i] = false
			s.gates[i] = fastTLSListener{Listener: s.gates[i], cfg: cfg}
			continue
		}
		s.gates[i] = tls.NewListener(lingerListener{s.gates[i]}, cfg)
	}
}

// lingerListener hands a TLS listener that net/http serves (the slow
// path: no fast path, or a redirect) its connections as lingerConns.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{c}, nil
}

// lingerConn is a connection below net/http's *tls.Conn. Closed with
// bytes the client sent still unread, as net/http closes a connection
// whose handshake it refused (no client certificate: TLS 1.3 clients
// send their request before they learn of it), it closes lingering
// (lingerClose): otherwise the close resets the connection, and a client
// that meets the reset first never reads the alert that says why.
type lingerConn struct{ net.Conn }

func (c *lingerConn) Close() error {
	if unread(c.Conn) > 0 {
		lingerClose(c.Conn)
	}
	return c.Conn.Close()
}

// CloseWrite passes net/http's half-close on (closeWrite).
func (c *lingerConn) CloseWrite() error { return closeWrite(c.Conn) }

// unread is how many bytes c's socket holds that were not read; 0 when
// it cannot tell.
func unread(c net.Conn) int {
	if pc, ok := c.(*proxyConn); ok {
		c = pc.Conn
	}
	_, rc := sockOf(c)
	if rc == nil {
		return 0
	}
	n := 0
	rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n
}

// protocols are the HTTP versions the child serves: HTTP/1 always, HTTP/2
// when a TLS listener offers it, and HTTP/2 without TLS when a plain
// listener turns h2c on.
func (s *server) protocols(r *Runtime) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	for _, o := range r.lopts {
		if o.TLS != nil && o.TLS.HTTP2 {
			p.SetHTTP2(true)
		}
		if o.TLS == nil && o.H2C {
			p.SetUnencryptedHTTP2(true)
		}
	}
	return p
}

// perListener answers requests on a listener with redirect_https with the
// redirect, and passes every other request to h.
func (s *server) perListener(r *Runtime, h http.Handler) http.Handler {
	type redirect struct {
		ip   net.IP // nil: any address
		port string
		h    http.Handler
	}
	var rs []redirect
	for i, o := range r.lopts {
		if o.RedirectHTTPS == "" || i >= len(r.listeners) {
			continue
		}
		host, port, err := net.SplitHostPort(r.listeners[i].Addr().String())
		if err != nil {
			continue
		}
		ip := net.ParseIP(host)
		if ip != nil && ip.IsUnspecified() {
			ip = nil
		}
		rs = append(rs, redirect{ip: ip, port: port, h: redirectHandler(o.RedirectHTTPS)})
	}
	if len(rs) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if la, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if host, port, err := net.SplitHostPort(la.String()); err == nil {
				ip := net.ParseIP(host)
				for _, rd := range rs {
					if rd.port == port && (rd.ip == nil || rd.ip.Equal(ip)) {
						rd.h.ServeHTTP(w, req)
						return
					}
				}
			}
		}
		h.ServeHTTP(w, req)
	})
}

// leaveH2Bounds makes cfg tell a connection whose client offers h2, which
// the listener then speaks, that its deadlines are HTTP/2's business
// (net/http's): the header bounds of conns.go, which hold until its TLS
// handshake is done, are HTTP/1's.
func leaveH2Bounds(cfg *tls.Config) {
	next := cfg.GetConfigForClient
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Contains(hello.SupportedProtos, "h2") {
			if sc := connSlot(hello.Conn); sc != nil {
				sc.leaveBounds()
			}
		}
		if next == nil {
			return nil, nil
		}
		return next(hello)
	}
}
