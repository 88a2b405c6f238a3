package tls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// genCert writes a self-signed certificate for names (and 127.0.0.1) and
// its key to dir/base.crt and dir/base.key, and returns its serial number.
func genCert(t *testing.T, dir, base string, names ...string) *big.Int {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	write := func(name string, block *pem.Block) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base+".crt", &pem.Block{Type: "CERTIFICATE", Bytes: der})
	write(base+".key", &pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	return serial
}

// server is a master with a plain and a TLS listener.
type server struct {
	*e2e.Server
	TLSAddr string
}

// siteTLS is the TLS listener entry's tls mapping the tests use most: the
// certificate site, for localhost.
const siteTLS = "{certificates: [{cert: site.crt, key: site.key}]}"

// start writes the certificate site (for localhost) in a new folder and
// starts a master with a plain listener (its options plainOpts, a YAML
// flow mapping's inside, or "") and a TLS listener whose tls mapping is
// tlsMap, and extra.
func start(t *testing.T, plainOpts, tlsMap, extra string, setup ...func(dir string)) *server {
	t.Helper()
	plain, secure := e2e.FreePort(t), e2e.FreePort(t)
	plainEntry := plain
	if plainOpts != "" {
		plainEntry = fmt.Sprintf("{address: %q, %s}", plain, plainOpts)
	}
	s := &server{TLSAddr: secure}
	s.Server = e2e.StartServer(t, fmt.Sprintf("listen:\n  - %s\n  - {address: %q, tls: %s}\n%s", plainEntry, secure, tlsMap, extra),
		append([]func(string){func(dir string) { genCert(t, dir, "site", "localhost") }}, setup...)...)
	s.Server.Addr = plain
	return s
}

// cgiApp is the app section that runs the scripts of cgi-bin/ at /cgi-bin/.
const cgiApp = "app:\n  type: cgi\n  cgi: {paths: {\"/cgi-bin/\": cgi-bin}}\n"

// script writes cgi-bin/name, a shell script of body, executable.
func script(t *testing.T, dir, name, body string) {
	t.Helper()
	e2e.WriteFile(t, dir, "cgi-bin/"+name, "#!/bin/sh\n"+body)
	if err := os.Chmod(filepath.Join(dir, "cgi-bin", name), 0o755); err != nil {
		t.Fatal(err)
	}
}

// client is an HTTPS client that trusts anything (the tests' certificates
// are self-signed) and keeps TLS sessions for resumption.
func client(h2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(64)},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// fetch sends a method request for url with cl, the header fields hdr
// (name, value, ...) set, and reads the whole answer. It reports errors
// rather than failing the test, so that goroutines may call it.
func fetch(cl *http.Client, method, url string, hdr ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// peerSerial connects to addr with TLS (SNI name) and returns the serial
// of the certificate it was given, and whether the session resumed.
func peerSerial(t *testing.T, addr, name string, cache tls.ClientSessionCache) (*big.Int, bool) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, ServerName: name, ClientSessionCache: cache, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to %s (%s): %v", addr, name, err)
	}
	defer c.Close()
	st := c.ConnectionState()
	return st.PeerCertificates[0].SerialNumber, st.DidResume
}
