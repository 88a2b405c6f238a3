package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"

	"github.com/phasedhq/phased/internal/accesslog"
)

// TLSVars calls put with what a CGI or FastCGI script learns of a request
// over TLS, by the names of Apache's mod_ssl (its StdEnvVars): the
// protocol, the cipher suite (Go's name, which is IANA's), the name the
// client asked for, and SSL_CLIENT_VERIFY: SUCCESS with a client
// certificate (a listener's tls.client_auth verified it), NONE without.
// With one come its subject and issuer (RFC 2253), serial number
// (hexadecimal), validity and the certificate itself (PEM).
func TLSVars(cs *tls.ConnectionState, put func(name, value string)) {
	put("SSL_PROTOCOL", accesslog.TLSProtocol(cs.Version))
	put("SSL_CIPHER", tls.CipherSuiteName(cs.CipherSuite))
	if cs.ServerName != "" {
		put("SSL_TLS_SNI", cs.ServerName)
	}
	if len(cs.VerifiedChains) == 0 {
		put("SSL_CLIENT_VERIFY", "NONE")
		return
	}
	c := cs.PeerCertificates[0]
	put("SSL_CLIENT_VERIFY", "SUCCESS")
	put("SSL_CLIENT_S_DN", c.Subject.String())
	put("SSL_CLIENT_I_DN", c.Issuer.String())
	put("SSL_CLIENT_M_SERIAL", serial(c))
	const asn1Time = "Jan _2 15:04:05 2006 GMT" // mod_ssl's
	put("SSL_CLIENT_V_START", c.NotBefore.UTC().Format(asn1Time))
	put("SSL_CLIENT_V_END", c.NotAfter.UTC().Format(asn1Time))
	put("SSL_CLIENT_CERT", certPEM(c))
}

func serial(c *x509.Certificate) string { return fmt.Sprintf("%X", c.SerialNumber) }

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// clientHeaders begins the names of the headers an app behind an http
// child learns a verified client certificate from; a client's own are
// never passed on.
const clientHeaders = "X-Ssl-Client-"

// ClientCertHeaders sets h's X-SSL-Client-Verify (SUCCESS), -S-DN, -I-DN,
// -Serial and -Cert (the PEM, URL-escaped as nginx's
// $ssl_client_escaped_cert) from cs's verified client certificate; without
// one it sets none.
func ClientCertHeaders(h http.Header, cs *tls.ConnectionState) {
	if cs == nil || len(cs.VerifiedChains) == 0 {
		return
	}
	c := cs.PeerCertificates[0]
	h[clientHeaders+"Verify"] = []string{"SUCCESS"}
	h[clientHeaders+"S-Dn"] = []string{c.Subject.String()}
	h[clientHeaders+"I-Dn"] = []string{c.Issuer.String()}
	h[clientHeaders+"Serial"] = []string{serial(c)}
	h[clientHeaders+"Cert"] = []string{url.QueryEscape(certPEM(c))}
}

// Reserved reports whether a request header's name, in any case, is one
// a client may not send to an app or script, as it says what phased did
// for the request: X-Sendfile-Type and X-Accel-Mapping (Sendfile: with
// them a client could make a Rack app put its files' paths in its
// answers) and X-SSL-Client-* (a verified client certificate,
// ClientCertHeaders). The proxy, its fast path and the scripts' variables
// (HeaderVar) all leave them out.
func Reserved[T ~string | ~[]byte](name T) bool {
	if len(name) == len("x-sendfile-type") && (FoldEqual(name, "x-sendfile-type") || FoldEqual(name, "x-accel-mapping")) {
		return true
	}
	return len(name) > len(clientHeaders) && FoldEqual(name[:len(clientHeaders)], "x-ssl-client-")
}

// FoldEqual reports whether name is lower, ASCII lower-case, in any case.
func FoldEqual[T ~string | ~[]byte](name T, lower string) bool {
	if len(name) != len(lower) {
		return false
	}
	for i := 0; i < len(lower); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
