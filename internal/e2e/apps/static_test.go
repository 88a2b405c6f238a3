package apps

import (
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// TestHTTPAppStaticFiles: the built binary in front of node with files in
// document_root (public/), as Passenger serves an app's public folder: a
// GET of a file there is served by phased (the fast path's small file, a
// large one, a Range of one, a folder's index.html) and never reaches the
// app; a POST to the same path, and every path that names no file there,
// does.
func TestHTTPAppStaticFiles(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 16<<10) // 256 KiB: past the file cache
	s := e2e.StartServer(t, oneEventChild(4)+nodeApp(t, nil, ""), func(dir string) {
		e2e.WriteFile(t, dir, "public/robots.txt", "User-agent: *\nDisallow:\n")
		e2e.WriteFile(t, dir, "public/assets/app.css", "body{}\n")
		e2e.WriteFile(t, dir, "public/docs/index.html", "<h1>docs</h1>\n")
		e2e.WriteFile(t, dir, "public/big.bin", big)
	})
	get := func(path string, header ...string) (*http.Response, string) {
		t.Helper()
		return getWith(t, s, path, header...)
	}
	for _, f := range []struct{ path, body string }{
		{"/robots.txt", "User-agent: *\nDisallow:\n"},
		{"/assets/app.css", "body{}\n"},
		{"/docs/", "<h1>docs</h1>\n"},
		{"/big.bin", big},
		{"/robots.txt", "User-agent: *\nDisallow:\n"}, // from the cache now
	} {
		if resp, body := get(f.path); resp.StatusCode != 200 || body != f.body || resp.Header.Get("Server") != "phased" {
			t.Fatalf("GET %s: %d, Server %q, %d bytes %.40q; want phased's 200 with the file", f.path, resp.StatusCode, resp.Header.Get("Server"), len(body), body)
		}
	}
	if resp, body := get("/big.bin", "Range", "bytes=16-31"); resp.StatusCode != 206 || body != "0123456789abcdef" {
		t.Fatalf("GET /big.bin with a Range: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("/echo?from=app"); resp.StatusCode != 200 || !strings.Contains(body, `"url":"/echo?from=app"`) {
		t.Fatalf("GET /echo, no file of that name: %d %.80q", resp.StatusCode, body)
	}
	resp, err := http.Post(s.URL("/robots.txt"), "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen := stats(t, s).Seen
	for _, p := range []string{"/assets/app.css", "/docs/", "/big.bin"} {
		if slices.Contains(seen, p) {
			t.Errorf("the app saw %s, a file phased serves: %v", p, seen)
		}
	}
	if n := slices.Index(seen, "/robots.txt"); n < 0 || slices.Index(seen[n+1:], "/robots.txt") >= 0 {
		t.Errorf("the app saw /robots.txt other than once (the POST): %v", seen)
	}
	if !slices.Contains(seen, "/echo") {
		t.Errorf("the app did not see /echo: %v", seen)
	}
}

// TestHTTPAppSendfile: the built binary in front of node with
// app.sendfile_paths: an answer naming a file below them in X-Sendfile is
// answered with the file (and a Range of it), the app told it may
// (X-Sendfile-Type) whatever the client says; a file outside them is 403
// and logged.
func TestHTTPAppSendfile(t *testing.T) {
	var dir string
	s := e2e.StartServer(t, oneEventChild(2)+nodeApp(t, nil, "  sendfile_paths: [downloads]\n"), func(d string) {
		dir = d
		e2e.WriteFile(t, d, "downloads/report.csv", "a,b\n1,2\n")
		e2e.WriteFile(t, d, "private.txt", "SECRET\n")
	})
	get := func(path string, header ...string) (*http.Response, string) {
		t.Helper()
		return getWith(t, s, path, append([]string{"X-Sendfile-Type", "X-Accel-Redirect"}, header...)...)
	}
	report := filepath.Join(dir, "downloads", "report.csv")
	resp, body := get("/sendfile?file=" + report)
	if resp.StatusCode != 200 || body != "a,b\n1,2\n" || resp.Header.Get("X-Told") != "X-Sendfile" || resp.Header.Get("X-Sendfile") != "" {
		t.Fatalf("X-Sendfile of a file below app.sendfile_paths: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if resp, body := get("/sendfile?file="+report, "Range", "bytes=4-6"); resp.StatusCode != 206 || body != "1,2" {
		t.Fatalf("a Range of it: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("/sendfile?file=" + filepath.Join(dir, "private.txt")); resp.StatusCode != 403 || strings.Contains(body, "SECRET") {
		t.Fatalf("X-Sendfile of a file outside: %d %q", resp.StatusCode, body)
	}
	s.WaitLog(t, "X-Sendfile: the file the app named cannot be sent", 1, 5*time.Second)
}

// getWith GETs path from s with header's name, value pairs set, and
// returns the response and its body.
func getWith(t *testing.T, s *e2e.Server, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL(path), nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp, string(b)
}
