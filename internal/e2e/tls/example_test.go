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
	openssl := e2e.Program(t, "openssl", "openssl")
	curl := e2e.Program(t, "curl", "curl")
	src := filepath.Join("..", "..", "..", "examples", "tls")
	readme, err := os.ReadFile(filepath.Join(src, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	// What a checkout has: no certificate (it is made, not committed), no
	// logs or run folder from an earlier run.
	for _, p := range []string{"tls", "run", "acme"} {
		os.RemoveAll(filepath.Join(dir, p))
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, l := range logs {
		os.Remove(l)
	}

	secure, plain := e2e.FreePort(t), e2e.FreePort(t)
	_, securePort, _ := net.SplitHostPort(secure)
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
	// run runs one of the README's commands (which must be in it) from the
	// example's folder, with the test's addresses, and returns its output.
	port := strings.NewReplacer("127.0.0.1:8443", secure, "127.0.0.1:8080", plain)
	run := func(line string, wantCode int) string {
		t.Helper()
		if !strings.Contains(string(readme), line) {
			t.Fatalf("examples/tls/README.md has no command %q", line)
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
		if code := cmd.ProcessState.ExitCode(); code != wantCode {
			t.Fatalf("%s: exit %d (%v), want %d\n%s", line, code, err, wantCode, out)
		}
		return string(out)
	}

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
