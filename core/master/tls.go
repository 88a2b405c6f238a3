package master

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/internal/contract"
)

// loadTLS reads the certificates and keys of cfg's TLS listeners, as the
// master does in the open-logs phase, while still privileged: children that
// run as another user get the material in their contract and never read a
// key file. It returns each listener's TLS by address (nil for plain ones);
// an unreadable file, a bad certificate or a key that does not match is an
// error naming the listener's key and the file.
func loadTLS(cfg *config.Config) (map[string]*contract.TLS, error) {
	out := map[string]*contract.TLS{}
	var errs []error
	for i, l := range cfg.Listen {
		if l.TLS == nil {
			continue
		}
		t := &contract.TLS{MinVersion: tls.VersionTLS12, HTTP2: l.HTTP2On()}
		if l.TLS.MinVersion == "1.3" {
			t.MinVersion = tls.VersionTLS13
		}
		for _, name := range l.TLS.Ciphers {
			for _, cs := range tls.CipherSuites() {
				if cs.Name == name {
					t.Ciphers = append(t.Ciphers, cs.ID)
				}
			}
		}
		if len(t.Ciphers) == 0 {
			t.Ciphers = modernCiphers
		}
		if l.TLS.ClientAuth != "none" {
			key := fmt.Sprintf("listen[%d].tls.client_ca", i)
			cas, err := loadClientCAs(l.TLS.ClientCA)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", key, l.Address, err))
			}
			t.ClientCAs, t.ClientAuth = cas, l.TLS.ClientAuth
		}
		for j, c := range l.TLS.Certificates {
			key := fmt.Sprintf("listen[%d].tls.certificates[%d]", i, j)
			crt, err := loadCertificate(c.Cert, c.Key)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", key, l.Address, err))
				continue
			}
			t.Certificates = append(t.Certificates, crt)
		}
		out[l.Address] = t
	}
	return out, errors.Join(errs...)
}

// modernCiphers are the TLS 1.2 suites offered unless tls.ciphers says
// otherwise: forward secrecy (ECDHE) and authenticated encryption (AES-GCM,
// ChaCha20-Poly1305) only, no CBC; Mozilla's "intermediate" list. TLS 1.3's
// suites are all of that kind.
var modernCiphers = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// loadCertificate reads a certificate chain and its key and checks them.
func loadCertificate(certFile, keyFile string) (contract.Certificate, error) {
	c := contract.Certificate{File: certFile, KeyFile: keyFile}
	var err error
	if c.Cert, err = os.ReadFile(certFile); err != nil {
		return c, fmt.Errorf("cert: %w", err)
	}
	if c.Key, err = os.ReadFile(keyFile); err != nil {
		return c, fmt.Errorf("key: %w", err)
	}
	pair, err := tls.X509KeyPair(c.Cert, c.Key)
	if err != nil {
		switch {
		case strings.Contains(err.Error(), "does not match"):
			return c, fmt.Errorf("the key in %s does not match the certificate in %s", keyFile, certFile)
		case strings.Contains(err.Error(), "certificate"):
			return c, fmt.Errorf("cert %s: %w", certFile, err)
		}
		return c, fmt.Errorf("key %s: %w", keyFile, err)
	}
	if len(pair.Certificate) == 0 {
		return c, fmt.Errorf("cert %s: no certificate", certFile)
	}
	if _, err := x509.ParseCertificate(pair.Certificate[0]); err != nil {
		return c, fmt.Errorf("cert %s: %w", certFile, err)
	}
	return c, nil
}

// loadClientCAs reads the PEM file of the authorities client certificates
// must chain to; it must hold at least one certificate, and nothing else.
func loadClientCAs(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	n := 0
	for rest := b; ; n++ {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: a %s where only certificates belong", file, block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", file, n+1, err)
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return b, nil
}
