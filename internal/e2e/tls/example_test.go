package tls

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// TestTLSExample runs examples/tls as shipped, with the commands of its
// README: phased -t names the missing certificate until make-cert.sh has
// made one (openssl); then curl gets the page over HTTP/2 verifying the
// certificate against itself, the plain listener redirects to HTTPS, the
// metrics show the certificate's expiry, and make-cert.sh -f with
// -k graceful serves a new certificate. Only the two addresses are changed
// (to free ports), in phased.yaml and in the commands.
func TestTLSExample(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	dir, readme := copyExample(t, "tls")
	secure, plain := e2e.FreePort(t), e2e.FreePort(t)
	_, securePort, _ := net.SplitHostPort(secure)
	port := strings.NewReplacer("127.0.0.1:8443", secure, "127.0.0.1:8080", plain)
	conf := filepath.Join(dir, "phased.yaml")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	yaml := string(b)
	for _, s := range []string{"127.0.0.1:8443", "127.0.0.1:8080", `redirect_https: "8443"`} {
		if n := strings.Count(yaml, s); n != 1 {
			t.Fatalf("examples/tls/phased.yaml names %s %d times, want once", s, n)
		}
	}
	yaml = strings.NewReplacer("127.0.0.1:8443", secure, "127.0.0.1:8080", plain, `redirect_https: "8443"`, `redirect_https: "`+securePort+`"`).Replace(yaml)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	run := readmeRunner(t, dir, readme, port)
	curl := e2e.Program(t, "curl", "curl")

	if out := run("phased -f phased.yaml -t", 1); !strings.Contains(out, "listen[0].tls.certificates[0] ("+secure+")") || !strings.Contains(out, "tls/site.crt") {
		t.Fatalf("phased -t without a certificate should name the listener and the file:\n%s", out)
	}
	run("./make-cert.sh", 0)
	if fi, err := os.Stat(filepath.Join(dir, "tls", "site.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tls/site.key: %v %v, want mode 0600", fi, err)
	}
	if out := run("./make-cert.sh", 0); !strings.Contains(out, "exist") {
		t.Fatalf("a second make-cert.sh should keep the pair: %s", out)
	}
	if out := run("phased -f phased.yaml -t", 0); !strings.Contains(out, "Syntax OK") {
		t.Fatalf("phased -t: %s", out)
	}
	e2e.Start(t, dir, nil, "-f", conf).WaitLog(t, "resuming normal operations", 1, 30*time.Second)

	// The page, over HTTP/2, the certificate verified by curl.
	if out := run("curl --cacert tls/site.crt --http2 https://127.0.0.1:8443/", 0); !strings.Contains(out, "<h1>phased over TLS</h1>") {
		t.Fatalf("curl over HTTPS: %s", out)
	}
	if out, err := exec.Command(curl, "-s", "--cacert", filepath.Join(dir, "tls/site.crt"), "--http2", "-o", "/dev/null", "-w", "%{http_version}",
		"https://"+secure+"/").Output(); err != nil || string(out) != "2" {
		t.Fatalf("curl --http2: HTTP version %q %v", out, err)
	}
	if out := run("curl -sI http://127.0.0.1:8080/docs", 0); !strings.Contains(out, "HTTP/1.1 301") || !regexp.MustCompile(`(?mi)^location: https://127\.0\.0\.1:`+securePort+`/docs\r?$`).MatchString(out) {
		t.Fatalf("the plain listener's answer:\n%s", out)
	}
	if out := run("curl -s --cacert tls/site.crt https://127.0.0.1:8443/metrics", 0); !regexp.MustCompile(`(?m)^phased_tls_certificate_expiry_seconds\{file="[^"]*tls/site\.crt",listener="` +
		regexp.QuoteMeta(secure) + `",names="localhost"\} \d`).MatchString(out) {
		t.Fatalf("/metrics has no expiry gauge for tls/site.crt:\n%s", out)
	}

	// A new certificate, rolled out with a graceful restart.
	old := servedCert(t, secure, filepath.Join(dir, "tls", "site.crt"))
	run("./make-cert.sh -f", 0)
	run("phased -f phased.yaml -k graceful", 0)
	if fresh := servedCert(t, secure, filepath.Join(dir, "tls", "site.crt")); fresh.Equal(old) {
		t.Fatal("after make-cert.sh -f and -k graceful the old certificate is served")
	}
}

// servedCert connects to addr verifying its certificate against the PEM
// file roots (the self-signed certificate itself) and returns it.
func servedCert(t *testing.T, addr, roots string) *x509.Certificate {
	t.Helper()
	pem, err := os.ReadFile(roots)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS to %s verified by %s: %v", addr, roots, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// copyExample copies examples/name into a new folder as a checkout has it
// (no certificates, which are made, not committed; no logs, run or acme
// folder from an earlier run) and returns the folder and the README.
func copyExample(t *testing.T, name string) (string, []byte) {
	t.Helper()
	src := filepath.Join("..", "..", "..", "examples", name)
	readme, err := os.ReadFile(filepath.Join(src, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tls", "run", "acme"} {
		os.RemoveAll(filepath.Join(dir, p))
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, l := range logs {
		os.Remove(l)
	}
	return dir, readme
}

// readmeRunner returns a function that runs one of readme's commands
// (which must be in it) from the example's folder dir, with the test's
// addresses (port), checks its exit code (-1: any but 0) and returns its output: phased
// as the harness's binary, curl and openssl (for the example's scripts)
// as Debian's.
func readmeRunner(t *testing.T, dir string, readme []byte, port *strings.Replacer) func(line string, wantCode int) string {
	openssl := e2e.Program(t, "openssl", "openssl")
	curl := e2e.Program(t, "curl", "curl")
	return func(line string, wantCode int) string {
		t.Helper()
		if !strings.Contains(string(readme), line) {
			t.Fatalf("the README has no command %q", line)
		}
		argv := strings.Fields(port.Replace(line))
		var cmd *exec.Cmd
		switch argv[0] {
		case "phased":
			code, out, errOut := e2e.Run(t, dir, nil, argv[1:]...)
			if code != wantCode {
				t.Fatalf("%s: exit %d, want %d\n%s%s", line, code, wantCode, out, errOut)
			}
			return out + errOut
		case "curl":
			cmd = exec.Command(curl, argv[1:]...)
		default:
			cmd = exec.Command(argv[0], argv[1:]...)
			cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(openssl)+":"+os.Getenv("PATH"))
		}
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != wantCode && !(wantCode == -1 && code > 0) {
			t.Fatalf("%s: exit %d (%v), want %d\n%s", line, code, err, wantCode, out)
		}
		return string(out)
	}
}

// TestTLSClientsExample runs examples/tls-clients as shipped, with the
// commands of its README and Debian's curl: phased -t names the missing
// file until make-certs.sh has made the certificates; curl with alice's
// certificate gets the CGI script's account of it (mod_ssl's variables),
// curl without one, or with one of another authority, is refused in the
// handshake.
func TestTLSClientsExample(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	dir, readme := copyExample(t, "tls-clients")
	secure := e2e.FreePort(t)
	port := strings.NewReplacer("127.0.0.1:8443", secure)
	conf := filepath.Join(dir, "phased.yaml")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "127.0.0.1:8443"); n != 1 {
		t.Fatalf("examples/tls-clients/phased.yaml names 127.0.0.1:8443 %d times, want once", n)
	}
	if err := os.WriteFile(conf, []byte(port.Replace(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
	run := readmeRunner(t, dir, readme, port)
	if out := run("phased -f phased.yaml -t", 1); !strings.Contains(out, "listen[0].tls.client_ca ("+secure+")") || !strings.Contains(out, "tls/clients-ca.crt") || !strings.Contains(out, "tls/site.crt") {
		t.Fatalf("phased -t without the certificates should name the listener and a file:\n%s", out)
	}
	run("./make-certs.sh", 0)
	if out := run("./make-certs.sh", 0); !strings.Contains(out, "has the certificates") {
		t.Fatalf("a second make-certs.sh should keep them: %s", out)
	}
	for _, key := range []string{"site.key", "clients-ca.key", "alice.key"} {
		if fi, err := os.Stat(filepath.Join(dir, "tls", key)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("tls/%s: %v %v, want mode 0600", key, fi, err)
		}
	}
	if out := run("phased -f phased.yaml -t", 0); !strings.Contains(out, "Syntax OK") {
		t.Fatalf("phased -t: %s", out)
	}
	e2e.Start(t, dir, nil, "-f", conf).WaitLog(t, "resuming normal operations", 1, 30*time.Second)

	out := run("curl --cacert tls/site.crt --cert tls/alice.crt --key tls/alice.key https://127.0.0.1:8443/cgi-bin/whoami", 0)
	for _, want := range []string{"verify:  SUCCESS", "subject: CN=alice,O=Example", "issuer:  CN=Example clients CA,O=Example", "over:    TLSv1.3 TLS_"} {
		if !strings.Contains(out, want) {
			t.Fatalf("whoami with alice's certificate lacks %q:\n%s", want, out)
		}
	}
	// Refused in the handshake: with TLS 1.3 curl meets the server's alert
	// as it sends its request (exit 55) or reads the answer (56).
	if out := run("curl --cacert tls/site.crt https://127.0.0.1:8443/", -1); !strings.Contains(out, "certificate required") {
		t.Fatalf("curl without a certificate:\n%s", out)
	}
	// A certificate of another authority, made the README's way.
	other := filepath.Join(dir, "other")
	os.MkdirAll(filepath.Join(other, "cgi-bin"), 0o755)
	mk, _ := os.ReadFile(filepath.Join(dir, "make-certs.sh"))
	os.WriteFile(filepath.Join(other, "make-certs.sh"), mk, 0o755)
	if out, err := exec.Command(filepath.Join(other, "make-certs.sh")).CombinedOutput(); err != nil {
		t.Fatalf("another CA: %v %s", err, out)
	}
	curl := e2e.Program(t, "curl", "curl")
	cmd := exec.Command(curl, "-s", "--cacert", "tls/site.crt", "--cert", filepath.Join(other, "tls/alice.crt"), "--key", filepath.Join(other, "tls/alice.key"),
		"https://"+secure+"/")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("another authority's certificate was let in:\n%s", out)
	}
}
