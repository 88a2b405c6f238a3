package tls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// clientCA is a certificate authority for client certificates.
type clientCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newClientCA makes a CA named name and writes its certificate to
// dir/file (PEM), unless file is "".
func newClientCA(t *testing.T, dir, file, name string) clientCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name, Organization: []string{"Example"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if file != "" {
		os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	}
	return clientCA{cert, key}
}

// issue makes a client certificate for cn, signed by ca.
func (ca clientCA) issue(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x2A), Subject: pkix.Name{CommonName: cn, Organization: []string{"Example"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// certClient is an HTTPS client (HTTP/2 when h2) that trusts anything and
// shows cert, if not nil, whatever authorities the server names (Go's
// client would keep back one they do not cover).
func certClient(h2 bool, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{InsecureSkipVerify: true}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestClientCertificates: tls.client_ca with client_auth require (its
// default) lets in only clients whose certificate chains to the CA, over
// HTTP/1.1 and HTTP/2, and a CGI script sees it by mod_ssl's names, on
// resumed sessions too; with
// optional, a client without one comes in too (SSL_CLIENT_VERIFY NONE),
// one with a certificate of another CA does not. A missing client_ca file
// or client_auth without one is named by -t.
func TestClientCertificates(t *testing.T) {
	var ca, other clientCA
	setup := func(dir string) {
		ca = newClientCA(t, dir, "clients-ca.crt", "Clients CA")
		other = newClientCA(t, dir, "", "Another CA")
		script(t, dir, "who.sh", "printf 'Content-Type: text/plain\\r\\n\\r\\n%s|%s|%s|%s\\n' \"$SSL_CLIENT_VERIFY\" \"$SSL_CLIENT_S_DN\" \"$SSL_CLIENT_I_DN\" \"$SSL_CLIENT_M_SERIAL\"\n")
	}
	get := func(addr string, h2 bool, cert *tls.Certificate) (string, error) {
		cl := certClient(h2, cert)
		defer cl.CloseIdleConnections()
		resp, b, err := fetch(cl, "GET", "https://"+addr+"/cgi-bin/who.sh")
		if err != nil {
			return "", err
		}
		if h2 != (resp.ProtoMajor == 2) {
			t.Errorf("HTTP/2 %v: answered over %s", h2, resp.Proto)
		}
		return strings.TrimSpace(string(b)), nil
	}

	t.Run("require", func(t *testing.T) {
		s := start(t, "", "{certificates: [{cert: site.crt, key: site.key}], client_ca: clients-ca.crt}", cgiApp, setup)
		alice := ca.issue(t, "alice")
		for _, h2 := range []bool{false, true} {
			got, err := get(s.TLSAddr, h2, &alice)
			if want := "SUCCESS|CN=alice,O=Example|CN=Clients CA,O=Example|2A"; err != nil || got != want {
				t.Fatalf("alice (HTTP/2 %v): %q %v, want %q", h2, got, err, want)
			}
		}
		// A resumed session (its ticket made by any child: the master
		// shares the keys) still carries the certificate it was made with.
		cache := tls.NewLRUClientSessionCache(4)
		for i := range 3 {
			tr := &http.Transport{TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ClientSessionCache: cache,
					GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &alice, nil }}}
			resp, b, err := fetch(&http.Client{Transport: tr, Timeout: 10 * time.Second}, "GET", "https://"+s.TLSAddr+"/cgi-bin/who.sh")
			tr.CloseIdleConnections()
			if err != nil || !strings.HasPrefix(string(b), "SUCCESS|CN=alice") || i > 0 && !resp.TLS.DidResume {
				t.Fatalf("connection %d with a session ticket: %q %v (resumed: %v)", i, b, err, err == nil && resp.TLS.DidResume)
			}
		}
		mallory := other.issue(t, "mallory")
		for name, cert := range map[string]*tls.Certificate{"no certificate": nil, "another CA's": &mallory} {
			if got, err := get(s.TLSAddr, false, cert); err == nil {
				t.Errorf("%s: let in (%q)", name, got)
			}
		}
	})
	t.Run("optional", func(t *testing.T) {
		s := start(t, "", "{certificates: [{cert: site.crt, key: site.key}], client_ca: clients-ca.crt, client_auth: optional}", cgiApp, setup)
		if got, err := get(s.TLSAddr, false, nil); err != nil || got != "NONE|||" {
			t.Fatalf("no certificate: %q %v", got, err)
		}
		alice := ca.issue(t, "alice")
		if got, err := get(s.TLSAddr, true, &alice); err != nil || !strings.HasPrefix(got, "SUCCESS|CN=alice") {
			t.Fatalf("alice: %q %v", got, err)
		}
		mallory := other.issue(t, "mallory")
		if got, err := get(s.TLSAddr, false, &mallory); err == nil {
			t.Errorf("another CA's certificate: let in (%q)", got)
		}
	})
	t.Run("bad", func(t *testing.T) {
		dir := t.TempDir()
		genCert(t, dir, "site", "localhost")
		addr := e2e.FreePort(t)
		for _, tc := range []struct{ tls, want string }{
			{"{certificates: [{cert: site.crt, key: site.key}], client_ca: missing.crt}", "listen[0].tls.client_ca (" + addr + "): open " + filepath.Join(dir, "missing.crt")},
			{"{certificates: [{cert: site.crt, key: site.key}], client_auth: optional}", `listen[0].tls.client_auth: "optional" needs tls.client_ca`},
			{"{certificates: [{cert: site.crt, key: site.key}], client_ca: site.key}", "listen[0].tls.client_ca (" + addr + "): " + filepath.Join(dir, "site.key") + ": a EC PRIVATE KEY where only certificates belong"},
		} {
			conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, "listen: [{address: \""+addr+"\", tls: "+tc.tls+"}]\n"))
			if code, _, errOut := e2e.Run(t, dir, nil, "-f", conf, "-t"); code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("-t with %s: %d %q, want %q", tc.tls, code, errOut, tc.want)
			}
		}
	})
}

// TestAccessLogTLS: the json access log records each TLS request's
// version and cipher and, with a verified client certificate, its
// subject (mod_ssl's %{SSL_PROTOCOL}x, %{SSL_CIPHER}x and
// %{SSL_CLIENT_S_DN}x), over HTTP/1.1 and HTTP/2, on the fast path
// (static files) and net/http's (CGI); a plain request none of them.
func TestAccessLogTLS(t *testing.T) {
	var ca clientCA
	setup := func(dir string) {
		ca = newClientCA(t, dir, "clients-ca.crt", "Clients CA")
		script(t, dir, "ok.sh", "printf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n")
	}
	for _, tc := range []struct{ name, app, path string }{
		{"static", "", "/hello.txt"},
		{"cgi", cgiApp, "/cgi-bin/ok.sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, "", "{certificates: [{cert: site.crt, key: site.key}], client_ca: clients-ca.crt, client_auth: optional}",
				"access_log: {path: logs/access.log, format: json}\n"+tc.app, setup)
			alice := ca.issue(t, "alice")
			type want struct{ ua, proto, dn string }
			var wants []want
			for _, h2 := range []bool{false, true} {
				for _, cert := range []*tls.Certificate{&alice, nil} {
					w := want{ua: fmt.Sprintf("h2=%v cert=%v", h2, cert != nil), proto: "HTTP/1.1"}
					if h2 {
						w.proto = "HTTP/2.0"
					}
					if cert != nil {
						w.dn = "CN=alice,O=Example"
					}
					cl := certClient(h2, cert)
					resp, _, err := fetch(cl, "GET", "https://"+s.TLSAddr+tc.path, "User-Agent", w.ua)
					cl.CloseIdleConnections()
					if err != nil || resp.StatusCode != 200 {
						t.Fatalf("%s: %v %v", w.ua, resp, err)
					}
					wants = append(wants, w)
				}
			}
			req, _ := http.NewRequest("GET", "http://"+s.Addr+tc.path, nil)
			req.Header.Set("User-Agent", "plain")
			if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
				t.Fatalf("plain: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}

			seen := map[string]map[string]any{}
			deadline := time.Now().Add(5 * time.Second)
			for len(seen) < len(wants)+1 {
				if time.Now().After(deadline) {
					t.Fatalf("access log lines: %v", seen)
				}
				time.Sleep(50 * time.Millisecond)
				b, _ := os.ReadFile(filepath.Join(s.Dir, "logs/access.log"))
				for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					var m map[string]any
					if json.Unmarshal([]byte(line), &m) == nil {
						seen[fmt.Sprint(m["user_agent"])] = m
					}
				}
			}
			for _, w := range wants {
				m := seen[w.ua]
				if m["tls_version"] != "TLSv1.3" || !strings.HasPrefix(fmt.Sprint(m["tls_cipher"]), "TLS_") ||
					!strings.HasSuffix(fmt.Sprint(m["request"]), w.proto) {
					t.Errorf("%s: %v, want TLSv1.3, a cipher, %s", w.ua, m, w.proto)
				}
				if dn, _ := m["tls_client_s_dn"].(string); dn != w.dn {
					t.Errorf("%s: tls_client_s_dn %q, want %q", w.ua, dn, w.dn)
				}
			}
			if m := seen["plain"]; m["tls_version"] != nil || m["tls_cipher"] != nil || m["tls_client_s_dn"] != nil {
				t.Errorf("plain: %v, want no TLS fields", m)
			}
		})
	}
}
