package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestVars(t *testing.T) {
	r := httptest.NewRequest("POST", "http://example.org:8080/app/index.php/a/b?x=1&y=%20", strings.NewReader("body"))
	r.RemoteAddr = "192.0.2.7:51234"
	r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, ServerName: "example.org"}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Content-Length", "4")
	r.Header.Set("Proxy", "http://evil:3128")
	r.Header["X_real_ip"] = []string{"6.6.6.6"}
	r.Header["X-Bad.Name"] = []string{"1"}
	r.Header.Set("X-Real-Ip", "192.0.2.7")
	r.Header.Add("Cookie", "a=1")
	r.Header.Add("Cookie", "b=2")
	r.Header.Add("Accept", "text/html")
	r.Header.Add("Accept", "*/*")
	r.Header.Set("X-Nul", "a\x00b")
	la := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8443}
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, la))

	got := map[string]string{}
	Vars(r, Script{Name: "/app/index.php", Filename: "/srv/www/app/index.php", PathInfo: "/a/b", DocumentRoot: "/srv/www", Software: "phased"}, 4,
		func(name, value string) {
			if _, dup := got[name]; dup {
				t.Errorf("%s emitted twice", name)
			}
			got[name] = value
		})
	want := map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1",
		"SERVER_SOFTWARE":   "phased",
		"SERVER_PROTOCOL":   "HTTP/1.1",
		"SERVER_NAME":       "example.org",
		"SERVER_ADDR":       "127.0.0.1",
		"SERVER_PORT":       "8443",
		"REMOTE_ADDR":       "192.0.2.7",
		"REMOTE_PORT":       "51234",
		"REQUEST_METHOD":    "POST",
		"REQUEST_URI":       "/app/index.php/a/b?x=1&y=%20",
		"REQUEST_SCHEME":    "https",
		"HTTPS":             "on",
		"SSL_PROTOCOL":      "TLSv1.3",
		"SSL_CIPHER":        "TLS_AES_128_GCM_SHA256",
		"SSL_TLS_SNI":       "example.org",
		"SSL_CLIENT_VERIFY": "NONE",
		"QUERY_STRING":      "x=1&y=%20",
		"CONTENT_TYPE":      "application/x-www-form-urlencoded",
		"CONTENT_LENGTH":    "4",
		"SCRIPT_NAME":       "/app/index.php",
		"SCRIPT_FILENAME":   "/srv/www/app/index.php",
		"PATH_INFO":         "/a/b",
		"PATH_TRANSLATED":   "/srv/www/a/b",
		"DOCUMENT_ROOT":     "/srv/www",
		"HTTP_HOST":         "example.org:8080",
		"HTTP_X_REAL_IP":    "192.0.2.7",
		"HTTP_COOKIE":       "a=1; b=2",
		"HTTP_ACCEPT":       "text/html, */*",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s=%q", k, got[k])
		}
	}
}

// TestVarsPlain: a plain HTTP request with no body, no local address and a
// Host without a port.
func TestVarsPlain(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "[::1]"
	r.RemoteAddr = "@"
	got := map[string]string{}
	Vars(r, Script{Name: "/index.php"}, 0, func(n, v string) { got[n] = v })
	for k, v := range map[string]string{"SERVER_NAME": "::1", "SERVER_PORT": "80", "REMOTE_ADDR": "@", "REQUEST_SCHEME": "http"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, k := range []string{"HTTPS", "CONTENT_LENGTH", "CONTENT_TYPE", "PATH_INFO", "PATH_TRANSLATED", "REMOTE_PORT", "SERVER_ADDR"} {
		if v, ok := got[k]; ok {
			t.Errorf("%s = %q, want it unset", k, v)
		}
	}
}

func TestHeaderVar(t *testing.T) {
	for _, tc := range []struct {
		header, name string
		ok           bool
	}{
		{"Accept-Encoding", "HTTP_ACCEPT_ENCODING", true},
		{"x-forwarded-for", "HTTP_X_FORWARDED_FOR", true},
		{"X-1", "HTTP_X_1", true},
		{"Proxy", "", false},
		{"proxy", "", false},
		{"Host", "", false},
		{"Content-Type", "", false},
		{"Content-Length", "", false},
		{"X-Sendfile-Type", "", false},
		{"x-accel-mapping", "", false},
		{"X-Ssl-Client-Verify", "", false},
		{"x-ssl-client-s-dn", "", false},
		{"X-Ssl-Client", "HTTP_X_SSL_CLIENT", true},
		{"X-Sendfile-Typo", "HTTP_X_SENDFILE_TYPO", true},
		{"X_Forwarded_For", "", false},
		{"X.Y", "", false},
		{"Ünï", "", false},
		{"", "", false},
	} {
		name, ok := HeaderVar(tc.header)
		if name != tc.name || ok != tc.ok {
			t.Errorf("HeaderVar(%q) = %q, %v", tc.header, name, ok)
		}
	}
}

// TestTLSVarsClientCertificate: a verified client certificate is told by
// mod_ssl's names.
func TestTLSVarsClientCertificate(t *testing.T) {
	ca := &x509.Certificate{Subject: pkix.Name{CommonName: "Clients CA"}}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(0x1F), Subject: pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"ops"}},
		Issuer: ca.Subject, Raw: []byte{1, 2, 3},
		NotBefore: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), NotAfter: time.Date(2027, 11, 12, 13, 14, 15, 0, time.UTC)}
	got := map[string]string{}
	TLSVars(&tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf, ca}}}, func(k, v string) { got[k] = v })
	want := map[string]string{
		"SSL_PROTOCOL": "TLSv1.2", "SSL_CIPHER": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "SSL_CLIENT_VERIFY": "SUCCESS",
		"SSL_CLIENT_S_DN": "CN=alice,OU=ops", "SSL_CLIENT_I_DN": "CN=Clients CA", "SSL_CLIENT_M_SERIAL": "1F",
		"SSL_CLIENT_V_START": "Jan  2 03:04:05 2026 GMT", "SSL_CLIENT_V_END": "Nov 12 13:14:15 2027 GMT",
		"SSL_CLIENT_CERT": "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n",
	}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
