package config

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Listener is one entry of listen: an address, written as a plain string
// ("127.0.0.1:8080"), or a mapping that also carries TLS and the
// listener's other options.
type Listener struct {
	// Address is "host:port" (see Config.Listen). Required.
	Address string `koanf:"address" json:"address" yaml:"address"`

	// TLS makes the listener speak HTTPS; nil is plain HTTP.
	TLS *TLS `koanf:"tls" json:"tls" yaml:"tls"`

	// HTTP2 offers HTTP/2 by ALPN on a TLS listener. Default true.
	HTTP2 *bool `koanf:"http2" json:"http2" yaml:"http2"`

	// H2C serves HTTP/2 without TLS (prior knowledge, or an h2c upgrade)
	// on a plain listener. Default false.
	H2C bool `koanf:"h2c" json:"h2c" yaml:"h2c"`

	// RedirectHTTPS, on a plain listener, answers every request with a
	// 301 to the same URL over HTTPS, on this port ("443": no port in the
	// URL). "" serves normally. Default "".
	RedirectHTTPS string `koanf:"redirect_https" json:"redirect_https" yaml:"redirect_https"`

	// ProxyProtocol requires every connection to start with a PROXY
	// protocol header, version 1 or 2 (HAProxy's send-proxy and
	// send-proxy-v2, AWS NLB, nginx's proxy_protocol), before TLS on a TLS
	// listener; the address it carries is the client's. A connection
	// without a valid header within timeouts.read_header, or from a peer
	// outside trusted_proxies when that is set, is closed and counted
	// (phased_proxy_protocol_rejected_total). Default false.
	ProxyProtocol bool `koanf:"proxy_protocol" json:"proxy_protocol" yaml:"proxy_protocol"`

	// AcceptFilter is Apache's AcceptFilter for this listener. "data" (on
	// Linux, TCP_DEFER_ACCEPT for a second; nginx's "deferred") hands a
	// connection to a child only once its first bytes are in, or after
	// the second: a child then answers nearly every request in the read
	// that follows its accept (connection churn costs a third less CPU),
	// but a flood of connections beyond what a worker or prefork server
	// takes left new clients unable to connect for seconds afterwards in
	// the benchmarks, so it is not the default. "none" hands every
	// connection over at once. Default "none".
	AcceptFilter string `koanf:"accept_filter" json:"accept_filter" yaml:"accept_filter"`
}

// The values of accept_filter.
var acceptFilters = []string{"data", "none"}

// DeferAccept reports whether l's connections wait for their first bytes
// (accept_filter: data).
func (l Listener) DeferAccept() bool { return l.AcceptFilter == "data" }

// TLS is a listener's HTTPS: its certificates (or ACME's), the lowest
// protocol version, the cipher suites.
type TLS struct {
	// Certificates are certificate and key files, PEM; with several, the
	// one whose names match the client's SNI answers, the first one when
	// none does. The master reads them while still privileged (children
	// running as user: never need to read a root-only key).
	Certificates []Certificate `koanf:"certificates" json:"certificates" yaml:"certificates"`

	// MinVersion is the lowest TLS version offered: "1.2" or "1.3".
	// Default "1.2".
	MinVersion string `koanf:"min_version" json:"min_version" yaml:"min_version"`

	// Ciphers are the TLS 1.2 cipher suites offered, by their Go names
	// (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 ...); empty means the
	// modern default: ECDHE with AES-GCM or ChaCha20-Poly1305 only. TLS
	// 1.3's suites are always its own. Default empty.
	Ciphers []string `koanf:"ciphers" json:"ciphers" yaml:"ciphers"`

	// ACME obtains and renews certificates for names from an ACME
	// directory (Let's Encrypt, or any RFC 8555 server), as Caddy and
	// mod_md do; nil means none.
	ACME *ACME `koanf:"acme" json:"acme" yaml:"acme"`

	// ClientCA is a PEM file of the certificate authorities a client's
	// certificate must chain to (Apache's SSLCACertificateFile with
	// SSLVerifyClient, nginx's ssl_client_certificate). Read by the master
	// as the certificates are. Default "": no client certificates.
	ClientCA string `koanf:"client_ca" json:"client_ca" yaml:"client_ca"`

	// ClientAuth is whether clients show a certificate: "require" (the
	// handshake fails without one that verifies), "optional" (one that is
	// shown must verify; apps see whether there was one) or "none".
	// Default "require" with client_ca, "none" without.
	ClientAuth string `koanf:"client_auth" json:"client_auth" yaml:"client_auth"`
}

// Certificate is one certificate and its private key.
type Certificate struct {
	// Cert is the certificate chain's file (PEM, leaf first). Required.
	Cert string `koanf:"cert" json:"cert" yaml:"cert"`
	// Key is the private key's file (PEM). Required.
	Key string `koanf:"key" json:"key" yaml:"key"`
}

// ACME is automatic certificates for a TLS listener.
type ACME struct {
	// Names are the host names to obtain certificates for. Required.
	Names []string `koanf:"names" json:"names" yaml:"names"`
	// Email is the account's contact. Default "".
	Email string `koanf:"email" json:"email" yaml:"email"`
	// Directory is the ACME directory URL. Default Let's Encrypt's.
	Directory string `koanf:"directory" json:"directory" yaml:"directory"`
	// CA is a PEM file of roots to trust for the directory (a private or
	// test ACME server); "" means the system's. Default "".
	CA string `koanf:"ca" json:"ca" yaml:"ca"`
	// Storage is where the account, certificates and keys are kept.
	// Default "acme", under server_root.
	Storage string `koanf:"storage" json:"storage" yaml:"storage"`
	// Challenge is how the directory checks the names: "http-01" (on a
	// plain listener on port 80 of these names, as the directory dials
	// it) or "tls-alpn-01" (on this listener). Default "tls-alpn-01".
	Challenge string `koanf:"challenge" json:"challenge" yaml:"challenge"`
	// RenewBefore is how long before expiry a certificate is renewed.
	// Default 0: once a third of its lifetime is left (30 days of a
	// 90-day certificate); also when it is not shorter than the lifetime.
	RenewBefore time.Duration `koanf:"renew_before" json:"renew_before" yaml:"renew_before"`
}

// UnmarshalText reads a listen entry written as a plain address.
func (l *Listener) UnmarshalText(b []byte) error {
	*l = Listener{Address: string(b)}
	return nil
}

// ListenAddrs returns the addresses of listen, in order.
func (c *Config) ListenAddrs() []string {
	out := make([]string, len(c.Listen))
	for i, l := range c.Listen {
		out[i] = l.Address
	}
	return out
}

// HTTP2On reports whether l offers HTTP/2 by ALPN (a TLS listener with
// http2 not turned off).
func (l Listener) HTTP2On() bool { return l.TLS != nil && (l.HTTP2 == nil || *l.HTTP2) }

// plain reports whether l is written as a plain address (-S prints it so).
func (l Listener) plain() bool {
	return l.TLS == nil && l.HTTP2 == nil && !l.H2C && l.RedirectHTTPS == "" && !l.ProxyProtocol && (l.AcceptFilter == "" || l.AcceptFilter == "none")
}

// The TLS versions min_version takes.
var tlsVersions = []string{"1.2", "1.3"}

// The values of tls.client_auth.
var clientAuths = []string{"none", "optional", "require"}

// validateListen checks listen's entries; every error names its key.
func (c *Config) validateListen(v *validator) {
	if len(c.Listen) == 0 {
		v.errorf("listen", "needs at least one address")
	}
	seen := map[string]int{}
	for i, l := range c.Listen {
		key := fmt.Sprintf("listen[%d]", i)
		if !l.plain() {
			key += ".address"
		}
		id, msg := checkListen(l.Address)
		if msg != "" {
			v.errorf(key, "%s", msg)
		} else if id != "" {
			if j, ok := seen[id]; ok {
				if l.Address == c.Listen[j].Address {
					v.errorf(key, "%q: duplicate of listen[%d]", l.Address, j)
				} else {
					v.errorf(key, "%q: duplicate of listen[%d] %q", l.Address, j, c.Listen[j].Address)
				}
			} else {
				seen[id] = i
			}
		}
		c.validateListener(v, fmt.Sprintf("listen[%d]", i), l)
	}
}

func (c *Config) validateListener(v *validator, key string, l Listener) {
	if l.AcceptFilter != "" {
		v.oneOf(key+".accept_filter", l.AcceptFilter, acceptFilters)
	}
	if l.TLS == nil {
		if l.HTTP2 != nil {
			v.errorf(key+".http2", "is for TLS listeners (plain HTTP/2 is h2c)")
		}
		if p := l.RedirectHTTPS; p != "" {
			if _, msg := checkListen("x:" + p); msg != "" {
				v.errorf(key+".redirect_https", "%q is not a port", p)
			}
		}
		return
	}
	if l.H2C {
		v.errorf(key+".h2c", "is for plain listeners (HTTP/2 over TLS is http2)")
	}
	if l.RedirectHTTPS != "" {
		v.errorf(key+".redirect_https", "is for plain listeners")
	}
	t := l.TLS
	if len(t.Certificates) == 0 && t.ACME == nil {
		v.errorf(key+".tls", "needs certificates (cert and key files) or acme")
	}
	for j, crt := range t.Certificates {
		ck := fmt.Sprintf("%s.tls.certificates[%d]", key, j)
		if crt.Cert == "" {
			v.errorf(ck+".cert", "must not be empty")
		}
		if crt.Key == "" {
			v.errorf(ck+".key", "must not be empty")
		}
	}
	v.oneOf(key+".tls.min_version", t.MinVersion, tlsVersions)
	v.oneOf(key+".tls.client_auth", t.ClientAuth, clientAuths)
	if t.ClientAuth != "none" && t.ClientCA == "" {
		v.errorf(key+".tls.client_auth", "%q needs tls.client_ca, the authorities client certificates chain to", t.ClientAuth)
	}
	for j, name := range t.Ciphers {
		if _, ok := cipherByName(name); !ok {
			v.errorf(fmt.Sprintf("%s.tls.ciphers[%d]", key, j), "%q is not a TLS 1.2 cipher suite Go offers securely (as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)", name)
		}
	}
	if a := t.ACME; a != nil {
		if len(a.Names) == 0 {
			v.errorf(key+".tls.acme.names", "needs at least one host name")
		}
		for j, n := range a.Names {
			if n == "" || strings.ContainsAny(n, "/: ") {
				v.errorf(fmt.Sprintf("%s.tls.acme.names[%d]", key, j), "%q is not a host name", n)
			}
		}
		v.oneOf(key+".tls.acme.challenge", a.Challenge, []string{"http-01", "tls-alpn-01"})
		if a.RenewBefore < 0 {
			v.errorf(key+".tls.acme.renew_before", "must not be negative")
		}
	}
}

// finishListen fills listen's defaults and makes its files absolute.
func (c *Config) finishListen() {
	if c.Listen == nil {
		c.Listen = []Listener{}
	}
	for i := range c.Listen {
		if c.Listen[i].AcceptFilter == "" {
			c.Listen[i].AcceptFilter = "none"
		}
		t := c.Listen[i].TLS
		if t == nil {
			continue
		}
		if t.MinVersion == "" {
			t.MinVersion = "1.2"
		}
		if t.Certificates == nil {
			t.Certificates = []Certificate{}
		}
		if t.Ciphers == nil {
			t.Ciphers = []string{}
		}
		if t.ClientAuth == "" {
			t.ClientAuth = "none"
			if t.ClientCA != "" {
				t.ClientAuth = "require"
			}
		}
		t.ClientCA = c.abs(t.ClientCA)
		for j := range t.Certificates {
			t.Certificates[j].Cert = c.abs(t.Certificates[j].Cert)
			t.Certificates[j].Key = c.abs(t.Certificates[j].Key)
		}
		if a := t.ACME; a != nil {
			if a.Directory == "" {
				a.Directory = LetsEncrypt
			}
			if a.Storage == "" {
				a.Storage = "acme"
			}
			a.Storage = c.abs(a.Storage)
			a.CA = c.abs(a.CA)
			if a.Challenge == "" {
				a.Challenge = "tls-alpn-01"
			}
			if a.Names == nil {
				a.Names = []string{}
			}
		}
	}
}

// LetsEncrypt is Let's Encrypt's ACME directory, ACME's default.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// cipherByName finds a TLS 1.2 cipher suite Go considers secure, by name.
func cipherByName(name string) (uint16, bool) {
	for _, cs := range tls.CipherSuites() {
		if cs.Name == name && slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			return cs.ID, true
		}
	}
	return 0, false
}
