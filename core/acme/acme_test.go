package acme

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRenewAt(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tc := range []struct {
		name   string
		life   time.Duration
		before time.Duration
		left   time.Duration // renewed with this much of the lifetime left
	}{
		{"90 days, default", 90 * day, 0, 30 * day},
		{"90 days, 10 days before", 90 * day, 10 * day, 10 * day},
		{"6 days, default", 6 * day, 0, 2 * day},
		{"6 days, 30 days before: a third", 6 * day, 30 * day, 2 * day},
		{"6 days, 6 days before: a third", 6 * day, 6 * day, 2 * day},
	} {
		st := Stored{NotBefore: now, NotAfter: now.Add(tc.life)}
		if got := st.NotAfter.Sub(st.RenewAt(tc.before)); got != tc.left {
			t.Errorf("%s: renewed with %v left, want %v", tc.name, got, tc.left)
		}
	}
}

// TestLoad reads a stored certificate's validity and names, and Covers
// tells a certificate that lacks a listener's name.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	o := Options{Names: []string{"example.org", "www.example.org"}, Storage: dir}
	if _, ok := Load(o); ok {
		t.Fatal("loaded a certificate from an empty storage")
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	nb := time.Now().Add(-time.Hour).Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), DNSNames: []string{"example.org", "www.example.org"},
		NotBefore: nb, NotAfter: nb.Add(90 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.MkdirAll(certDir(o), 0o700)
	os.WriteFile(filepath.Join(certDir(o), "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(certDir(o), "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	st, ok := Load(o)
	if !ok || !st.NotBefore.Equal(nb) || !st.NotAfter.Equal(tmpl.NotAfter) {
		t.Fatalf("loaded %v: %v to %v", ok, st.NotBefore, st.NotAfter)
	}
	if !st.Covers(o.Names) || !st.Covers(o.Names[:1]) {
		t.Errorf("%v does not cover %v", st.Names, o.Names)
	}
	if st.Covers(append(o.Names, "api.example.org")) {
		t.Errorf("%v covers api.example.org", st.Names)
	}
}
