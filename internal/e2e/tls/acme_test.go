package tls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// run starts a program for the test, ends it (by pid) at cleanup, and
// returns its output so far on demand.
func run(t *testing.T, env []string, argv ...string) func() string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out syncWriter
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	})
	return out.String
}

// waitListening waits until addr accepts.
func waitListening(t *testing.T, addr string, out func() string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen:\n%s", addr, out())
		}
	}
}

// TestACME obtains a certificate from a real ACME server, Debian's pebble
// (with its DNS, pebble-challtestsrv, pointing every name at 127.0.0.1),
// for each challenge: the master orders it, the children answer the
// challenge on phased's own listeners, and the certificate is rolled out
// with a graceful restart, after which the TLS listener serves it.
func TestACME(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	pebble := e2e.Program(t, "pebble", "pebble")
	challtest := e2e.Program(t, "pebble-challtestsrv", "pebble")
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			dir := t.TempDir()
			dns, dnsMgmt, acmeAddr, mgmt := e2e.FreePort(t), e2e.FreePort(t), e2e.FreePort(t), e2e.FreePort(t)
			plain, secure := e2e.FreePort(t), e2e.FreePort(t)
			_, plainPort, _ := net.SplitHostPort(plain)
			_, securePort, _ := net.SplitHostPort(secure)
			genCert(t, dir, "pebble", "localhost")
			// Under TLS-ALPN-01 pebble issues certificates of 15 s, so
			// that the renewal (at 5 s left) comes within the test.
			validity := 0
			if challenge == "tls-alpn-01" {
				validity = 15
			}
			cfg := fmt.Sprintf(`{"pebble": {"listenAddress": %q, "managementListenAddress": %q, "certificate": %q, "privateKey": %q,
				"httpPort": %s, "tlsPort": %s, "ocspResponderURL": "", "externalAccountBindingRequired": false, "certificateValidityPeriod": %d}}`,
				acmeAddr, mgmt, filepath.Join(dir, "pebble.crt"), filepath.Join(dir, "pebble.key"), plainPort, securePort, validity)
			os.WriteFile(filepath.Join(dir, "pebble.json"), []byte(cfg), 0o644)
			dnsOut := run(t, nil, challtest, "-dns01", dns, "-http01", "", "-https01", "", "-tlsalpn01", "",
				"-management", dnsMgmt, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
			waitListening(t, dnsMgmt, dnsOut)
			pebbleOut := run(t, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}, pebble, "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", dns)
			waitListening(t, acmeAddr, pebbleOut)

			e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
			os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
			// HTTP-01 is asked on a plain listener that redirects
			// everything else to HTTPS, as a site's port 80 does.
			plainEntry := plain
			if challenge == "http-01" {
				plainEntry = fmt.Sprintf("{address: %q, redirect_https: %q}", plain, securePort)
			}
			conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(plain, fmt.Sprintf(`listen:
  - %s
  - address: %s
    tls:
      acme: {names: [phased.test], directory: "https://%s/dir", ca: pebble.crt, challenge: %s, email: ops@phased.test}
`, plainEntry, secure, acmeAddr, challenge)))
			p := e2e.Start(t, dir, nil, "-f", conf)
			p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
			p.WaitLog(t, "ACME: certificate issued", 1, 60*time.Second)
			p.WaitLog(t, "graceful restart done", 1, 30*time.Second)
			defer func() {
				for _, step := range []string{"resuming normal operations", "ACME: account registered", "ACME: ordering a certificate", "ACME: " + strings.ToUpper(challenge[:len(challenge)-3]) + "-01 challenge presented",
					"ACME: certificate issued", "ACME: rolling the new certificate out with a graceful restart", "graceful restart done", "ACME: renewing"} {
					for _, r := range p.Log.Records(step) {
						t.Logf("%s  %s", r["time"], step)
					}
				}
			}()

			// The TLS listener serves pebble's certificate for the name,
			// which verifies against pebble's root.
			roots := x509.NewCertPool()
			mc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second}
			resp, err := mc.Get("https://" + mgmt + "/roots/0")
			if err != nil {
				t.Fatal(err)
			}
			rootPEM, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			roots.AppendCertsFromPEM(rootPEM)
			leaf := acmeLeaf(t, p, secure, roots, nil)
			if !strings.Contains(leaf.Issuer.CommonName, "Pebble") || leaf.DNSNames[0] != "phased.test" {
				t.Fatalf("served %v issued by %q", leaf.DNSNames, leaf.Issuer.CommonName)
			}
			// The account and the certificate are in the storage for the
			// next start, and the status page shows the expiry.
			for _, f := range []string{"acme/account.json", "acme/certificates/phased.test/cert.pem", "acme/certificates/phased.test/key.pem"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("storage: %v", err)
				}
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if resp, err = mc.Get("https://" + secure + "/server-status?json"); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal(err)
				}
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			var st struct {
				Certificates []struct {
					Names       []string `json:"names"`
					SecondsLeft int64    `json:"seconds_left"`
				} `json:"certificates"`
			}
			json.Unmarshal([]byte(body), &st)
			if len(st.Certificates) != 1 || st.Certificates[0].Names[0] != "phased.test" || st.Certificates[0].SecondsLeft <= 0 {
				t.Errorf("status page certificates: %s", body)
			}
			if validity == 0 {
				// A name added to the configuration: the graceful
				// restart that loads it orders a certificate with it.
				os.WriteFile(conf, []byte(strings.Replace(string(must(os.ReadFile(conf))), "names: [phased.test]", "names: [phased.test, www.phased.test]", 1)), 0o644)
				if code, _, errOut := e2e.Run(t, dir, nil, "-f", conf, "-k", "graceful"); code != 0 {
					t.Fatalf("-k graceful: %d %s", code, errOut)
				}
				p.WaitLog(t, "ACME: renewing", 1, 20*time.Second)
				if r := p.Log.Records("ACME: renewing")[0]; r["reason"] != "the certificate lacks a name" {
					t.Errorf("renewing: %v", r)
				}
				p.WaitLog(t, "ACME: certificate issued", 2, 30*time.Second)
				if got := acmeLeaf(t, p, secure, roots, leaf); !slices.Contains(got.DNSNames, "www.phased.test") {
					t.Errorf("the new certificate names %v", got.DNSNames)
				}
				return
			}

			// The renewal: with a third of the certificate's life left,
			// the master orders a new one by itself and rolls it out;
			// not before (a certificate shorter-lived than renew_before's
			// old default of 30 days was ordered again and again).
			if n := p.Log.Count("ACME: ordering a certificate"); n != 1 {
				t.Errorf("%d orders before the renewal is due", n)
			}
			p.WaitLog(t, "ACME: renewing", 1, 20*time.Second)
			if r := p.Log.Records("ACME: renewing")[0]; r["reason"] != "renewal due" {
				t.Errorf("renewing: %v", r)
			}
			p.WaitLog(t, "ACME: certificate issued", 2, 30*time.Second)
			p.WaitLog(t, "graceful restart done", 2, 30*time.Second)
			renewed := acmeLeaf(t, p, secure, roots, leaf)
			if life := leaf.NotAfter.Sub(leaf.NotBefore); life > time.Minute {
				t.Fatalf("pebble's certificates last %v", life)
			}
			if !renewed.NotAfter.After(leaf.NotAfter) {
				t.Errorf("renewed certificate expires %v, the first %v", renewed.NotAfter, leaf.NotAfter)
			}
		})
	}
}

// acmeLeaf is the certificate the TLS listener at addr serves for
// phased.test, verified against roots, once it is not old: after a
// graceful restart a connection may still reach a child of the old
// generation, which stops accepting as it gets its drain signal.
func acmeLeaf(t *testing.T, p *e2e.Proc, addr string, roots *x509.CertPool, old *x509.Certificate) *x509.Certificate {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "phased.test", RootCAs: roots})
		if err == nil {
			leaf := c.ConnectionState().PeerCertificates[0]
			c.Close()
			if old == nil || leaf.SerialNumber.Cmp(old.SerialNumber) != 0 {
				return leaf
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new certificate that verifies against pebble's root at %s: %v\n%s", addr, err, p.Log)
		}
	}
}

// syncWriter is a buffer safe for concurrent writes.
type syncWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
