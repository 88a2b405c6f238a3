package tls

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
	"github.com/phasedhq/phased/internal/h2/h2test"
	"golang.org/x/net/http2"
)

// TestHTTPSAndHTTP2: the TLS listener serves HTTPS, HTTP/2 by ALPN to a
// client that offers it and HTTP/1.1 to one that does not; requests of both
// are counted in the scoreboard and the access log like plain ones; curl, a
// client nobody here wrote, speaks HTTP/2 to it.
func TestHTTPSAndHTTP2(t *testing.T) {
	s := start(t, "", siteTLS, "")
	for _, h2 := range []bool{true, false} {
		resp, body, err := fetch(client(h2), "GET", "https://"+s.TLSAddr+"/hello.txt")
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[h2]
		if resp.StatusCode != 200 || string(body) != "hello\n" || resp.Proto != want {
			t.Fatalf("h2=%v: %s %s %q", h2, resp.Proto, resp.Status, body)
		}
	}
	{
		out, err := exec.Command(e2e.Program(t, "curl", "curl"), "-sk", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "https://"+s.TLSAddr+"/hello.txt").Output()
		if err != nil || string(out) != "2 200" {
			t.Fatalf("curl --http2: %q %v", out, err)
		}
	}
	// The plain listener still speaks plain HTTP/1.1.
	if code, body, err := e2e.Get(s.URL("/hello.txt")); code != 200 || body != "hello\n" {
		t.Fatalf("plain listener: %d %q %v", code, body, err)
	}
	// Both HTTPS requests and the plain one are in the access log, with
	// their protocol.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(s.Dir, "logs/access.log"))
		log := string(b)
		if strings.Contains(log, `"GET /hello.txt HTTP/2.0" 200`) && strings.Count(log, `"GET /hello.txt HTTP/1.1" 200`) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := s.Status(t)
	served := 0.0
	for _, c := range st["children"].([]any) {
		served += c.(map[string]any)["requests"].(float64)
	}
	if served < 4 {
		t.Fatalf("the scoreboard counts %v requests, want the HTTPS ones too", served)
	}
	// The certificate's expiry (90 days away) is a Prometheus gauge and a
	// row of the status page.
	_, metrics, _ := e2e.Get(s.URL("/metrics"))
	m := regexp.MustCompile(`(?m)^phased_tls_certificate_expiry_seconds\{file="[^"]*/site\.crt",listener="` +
		regexp.QuoteMeta(s.TLSAddr) + `",names="localhost"\} (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no expiry gauge for site.crt in /metrics:\n%s", metrics)
	}
	if left, err := strconv.ParseFloat(m[1], 64); err != nil || left > 90*86400 || left < 89*86400 {
		t.Errorf("phased_tls_certificate_expiry_seconds = %s, want about 90 days", m[1])
	}
	if _, page, _ := e2e.Get(s.URL("/server-status")); !regexp.MustCompile(`<table id="certificates">.*\n<tr><td>` +
		regexp.QuoteMeta(s.TLSAddr) + `</td><td>localhost</td><td>[^<]*/site\.crt</td><td>[^<]+</td><td class="n">(89\.9|90\.0)</td></tr>`).MatchString(page) {
		t.Errorf("the status page has no row for site.crt:\n%s", page)
	}
}

// TestSNI: with two certificates, each name gets its own, and a name that
// matches neither gets the first.
func TestSNI(t *testing.T) {
	var first, second fmt.Stringer
	s := start(t, "", "{certificates: [{cert: site.crt, key: site.key}, {cert: other.crt, key: other.key}]}", "", func(dir string) {
		second = genCert(t, dir, "other", "other.test")
	})
	first, _ = peerSerial(t, s.TLSAddr, "localhost", nil)
	for name, want := range map[string]fmt.Stringer{"localhost": first, "other.test": second, "unknown.test": first} {
		if got, _ := peerSerial(t, s.TLSAddr, name, nil); got.String() != want.String() {
			t.Errorf("SNI %s: certificate %s, want %s", name, got, want)
		}
	}
}

// TestRedirectAndH2C: a plain listener with redirect_https answers with a
// 301 to the same URL over HTTPS; one with h2c speaks HTTP/2 without TLS
// (curl --http2-prior-knowledge), with phased's HTTP/2 server.
func TestRedirectAndH2C(t *testing.T) {
	s := start(t, "redirect_https: \"8443\"", siteTLS, "")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	resp, err := c.Get(s.URL("/dir/page.html?x=1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	host, _, _ := strings.Cut(s.Addr, ":")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://"+host+":8443/dir/page.html?x=1" {
		t.Fatalf("redirect: %s Location %q", resp.Status, resp.Header.Get("Location"))
	}
	h := start(t, "h2c: true", siteTLS, "")
	out, err := exec.Command(e2e.Program(t, "curl", "curl"), "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", h.URL("/hello.txt")).Output()
	if err != nil || string(out) != "2 200" {
		t.Fatalf("curl --http2-prior-knowledge on h2c: %q %v", out, err)
	}
	// curl --http2 asks for h2c by Upgrade, which is not offered: HTTP/1.1.
	out, err = exec.Command(e2e.Program(t, "curl", "curl"), "-s", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", h.URL("/hello.txt")).Output()
	if err != nil || string(out) != "1.1 200" {
		t.Fatalf("curl --http2 (Upgrade: h2c) on h2c: %q %v", out, err)
	}
	// h2c is phased's HTTP/2 server too: a request with "TE: gzip" gets
	// RFC 9113's RST_STREAM PROTOCOL_ERROR (net/http's answered 400).
	_, fr := h2test.Dial(t, h.Addr, nil, 5*time.Second)
	h2test.Request(fr, 1, "GET", "/hello.txt", true, "te", "gzip")
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("h2c: no answer to TE: gzip: %v", err)
		}
		if _, ok := f.(*http2.HeadersFrame); ok {
			t.Fatal("h2c: TE: gzip was answered (net/http's HTTP/2 server), not reset")
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			if rst.StreamID != 1 || rst.ErrCode != http2.ErrCodeProtocol {
				t.Fatalf("h2c: RST_STREAM %d %v, want 1 PROTOCOL_ERROR", rst.StreamID, rst.ErrCode)
			}
			return
		}
	}
}

// TestBadCertificates: an unreadable file, a certificate that is not one
// and a key that does not match are errors naming the listener and the
// file, for -t and at start; on a graceful restart the old generation
// keeps serving with its old certificate.
func TestBadCertificates(t *testing.T) {
	dir := t.TempDir()
	genCert(t, dir, "a", "localhost")
	genCert(t, dir, "b", "localhost")
	os.WriteFile(filepath.Join(dir, "junk.crt"), []byte("not a certificate\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	addr := e2e.FreePort(t)
	for _, tt := range []struct{ name, certs, want string }{
		{"missing key", "{cert: a.crt, key: nothere.key}", "listen[0].tls.certificates[0] (" + addr + "): key: open " + filepath.Join(dir, "nothere.key") + ": no such file or directory"},
		{"mismatched key", "{cert: a.crt, key: b.key}", "listen[0].tls.certificates[0] (" + addr + "): the key in " + filepath.Join(dir, "b.key") + " does not match the certificate in " + filepath.Join(dir, "a.crt")},
		{"junk certificate", "{cert: junk.crt, key: a.key}", "listen[0].tls.certificates[0] (" + addr + "): cert " + filepath.Join(dir, "junk.crt")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, fmt.Sprintf("listen:\n  - {address: %q, tls: {certificates: [%s]}}\n", addr, tt.certs)))
			code, _, errOut := e2e.Run(t, dir, nil, "-f", conf, "-t")
			if code != 1 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("-t: %d %s\nwant %s", code, errOut, tt.want)
			}
			p := e2e.Start(t, dir, nil, "-f", conf)
			if c := p.WaitExit(t, 20*time.Second); c != 1 {
				t.Fatalf("start: exit %d\n%s", c, p.Log)
			}
			p.Log.Wait(t, tt.want, 1, 5*time.Second) // the last lines may come after the exit
		})
	}
	// A graceful restart onto a key that does not match fails, and the
	// old generation serves on with the old certificate.
	s := start(t, "", siteTLS, "")
	before, _ := peerSerial(t, s.TLSAddr, "localhost", nil)
	genCert(t, s.Dir, "fresh", "localhost")
	os.Rename(filepath.Join(s.Dir, "fresh.crt"), filepath.Join(s.Dir, "site.crt")) // the key stays the old one
	code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful")
	if code != 1 || !strings.Contains(errOut, "does not match the certificate in "+filepath.Join(s.Dir, "site.crt")) || !strings.Contains(errOut, "old generation keeps serving") {
		t.Fatalf("-k graceful onto a mismatched key: %d %s", code, errOut)
	}
	if after, _ := peerSerial(t, s.TLSAddr, "localhost", nil); after.String() != before.String() {
		t.Fatalf("after the failed restart the certificate is %s, want the old %s", after, before)
	}
}

// TestReloadAndResumption: -k graceful loads new certificates for the new
// generation; a keep-alive connection of the old one finishes its requests
// on the old one; and a TLS session made with one child resumes on any
// other, and across generations, because every child shares the master's
// ticket keys.
func TestReloadAndResumption(t *testing.T) {
	s := start(t, "", siteTLS, "mpm: {name: worker, start_servers: 3, threads_per_child: 25, min_spare_threads: 25, max_spare_threads: 100}\n")
	cache := tls.NewLRUClientSessionCache(4)
	old, resumed := peerSerial(t, s.TLSAddr, "localhost", cache)
	if resumed {
		t.Fatal("the first connection resumed")
	}
	children := map[int]bool{}
	for range 30 {
		if _, r := peerSerial(t, s.TLSAddr, "localhost", cache); !r {
			t.Fatal("a session did not resume on another connection")
		}
	}
	for _, c := range s.Status(t)["children"].([]any) {
		if c.(map[string]any)["requests"] != nil {
			children[int(c.(map[string]any)["pid"].(float64))] = true
		}
	}
	// A keep-alive connection from before the restart.
	keep := client(false)
	get := func(c *http.Client) {
		t.Helper()
		resp, err := c.Get("https://" + s.TLSAddr + "/hello.txt")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s", resp.Status)
		}
	}
	get(keep)
	genCert(t, s.Dir, "site", "localhost") // new certificate and key
	if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("graceful: %s", errOut)
	}
	get(keep) // the old connection still works
	if fresh, _ := peerSerial(t, s.TLSAddr, "localhost", nil); fresh.String() == old.String() {
		t.Fatal("the new generation serves the old certificate")
	}
	if _, resumed := peerSerial(t, s.TLSAddr, "localhost", cache); !resumed {
		t.Fatal("a session from the old generation did not resume on the new one")
	}

	// A binary upgrade: the new master takes the old one's ticket keys
	// over, and sessions made before it resume after it.
	if code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "upgrade"); code != 0 {
		t.Fatalf("-k upgrade: %d %s %s", code, out, errOut)
	}
	if code := s.WaitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("old master exit %d", code)
	}
	b, _ := os.ReadFile(filepath.Join(s.Dir, "run/phased.pid"))
	newPID, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	t.Cleanup(func() {
		e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "stop")
		e2e.WaitGone(t, []int{newPID}, 10*time.Second)
	})
	if newPID == s.PID() || !e2e.Alive(newPID) {
		t.Fatalf("the pid file holds %d after the upgrade (old %d)", newPID, s.PID())
	}
	for range 5 {
		if _, resumed := peerSerial(t, s.TLSAddr, "localhost", cache); !resumed {
			t.Fatal("a session made before the binary upgrade did not resume after it")
		}
	}
}

// TestRootOnlyKey: with user: nobody, the master (root) reads a key file
// only root may read, in a folder only root may enter, and the children,
// running as nobody, serve HTTPS with it: they never open the file.
func TestRootOnlyKey(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run children as nobody")
	}
	dir := e2e.OpenDir(t)
	addr := e2e.FreePort(t)
	e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
	os.Chmod(filepath.Join(dir, "public"), 0o755)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	secret := filepath.Join(dir, "secret")
	os.Mkdir(secret, 0o700)
	genCert(t, secret, "site", "localhost") // both files 0600, root's
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr,
		fmt.Sprintf("user: nobody\nlisten:\n  - {address: %q, tls: {certificates: [{cert: secret/site.crt, key: secret/site.key}]}}\n", addr)))
	p := e2e.Start(t, dir, nil, "-f", conf)
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	kids := e2e.Workers(p.PID())
	if len(kids) == 0 {
		t.Fatal("no children")
	}
	for _, k := range kids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", k))
		if !regexp.MustCompile(`(?m)^Uid:\s+65534\s`).Match(b) {
			t.Fatalf("child %d does not run as nobody:\n%s", k, b)
		}
	}
	for range 5 {
		resp, body, err := fetch(client(false), "GET", "https://"+addr+"/hello.txt")
		if err != nil {
			t.Fatalf("HTTPS from children running as nobody: %v\n%s", err, p.Log)
		}
		if resp.StatusCode != 200 || string(body) != "hello\n" {
			t.Fatalf("%s %q", resp.Status, body)
		}
	}
}

// TestHTTP2BeyondTheFastPath: over HTTP/2, what phased's HTTP/2 server does
// not answer inline runs the handlers as over HTTP/1.1: a file larger than
// the client's flow-control windows, eight of them at once on one
// connection, a range, a conditional request, the status page; and HEAD of
// a small file is answered with its length and no body.
func TestHTTP2BeyondTheFastPath(t *testing.T) {
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	s := start(t, "", siteTLS, "", func(dir string) { e2e.WriteFile(t, dir, "public/big.bin", string(big)) })
	cl := client(true)
	base := "https://" + s.TLSAddr
	// get fails the test (from the test's goroutine only); the eight
	// concurrent GETs below report with t.Errorf.
	get := func(path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		resp, b, err := fetch(cl, "GET", base+path, hdr...)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s: %s, want HTTP/2", path, resp.Proto)
		}
		return resp, b
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b, err := fetch(cl, "GET", base+"/big.bin")
			if err != nil || resp.ProtoMajor != 2 || resp.StatusCode != 200 || !bytes.Equal(b, big) {
				t.Errorf("big.bin: %v, %d bytes (equal: %v)", err, len(b), bytes.Equal(b, big))
				if resp != nil {
					t.Errorf("big.bin: %s %s", resp.Proto, resp.Status)
				}
			}
		}()
	}
	wg.Wait()
	resp, b := get("/big.bin", "Range", "bytes=1000-1999")
	if resp.StatusCode != 206 || !bytes.Equal(b, big[1000:2000]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(b))
	}
	etag := resp.Header.Get("ETag")
	if resp, _ := get("/big.bin", "If-None-Match", etag); etag == "" || resp.StatusCode != 304 {
		t.Fatalf("If-None-Match %q: %d", etag, resp.StatusCode)
	}
	if resp, b := get("/server-status?auto"); resp.StatusCode != 200 || !strings.Contains(string(b), "BusyWorkers:") {
		t.Fatalf("status page over HTTP/2: %d %q", resp.StatusCode, b)
	}
	hr, hb, err := fetch(cl, "HEAD", base+"/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	if hr.StatusCode != 200 || hr.ContentLength != 6 || len(hb) != 0 {
		t.Fatalf("HEAD over HTTP/2: %d, length %d, body %q", hr.StatusCode, hr.ContentLength, hb)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(filepath.Join(s.Dir, "logs/access.log"))
		if strings.Count(string(data), `"GET /big.bin HTTP/2.0" 200 3145728`) == 8 && strings.Contains(string(data), `"HEAD /hello.txt HTTP/2.0" 200`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log:\n%s", data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHTTP2StreamsTakeWorkerSlots: under the worker MPM an HTTP/2
// connection's requests each take a worker slot, as HTTP/1.1 requests do:
// six CGI requests of 0.8 s at once on one connection, to a child of three
// threads, run three at a time (three busy workers in `phased status`, the
// last answers after two rounds), and every one is answered and logged.
func TestHTTP2StreamsTakeWorkerSlots(t *testing.T) {
	s := start(t, "", siteTLS, "mpm: {name: worker, start_servers: 1, server_limit: 1, threads_per_child: 3, min_spare_threads: 1, max_spare_threads: 3, max_request_workers: 3}\n"+cgiApp,
		func(dir string) {
			script(t, dir, "nap.sh", "sleep 0.8\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslept\\n'\n")
		})
	cl := client(true)
	base := "https://" + s.TLSAddr
	if resp, _, err := fetch(cl, "GET", base+"/hello.txt"); err != nil || resp.ProtoMajor != 2 {
		t.Fatalf("HTTP/2: %v %v", resp, err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	var answered atomic.Int32
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b, err := fetch(cl, "GET", base+"/cgi-bin/nap.sh")
			if err != nil || resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(b) != "slept\n" {
				t.Errorf("nap.sh: %v %v %q", resp, err, b)
				return
			}
			answered.Add(1)
		}()
	}
	most := 0
	for time.Since(start) < 1200*time.Millisecond {
		most = max(most, int(s.Status(t)["busy_workers"].(float64)))
	}
	wg.Wait()
	took := time.Since(start)
	if most != 3 || took < 1500*time.Millisecond || answered.Load() != 6 {
		t.Fatalf("six requests on three threads: at most %d busy (want 3), all answered after %v (want two rounds of 0.8 s), %d answered", most, took, answered.Load())
	}
	t.Logf("at most %d busy, answered after %v", most, took)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		data, _ := os.ReadFile(filepath.Join(s.Dir, "logs/access.log"))
		if strings.Count(string(data), `"GET /cgi-bin/nap.sh HTTP/2.0" 200`) == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log:\n%s", data)
		}
	}
}

// TestHTTP2SlowBodyIsCut: an HTTP/2 request body that stops coming is cut
// as an HTTP/1.1 one is (timeouts.min_rate after half of read_header): the
// stream is reset, its slot freed, and the error log says why; the
// connection's other requests go on.
func TestHTTP2SlowBodyIsCut(t *testing.T) {
	s := start(t, "", siteTLS, "timeouts: {read_header: 2s, min_rate: 500}\n"+cgiApp,
		func(dir string) {
			script(t, dir, "count.sh", "n=$(wc -c)\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$n\"\n")
		})
	_, fr := h2test.Dial(t, s.TLSAddr, &tls.Config{InsecureSkipVerify: true}, 15*time.Second)
	start := time.Now()
	h2test.Request(fr, 1, "POST", "/cgi-bin/count.sh", false)
	fr.WriteData(1, false, []byte("ten bytes!"))
	var took time.Duration
	for took == 0 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no RST_STREAM for the stalled body: %v\n%s", err, s.Log)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == 1 {
			if took = time.Since(start); rst.ErrCode != http2.ErrCodeCancel || took < time.Second || took > 4*time.Second {
				t.Fatalf("RST_STREAM %v after %v, want CANCEL after the 1 s grace", rst.ErrCode, took)
			}
		}
	}
	s.WaitLog(t, "its request body was too slow", 1, 5*time.Second)
	// The connection goes on: a request with a whole body is answered.
	h2test.Request(fr, 3, "POST", "/cgi-bin/count.sh", false)
	fr.WriteData(3, true, []byte("12345"))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no answer on the same connection: %v", err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 3 {
			if got := strings.TrimSpace(string(d.Data())); got != "5" {
				t.Fatalf("answer %q", got)
			}
			break
		}
	}
	// No worker serves a request any more ("W"); the connection's own
	// slot is in keep-alive ("K"), as an open connection's is under the
	// worker MPM, until it closes.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		board := s.Status(t)["scoreboard"].(string)
		if !strings.ContainsAny(board, "WR") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a worker stays busy after the stream was cut: %s", board)
		}
	}
}

// TestH2CListenerBounds: a plain listener with h2c keeps the HTTP/1.1
// bounds for its HTTP/1.1 clients (a header dribbled below min_rate is
// cut once half of read_header is spent, not at read_header), and leaves
// them to the HTTP/2 server once a connection has sent the preface (a
// stream that lasts past read_header is answered, and the connection then
// lives on PINGs).
func TestH2CListenerBounds(t *testing.T) {
	s := start(t, "h2c: true", siteTLS, "timeouts: {read_header: 4s, min_rate: 500}\n"+cgiApp,
		func(dir string) {
			script(t, dir, "nap.sh", "sleep 5\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslept\\n'\n")
		})
	// HTTP/1.1, a byte every 300 ms: about 3 bytes a second.
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	cut := make(chan time.Duration, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, c)
		cut <- time.Since(start)
	}()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	var took time.Duration
	for took == 0 {
		select {
		case took = <-cut:
		case <-tick.C:
			c.Write([]byte("x"))
		}
	}
	if took < 1500*time.Millisecond || took > 3500*time.Millisecond {
		t.Fatalf("a header dribbled at 3 bytes a second on the h2c listener was cut after %v, want after the 2 s grace and before read_header's 4 s", took)
	}

	// h2c: a request that takes 5 s, past read_header, is answered.
	_, fr := h2test.Dial(t, s.Addr, nil, 15*time.Second)
	h2test.Request(fr, 1, "GET", "/cgi-bin/nap.sh", true)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("h2c: the 5 s request was not answered: %v", err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 {
			if string(d.Data()) != "slept\n" {
				t.Fatalf("h2c: %q", d.Data())
			}
			break
		}
	}
	// With no stream open, a PING every 300 ms for 3 s (far below
	// min_rate, were the HTTP/1.1 header bounds still on) is answered
	// each time: the connection is the HTTP/2 server's, whose idle bound
	// is timeouts.idle (5 s).
	for i := range 10 {
		time.Sleep(300 * time.Millisecond)
		if err := fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			t.Fatalf("h2c: PING %d: %v", i, err)
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("h2c: no answer to PING %d, %v after the stream: %v", i, time.Duration(i+1)*300*time.Millisecond, err)
			}
			if p, ok := f.(*http2.PingFrame); ok && p.IsAck() && p.Data[0] == byte(i) {
				break
			}
		}
	}
}
