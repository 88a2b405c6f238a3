// Package acme obtains and renews certificates from an ACME directory (Let's
// Encrypt, or any RFC 8555 server), for the master, as Caddy and Apache's
// mod_md do. The master owns the account, the storage and the renewals;
// children only get certificates (in their contract) and answer the
// directory's challenges from files the master writes: HTTP-01 answers in
// a folder every plain listener serves under /.well-known/acme-challenge/,
// TLS-ALPN-01 certificates in a folder the TLS listener's children read
// when a client asks for acme-tls/1.
//
// The ACME protocol itself is github.com/mholt/acmez (the client under
// Caddy's certmagic): the order, the authorizations, the challenge
// polling, the finalization and the download.
package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mholt/acmez/v3"
	acmeproto "github.com/mholt/acmez/v3/acme"
)

// Options says what to obtain, from where, and where challenge answers go.
type Options struct {
	// Names are the host names the certificate is for.
	Names []string
	// Email is the account's contact; "" for none.
	Email string
	// Directory is the ACME directory URL.
	Directory string
	// CAFile, when set, is a PEM file of roots to trust for the
	// directory's HTTPS (a private or test ACME server).
	CAFile string
	// Storage is the folder of the account, certificates and keys.
	Storage string
	// Challenge is "http-01" or "tls-alpn-01".
	Challenge string
	// RenewBefore is how long before its expiry the certificate is
	// renewed; 0: once a third of its lifetime is left (Stored.RenewAt).
	RenewBefore time.Duration
	// HTTPDir and TLSDir are where the HTTP-01 answers and the TLS-ALPN-01
	// certificates go, for the children to read.
	HTTPDir, TLSDir string
	// UID and GID own the challenge files the children read; -1 keeps the
	// master's.
	UID, GID int
	// Log receives what happens, step by step.
	Log *slog.Logger
}

// Stored is a certificate in the storage.
type Stored struct {
	Cert, Key           []byte
	NotBefore, NotAfter time.Time
	Names               []string // the leaf's DNS names
}

// RenewAt is when the certificate is due for renewal: before its expiry,
// or, when before is 0 or not shorter than its lifetime, once a third of
// its lifetime is left (as Caddy does, and Let's Encrypt advises: a
// 90-day certificate at 30 days left, a 6-day one at 2).
func (s Stored) RenewAt(before time.Duration) time.Time {
	life := s.NotAfter.Sub(s.NotBefore)
	if before <= 0 || before >= life {
		before = life / 3
	}
	return s.NotAfter.Add(-before)
}

// Covers reports whether the certificate names every one of names.
func (s Stored) Covers(names []string) bool {
	for _, n := range names {
		if !slices.Contains(s.Names, n) {
			return false
		}
	}
	return true
}

// Load returns the stored certificate for o.Names, or false when there is
// none (or it cannot be read).
func Load(o Options) (Stored, bool) {
	dir := certDir(o)
	cert, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		return Stored{}, false
	}
	key, err := os.ReadFile(filepath.Join(dir, "key.pem"))
	if err != nil {
		return Stored{}, false
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return Stored{}, false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return Stored{}, false
	}
	return Stored{Cert: cert, Key: key, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Names: leaf.DNSNames}, true
}

func certDir(o Options) string { return filepath.Join(o.Storage, "certificates", o.Names[0]) }

// Obtain gets a certificate for o.Names (with a new account the first
// time) and stores it, replacing what was there.
func Obtain(ctx context.Context, o Options) (Stored, error) {
	hc, err := httpClient(o.CAFile)
	if err != nil {
		return Stored{}, err
	}
	client := &acmez.Client{
		Client:           &acmeproto.Client{Directory: o.Directory, HTTPClient: hc, UserAgent: "phased", Logger: o.Log.With("acme", "client")},
		ChallengeSolvers: map[string]acmez.Solver{},
	}
	switch o.Challenge {
	case acmeproto.ChallengeTypeHTTP01:
		client.ChallengeSolvers[acmeproto.ChallengeTypeHTTP01] = &httpSolver{o: o}
	default:
		client.ChallengeSolvers[acmeproto.ChallengeTypeTLSALPN01] = &tlsSolver{o: o}
	}
	account, err := loadAccount(ctx, client, o)
	if err != nil {
		return Stored{}, fmt.Errorf("acme account at %s: %w", o.Directory, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Stored{}, err
	}
	o.Log.Info("ACME: ordering a certificate", "names", o.Names, "directory", o.Directory, "challenge", o.Challenge)
	certs, err := client.ObtainCertificateForSANs(ctx, account, key, o.Names)
	if err != nil {
		return Stored{}, fmt.Errorf("acme order for %v: %w", o.Names, err)
	}
	if len(certs) == 0 {
		return Stored{}, fmt.Errorf("acme order for %v: no certificate", o.Names)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Stored{}, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	dir := certDir(o)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Stored{}, err
	}
	if err := writeFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		return Stored{}, err
	}
	if err := writeFile(filepath.Join(dir, "cert.pem"), certs[0].ChainPEM, 0o644); err != nil {
		return Stored{}, err
	}
	st, ok := Load(o)
	if !ok {
		return Stored{}, errors.New("acme: the stored certificate does not load")
	}
	o.Log.Info("ACME: certificate issued", "names", o.Names, "not_after", st.NotAfter.Format(time.RFC3339), "url", certs[0].URL)
	return st, nil
}

// httpClient trusts caFile's roots too, when set.
func httpClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return &http.Client{Timeout: time.Minute}, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("acme ca: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("acme ca %s: no certificate", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return &http.Client{Timeout: time.Minute, Transport: tr}, nil
}

// accountFile is the stored account: its key and its URL.
type accountFile struct {
	Location string `json:"location"`
	Key      []byte `json:"key"`
	Contact  string `json:"contact"`
}

// loadAccount returns the stored account for the directory, or makes one.
func loadAccount(ctx context.Context, client *acmez.Client, o Options) (acmeproto.Account, error) {
	path := filepath.Join(o.Storage, "account.json")
	var contact []string
	if o.Email != "" {
		contact = []string{"mailto:" + o.Email}
	}
	if b, err := os.ReadFile(path); err == nil {
		var f accountFile
		if err := json.Unmarshal(b, &f); err == nil {
			if block, _ := pem.Decode(f.Key); block != nil {
				if key, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
					acct := acmeproto.Account{Location: f.Location, PrivateKey: key, Contact: contact}
					if got, err := client.GetAccount(ctx, acct); err == nil && got.Status == acmeproto.StatusValid {
						return got, nil
					}
				}
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return acmeproto.Account{}, err
	}
	acct, err := client.NewAccount(ctx, acmeproto.Account{Contact: contact, TermsOfServiceAgreed: true, PrivateKey: key})
	if err != nil {
		return acmeproto.Account{}, err
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	b, _ := json.Marshal(accountFile{Location: acct.Location, Key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), Contact: o.Email})
	if err := os.MkdirAll(o.Storage, 0o700); err != nil {
		return acmeproto.Account{}, err
	}
	if err := writeFile(path, b, 0o600); err != nil {
		return acmeproto.Account{}, err
	}
	o.Log.Info("ACME: account registered", "directory", o.Directory, "account", acct.Location)
	return acct, nil
}

// writeFile writes b to path through a temporary file and a rename, so a
// reader never sees half of it.
func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// httpSolver answers HTTP-01: the key authorization, in a file named by
// the token, which the children serve.
type httpSolver struct{ o Options }

func (s *httpSolver) Present(_ context.Context, c acmeproto.Challenge) error {
	path := filepath.Join(s.o.HTTPDir, c.Token)
	if err := writeFile(path, []byte(c.KeyAuthorization), 0o644); err != nil {
		return err
	}
	os.Chown(path, s.o.UID, s.o.GID)
	s.o.Log.Info("ACME: HTTP-01 challenge presented", "name", c.Identifier.Value, "token", c.Token)
	return nil
}

func (s *httpSolver) CleanUp(_ context.Context, c acmeproto.Challenge) error {
	return os.Remove(filepath.Join(s.o.HTTPDir, c.Token))
}

// tlsSolver answers TLS-ALPN-01: the challenge certificate and its key, in
// NAME.crt and NAME.key, which the children show to a client that asks for
// acme-tls/1.
type tlsSolver struct{ o Options }

func (s *tlsSolver) Present(_ context.Context, c acmeproto.Challenge) error {
	cert, err := acmez.TLSALPN01ChallengeCert(c)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	name := c.Identifier.Value
	keyPath, certPath := filepath.Join(s.o.TLSDir, name+".key"), filepath.Join(s.o.TLSDir, name+".crt")
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	os.Chown(keyPath, s.o.UID, s.o.GID)
	if err := writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		return err
	}
	s.o.Log.Info("ACME: TLS-ALPN-01 challenge presented", "name", name)
	return nil
}

func (s *tlsSolver) CleanUp(_ context.Context, c acmeproto.Challenge) error {
	name := c.Identifier.Value
	os.Remove(filepath.Join(s.o.TLSDir, name+".crt"))
	return os.Remove(filepath.Join(s.o.TLSDir, name+".key"))
}

var _ crypto.Signer = (*ecdsa.PrivateKey)(nil)
