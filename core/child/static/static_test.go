package static

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// secret is the content of the file planted outside every test document
// root; no response may ever contain it.
const secret = "SECRET-OUTSIDE-ROOT"

// fixture is a document root with a sibling directory outside it.
type fixture struct {
	root    string // the document root
	outside string // a directory next to it, holding secret files
}

// newFixture lays out a document root:
//
//	hello.txt, page.html, style.css, app.js, data.json, img.png
//	noext (HTML without an extension), blob.unknownext (binary)
//	.htaccess, .htpasswd, .hidden, sub/.htaccess
//	sub/index.html, sub/inner.txt, empty/ (no index)
//	link-in.txt -> hello.txt, abs-in.txt -> <root>/hello.txt, dir-in -> sub
//	link-out.txt -> ../outside/secret.txt, dir-out -> ../outside
//	abs-out.txt -> <outside>/secret.txt, link-ht -> .htpasswd
func newFixture(t testing.TB) fixture {
	t.Helper()
	base := t.TempDir()
	fx := fixture{root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside")}
	files := map[string]string{
		"hello.txt":          "hello\n",
		"page.html":          "<!DOCTYPE html><title>page</title>",
		"style.css":          "body{}",
		"app.js":             "console.log(1)",
		"data.json":          `{"a":1}`,
		"img.png":            "\x89PNG\r\n\x1a\n0000",
		"noext":              "<html><body>sniff me</body></html>",
		"blob.unknownext":    "\x00\x01\x02\x03binary",
		".htaccess":          "Require all denied",
		".htpasswd":          "user:hash",
		".hidden":            "dotfile",
		"sub/.htaccess":      "Require all denied",
		"sub/index.html":     "<h1>sub index</h1>",
		"sub/inner.txt":      "inner",
		"empty/.keep-listed": "",
	}
	for name, body := range files {
		writeFile(t, filepath.Join(fx.root, name), body)
	}
	writeFile(t, filepath.Join(fx.outside, "secret.txt"), secret)
	writeFile(t, filepath.Join(fx.outside, "index.html"), secret)
	links := map[string]string{
		"link-in.txt":  "hello.txt",
		"abs-in.txt":   filepath.Join(fx.root, "hello.txt"),
		"dir-in":       "sub",
		"link-out.txt": "../outside/secret.txt",
		"dir-out":      "../outside",
		"abs-out.txt":  filepath.Join(fx.outside, "secret.txt"),
		"link-ht":      ".htpasswd",
		"dangling":     "does-not-exist",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(fx.root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

func writeFile(t testing.TB, name, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// do serves one request through h. target is set as the already decoded
// URL path, as net/http hands it to a handler.
func do(h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/", nil)
	if u, err := url.ParseRequestURI(target); err == nil {
		r.URL = u
		r.RequestURI = target
	} else {
		r.URL.Path = target
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// bothPaths runs test three times: with the openat2 fast path, as on a
// kernel without openat2, where every file goes through the path that
// resolves symlinks and checks where the descriptor landed, and with the
// file cache off (the first two have it on, as by default).
func bothPaths(t *testing.T, test func(t *testing.T, newH func(Options) *handler)) {
	for _, v := range []struct {
		name        string
		fast, cache bool
	}{{"openat2", true, true}, {"no openat2", false, true}, {"no cache", true, false}} {
		t.Run(v.name, func(t *testing.T) {
			test(t, func(o Options) *handler {
				if !v.cache {
					o.MaxCachedFile = -1
				}
				h := New(o).(*handler)
				h.noOpenat2.Store(!v.fast)
				return h
			})
		})
	}
}

// withCache runs test with the file cache on and off.
func withCache(t *testing.T, test func(t *testing.T, o Options)) {
	t.Run("cache", func(t *testing.T) { test(t, Options{}) })
	t.Run("no cache", func(t *testing.T) { test(t, Options{MaxCachedFile: -1}) })
}

func TestServeFiles(t *testing.T) { bothPaths(t, testServeFiles) }

func testServeFiles(t *testing.T, newH func(Options) *handler) {
	fx := newFixture(t)
	h := newH(Options{Root: fx.root})
	tests := []struct {
		path, body, ctype string
	}{
		{"/hello.txt", "hello\n", "text/plain; charset=utf-8"},
		{"/page.html", "<!DOCTYPE html><title>page</title>", "text/html; charset=utf-8"},
		{"/style.css", "body{}", "text/css; charset=utf-8"},
		{"/app.js", "console.log(1)", mime.TypeByExtension(".js")},
		{"/data.json", `{"a":1}`, "application/json"},
		{"/img.png", "\x89PNG\r\n\x1a\n0000", "image/png"},
		{"/noext", "<html><body>sniff me</body></html>", "text/html; charset=utf-8"},
		{"/blob.unknownext", "\x00\x01\x02\x03binary", "application/octet-stream"},
		{"/.hidden", "dotfile", "text/plain; charset=utf-8"},
		{"/sub/inner.txt", "inner", "text/plain; charset=utf-8"},
		{"//sub//inner.txt", "inner", "text/plain; charset=utf-8"},
		{"/link-in.txt", "hello\n", "text/plain; charset=utf-8"},
		{"/abs-in.txt", "hello\n", "text/plain; charset=utf-8"},
		{"/dir-in/inner.txt", "inner", "text/plain; charset=utf-8"},
		{"/dir-in/", "<h1>sub index</h1>", "text/html; charset=utf-8"},
		{"/sub/", "<h1>sub index</h1>", "text/html; charset=utf-8"},
		{"/sub/index.html", "<h1>sub index</h1>", "text/html; charset=utf-8"},
		{"/sub/inner.txt?q=1", "inner", "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := do(h, "GET", tt.path)
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %q", w.Code, w.Body)
			}
			if got := w.Body.String(); got != tt.body {
				t.Errorf("body = %q, want %q", got, tt.body)
			}
			hdr := w.Header()
			if got := hdr.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tt.ctype)
			}
			if got := hdr.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if got := hdr.Get("Server"); got != "phased" {
				t.Errorf("Server = %q", got)
			}
			if got := hdr.Get("Content-Length"); got != fmt.Sprint(len(tt.body)) {
				t.Errorf("Content-Length = %q, want %d", got, len(tt.body))
			}
			if got := hdr.Get("Accept-Ranges"); got != "bytes" {
				t.Errorf("Accept-Ranges = %q", got)
			}
			if et := hdr.Get("Etag"); !strings.HasPrefix(et, `"`) || !strings.HasSuffix(et, `"`) || len(et) < 5 {
				t.Errorf("ETag = %q, want a strong validator", et)
			}
			if _, err := http.ParseTime(hdr.Get("Last-Modified")); err != nil {
				t.Errorf("Last-Modified: %v", err)
			}
		})
	}
}

func TestServerName(t *testing.T) {
	fx := newFixture(t)
	h := New(Options{Root: fx.root, ServerName: "Apache <x>"})
	for _, p := range []string{"/hello.txt", "/nope", "/.htaccess"} {
		w := do(h, "GET", p)
		if got := w.Header().Get("Server"); got != "Apache <x>" {
			t.Errorf("%s: Server = %q", p, got)
		}
	}
	if body := do(h, "GET", "/nope").Body.String(); !strings.Contains(body, "Apache &lt;x&gt;") {
		t.Errorf("404 page does not name the escaped server: %q", body)
	}
}

func TestMethods(t *testing.T) {
	fx := newFixture(t)
	h := New(Options{Root: fx.root})
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "PROPFIND", "BREW"} {
		t.Run(m, func(t *testing.T) {
			w := do(h, m, "/hello.txt")
			if w.Code != http.StatusMethodNotAllowed {
				t.Fatalf("status = %d, want 405", w.Code)
			}
			if got := w.Header().Get("Allow"); got != "GET, HEAD" {
				t.Errorf("Allow = %q, want %q", got, "GET, HEAD")
			}
		})
	}
	t.Run("HEAD", func(t *testing.T) {
		w := do(h, "HEAD", "/hello.txt")
		if w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Fatalf("status %d, body %q; want 200 and no body", w.Code, w.Body)
		}
		if got := w.Header().Get("Content-Length"); got != "6" {
			t.Errorf("Content-Length = %q, want 6", got)
		}
	})
	t.Run("HEAD 404", func(t *testing.T) {
		w := do(h, "HEAD", "/nope")
		if w.Code != http.StatusNotFound || w.Body.Len() != 0 {
			t.Fatalf("status %d, body %q; want 404 and no body", w.Code, w.Body)
		}
	})
	t.Run("OPTIONS", func(t *testing.T) {
		for _, p := range []string{"/hello.txt", "*"} {
			w := do(h, "OPTIONS", p)
			if w.Code != http.StatusNoContent {
				t.Fatalf("%s: status = %d, want 204", p, w.Code)
			}
			if got := w.Header().Get("Allow"); got != "GET, HEAD, OPTIONS" {
				t.Errorf("%s: Allow = %q", p, got)
			}
		}
	})
}

func TestRange(t *testing.T) { withCache(t, testRange) }

func testRange(t *testing.T, o Options) {
	fx := newFixture(t)
	writeFile(t, filepath.Join(fx.root, "digits.txt"), "0123456789")
	o.Root = fx.root
	h := New(o)
	etag := do(h, "GET", "/digits.txt").Header().Get("Etag")
	lastMod := do(h, "GET", "/digits.txt").Header().Get("Last-Modified")

	single := []struct {
		name, rng, ifRange string
		code               int
		body, contentRange string
	}{
		{"first bytes", "bytes=0-4", "", 206, "01234", "bytes 0-4/10"},
		{"open end", "bytes=7-", "", 206, "789", "bytes 7-9/10"},
		{"suffix", "bytes=-3", "", 206, "789", "bytes 7-9/10"},
		{"past end clipped", "bytes=8-100", "", 206, "89", "bytes 8-9/10"},
		{"unsatisfiable", "bytes=10-20", "", 416, "", "bytes */10"},
		{"if-range etag match", "bytes=0-1", etag, 206, "01", "bytes 0-1/10"},
		{"if-range etag mismatch", "bytes=0-1", `"other"`, 200, "0123456789", ""},
		{"if-range date match", "bytes=2-3", lastMod, 206, "23", "bytes 2-3/10"},
		{"if-range date old", "bytes=2-3", "Mon, 02 Jan 2006 15:04:05 GMT", 200, "0123456789", ""},
		// RFC 9110 14.1.1: a suffix of zero bytes is unsatisfiable.
		{"empty suffix", "bytes=-0", "", 416, "", "bytes */10"},
		{"empty suffix and a range", "bytes=-0,1-2", "", 206, "12", "bytes 1-2/10"},
		{"unsatisfiable and a range", "bytes=10-20,1-2", "", 206, "12", "bytes 1-2/10"},
		// As Apache: overlapping and adjacent ranges merge, one range that
		// asks for everything wins, and what cannot be parsed is ignored.
		{"overlapping", "bytes=0-3,2-5", "", 206, "012345", "bytes 0-5/10"},
		{"adjacent", "bytes=0-1,2-3", "", 206, "0123", "bytes 0-3/10"},
		{"a range inside another", "bytes=1-8, 3-4", "", 206, "12345678", "bytes 1-8/10"},
		{"zero to the end", "bytes=5-6,0-", "", 206, "0123456789", "bytes 0-9/10"},
		{"more than the file", "bytes=0-5,7-9,2-8", "", 200, "0123456789", ""},
		{"1,000 one-byte ranges", "bytes=" + strings.Repeat("0-0,", 999) + "0-0", "", 200, "0123456789", ""},
		{"not bytes", "items=0-1", "", 200, "0123456789", ""},
		{"garbage", "bytes=1-x", "", 200, "0123456789", ""},
		{"backwards", "bytes=5-1", "", 200, "0123456789", ""},
	}
	for _, tt := range single {
		t.Run(tt.name, func(t *testing.T) {
			hdr := []string{"Range", tt.rng}
			if tt.ifRange != "" {
				hdr = append(hdr, "If-Range", tt.ifRange)
			}
			w := do(h, "GET", "/digits.txt", hdr...)
			if w.Code != tt.code {
				t.Fatalf("status = %d, want %d", w.Code, tt.code)
			}
			if tt.code != 416 && w.Body.String() != tt.body {
				t.Errorf("body = %q, want %q", w.Body, tt.body)
			}
			if got := w.Header().Get("Content-Range"); got != tt.contentRange {
				t.Errorf("Content-Range = %q, want %q", got, tt.contentRange)
			}
		})
	}

	t.Run("multi", func(t *testing.T) {
		w := do(h, "GET", "/digits.txt", "Range", "bytes=0-1,5-6")
		if w.Code != http.StatusPartialContent {
			t.Fatalf("status = %d, want 206", w.Code)
		}
		mt, params, err := mime.ParseMediaType(w.Header().Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			t.Fatalf("Content-Type = %q (%v)", w.Header().Get("Content-Type"), err)
		}
		mr := multipart.NewReader(w.Body, params["boundary"])
		want := []struct{ body, rng string }{{"01", "bytes 0-1/10"}, {"56", "bytes 5-6/10"}}
		for i, wp := range want {
			part, err := mr.NextPart()
			if err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
			body, _ := io.ReadAll(part)
			if string(body) != wp.body || part.Header.Get("Content-Range") != wp.rng {
				t.Errorf("part %d = %q %q, want %q %q", i, body, part.Header.Get("Content-Range"), wp.body, wp.rng)
			}
			if got := part.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
				t.Errorf("part %d Content-Type = %q", i, got)
			}
		}
		if _, err := mr.NextPart(); err != io.EOF {
			t.Errorf("after last part: %v, want EOF", err)
		}
	})
}

func TestConditional(t *testing.T) { withCache(t, testConditional) }

func testConditional(t *testing.T, o Options) {
	fx := newFixture(t)
	name := filepath.Join(fx.root, "hello.txt")
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if err := os.Chtimes(name, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	o.Root = fx.root
	h := New(o).(*handler)
	etag := do(h, "GET", "/hello.txt").Header().Get("Etag")
	if strings.HasPrefix(etag, "W/") {
		t.Fatalf("ETag %q is weak", etag)
	}
	before := mtime.Add(-time.Hour).Format(http.TimeFormat)
	at := mtime.Format(http.TimeFormat)
	after := mtime.Add(time.Hour).Format(http.TimeFormat)

	tests := []struct {
		name   string
		method string
		header []string
		code   int
	}{
		{"if-none-match hit", "GET", []string{"If-None-Match", etag}, 304},
		{"if-none-match hit HEAD", "HEAD", []string{"If-None-Match", etag}, 304},
		{"if-none-match list", "GET", []string{"If-None-Match", `"a", ` + etag}, 304},
		{"if-none-match weak compare", "GET", []string{"If-None-Match", "W/" + etag}, 304},
		{"if-none-match star", "GET", []string{"If-None-Match", "*"}, 304},
		{"if-none-match miss", "GET", []string{"If-None-Match", `"nope"`}, 200},
		{"if-match hit", "GET", []string{"If-Match", etag}, 200},
		{"if-match star", "GET", []string{"If-Match", "*"}, 200},
		{"if-match miss", "GET", []string{"If-Match", `"nope"`}, 412},
		{"if-match weak never matches", "GET", []string{"If-Match", "W/" + etag}, 412},
		{"if-modified-since equal", "GET", []string{"If-Modified-Since", at}, 304},
		{"if-modified-since later", "GET", []string{"If-Modified-Since", after}, 304},
		{"if-modified-since earlier", "GET", []string{"If-Modified-Since", before}, 200},
		{"if-none-match wins over if-modified-since", "GET", []string{"If-None-Match", `"nope"`, "If-Modified-Since", after}, 200},
		{"if-unmodified-since earlier", "GET", []string{"If-Unmodified-Since", before}, 412},
		{"if-unmodified-since equal", "GET", []string{"If-Unmodified-Since", at}, 200},
		{"if-match wins over if-unmodified-since", "GET", []string{"If-Match", etag, "If-Unmodified-Since", before}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(h, tt.method, "/hello.txt", tt.header...)
			if w.Code != tt.code {
				t.Fatalf("status = %d, want %d", w.Code, tt.code)
			}
			if tt.code == 304 {
				if w.Body.Len() != 0 {
					t.Errorf("304 with body %q", w.Body)
				}
				if got := w.Header().Get("Etag"); got != etag {
					t.Errorf("304 ETag = %q, want %q", got, etag)
				}
			}
		})
	}

	t.Run("etag follows content", func(t *testing.T) {
		if h.cache != nil {
			h.cache.validity = 0 // TestCacheRevalidates waits out the real one
		}
		if err := os.WriteFile(name, []byte("hello, world\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		sized := do(h, "GET", "/hello.txt").Header().Get("Etag")
		if sized == etag {
			t.Errorf("ETag %q unchanged after the size changed", sized)
		}
		if err := os.Chtimes(name, after2(mtime), after2(mtime)); err != nil {
			t.Fatal(err)
		}
		if got := do(h, "GET", "/hello.txt").Header().Get("Etag"); got == sized {
			t.Errorf("ETag %q unchanged after the mtime changed", got)
		}
		if w := do(h, "GET", "/hello.txt", "If-None-Match", etag); w.Code != 200 {
			t.Errorf("stale If-None-Match: status %d, want 200", w.Code)
		}
	})
}

func after2(t time.Time) time.Time { return t.Add(2 * time.Second) }

func TestTraversal(t *testing.T) { bothPaths(t, testTraversal) }

func testTraversal(t *testing.T, newH func(Options) *handler) {
	fx := newFixture(t)
	// A file that the classic traversals would reach.
	writeFile(t, filepath.Join(filepath.Dir(fx.root), "secret.txt"), secret)
	h := newH(Options{Root: fx.root, DirectoryListing: true})
	tests := []struct {
		path string
		code int
	}{
		{"/../secret.txt", 404},
		{"/../outside/secret.txt", 404},
		{"/sub/../../secret.txt", 404},
		{"/sub/../hello.txt", 404},
		{"/./hello.txt", 404},
		{"/..", 404},
		{"/sub/..", 404},
		{"/%2e%2e/secret.txt", 404},
		{"/%2E%2E/%2e%2e/%2e%2e/etc/passwd", 404},
		{"/sub/%2e%2e/%2e%2e/secret.txt", 404},
		{"/..%2fsecret.txt", 404},
		{"/sub%2f..%2f..%2fsecret.txt", 404},
		{"/sub%2Finner.txt", 404},
		{"/..\\secret.txt", 404},
		{"/sub\\..\\..\\secret.txt", 404},
		{"/%5c..%5csecret.txt", 404},
		{"/hello.txt%00.html", 400},
		{"/%00", 400},
		{"/hello.txt\x00", 400},
		{"/link-out.txt", 404},
		{"/abs-out.txt", 404},
		{"/dir-out/secret.txt", 404},
		{"/dir-out/", 404},
		{"/dir-out", 404},
		{"/dangling", 404},
		{"relative.txt", 400},
		{"/" + strings.Repeat("a", 5000), 404},
		{"/" + strings.Repeat("a/", 3000), 404},
		{"/hello.txt/", 404},
		{"/hello.txt/x", 404},
	}
	for _, tt := range tests {
		t.Run(tt.path[:min(len(tt.path), 40)], func(t *testing.T) {
			w := do(h, "GET", tt.path)
			if w.Code != tt.code {
				t.Errorf("status = %d, want %d", w.Code, tt.code)
			}
			if strings.Contains(w.Body.String(), secret) {
				t.Errorf("served the secret")
			}
		})
	}
}

// TestTraversalOverTCP sends raw request lines to a real server, so the
// paths go through net/http's own parsing and decoding first.
func TestTraversalOverTCP(t *testing.T) {
	fx := newFixture(t)
	writeFile(t, filepath.Join(filepath.Dir(fx.root), "secret.txt"), secret)
	srv := httptest.NewServer(New(Options{Root: fx.root}))
	t.Cleanup(srv.Close)
	tests := []struct {
		target string
		code   int
	}{
		{"/hello.txt", 200},
		{"/../secret.txt", 404},
		{"/%2e%2e/secret.txt", 404},
		{"/%2e%2e%2fsecret.txt", 404},
		{"/.%2e/outside/secret.txt", 404},
		{"/sub/..%5c..%5csecret.txt", 404},
		{"/hello.txt%00", 400},
		{"/link-out.txt", 404},
		{"/dir-out/secret.txt", 404},
		{"/.htpasswd", 403},
		{"/%2ehtpasswd", 403},
		{"http://example.com/../secret.txt", 404},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			code, body := rawGet(t, srv.Listener.Addr().String(), tt.target)
			if code != tt.code {
				t.Errorf("status = %d, want %d", code, tt.code)
			}
			if strings.Contains(body, secret) {
				t.Errorf("served the secret")
			}
		})
	}
}

// rawGet sends "GET target HTTP/1.1" as is and returns the status and body.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestHtFiles(t *testing.T) { bothPaths(t, testHtFiles) }

func testHtFiles(t *testing.T, newH func(Options) *handler) {
	fx := newFixture(t)
	h := newH(Options{Root: fx.root})
	tests := []struct {
		path string
		code int
	}{
		{"/.htaccess", 403},
		{"/.htpasswd", 403},
		{"/.HTACCESS", 403},
		{"/.ht", 403},
		{"/.htnothing-here", 403},
		{"/sub/.htaccess", 403},
		{"/.htdir/file.txt", 403},
		{"/link-ht", 403},
		{"/.hidden", 200},
		{"/.h", 404},
		{"/x.htaccess", 404},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := do(h, "GET", tt.path)
			if w.Code != tt.code {
				t.Errorf("status = %d, want %d", w.Code, tt.code)
			}
			if tt.code == 403 && strings.Contains(w.Body.String(), "Require") {
				t.Errorf("served the file")
			}
		})
	}
}

func TestDirectories(t *testing.T) { bothPaths(t, testDirectories) }

func testDirectories(t *testing.T, newH func(Options) *handler) {
	fx := newFixture(t)
	writeFile(t, filepath.Join(fx.root, "alt", "default.htm"), "default")
	writeFile(t, filepath.Join(fx.root, "alt", "index.html"), "index")
	noListing := newH(Options{Root: fx.root})
	listing := newH(Options{Root: fx.root, DirectoryListing: true})
	custom := newH(Options{Root: fx.root, Index: []string{"missing.html", "../outside/index.html", "default.htm"}})
	none := newH(Options{Root: fx.root, Index: []string{}})

	t.Run("redirect", func(t *testing.T) {
		for _, tt := range []struct{ target, want string }{
			{"/sub", "/sub/"},
			{"/sub?a=1&b=%20", "/sub/?a=1&b=%20"},
			{"/dir-in", "/dir-in/"},
			{"//sub", "//sub/"},
			{"/sub/..%3a", ""}, // not a directory, no redirect
		} {
			w := do(noListing, "GET", tt.target)
			if tt.want == "" {
				if w.Code == http.StatusMovedPermanently {
					t.Errorf("%s: redirected", tt.target)
				}
				continue
			}
			if w.Code != http.StatusMovedPermanently {
				t.Fatalf("%s: status = %d, want 301", tt.target, w.Code)
			}
			loc, err := url.Parse(w.Header().Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			base, _ := url.Parse("http://example.com" + tt.target)
			got := base.ResolveReference(loc)
			if got.Host != "example.com" || got.RequestURI() != tt.want {
				t.Errorf("%s: Location %q resolves to %s, want http://example.com%s", tt.target, loc, got, tt.want)
			}
		}
	})
	t.Run("index", func(t *testing.T) {
		if got := do(noListing, "GET", "/alt/").Body.String(); got != "index" {
			t.Errorf("default index: %q", got)
		}
		if got := do(custom, "GET", "/alt/").Body.String(); got != "default" {
			t.Errorf("custom index: %q", got)
		}
		if w := do(custom, "GET", "/sub/"); w.Code != 403 {
			t.Errorf("custom index missing: status %d, want 403", w.Code)
		}
		if w := do(none, "GET", "/alt/"); w.Code != 403 {
			t.Errorf("no index names: status %d, want 403", w.Code)
		}
	})
	t.Run("forbidden without listing", func(t *testing.T) {
		for _, p := range []string{"/", "/empty/"} {
			w := do(noListing, "GET", p)
			if w.Code != http.StatusForbidden {
				t.Errorf("%s: status = %d, want 403", p, w.Code)
			}
		}
	})
	t.Run("listing", func(t *testing.T) {
		writeFile(t, filepath.Join(fx.root, "list", `<b>&"x'.txt`), "")
		writeFile(t, filepath.Join(fx.root, "list", "b.txt"), "")
		writeFile(t, filepath.Join(fx.root, "list", "a:colon"), "")
		writeFile(t, filepath.Join(fx.root, "list", "zdir", "f"), "")
		writeFile(t, filepath.Join(fx.root, "list", ".htaccess"), "")
		writeFile(t, filepath.Join(fx.root, "list", ".dot"), "")
		must(t, os.Symlink("../sub", filepath.Join(fx.root, "list", "adirlink")))
		must(t, os.Symlink("../../outside", filepath.Join(fx.root, "list", "escape")))

		w := do(listing, "GET", "/list/")
		if w.Code != 200 {
			t.Fatalf("status = %d, want 200", w.Code)
		}
		if got := w.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
			t.Errorf("Content-Type = %q", got)
		}
		body := w.Body.String()
		wantOrder := []string{
			`<a href="../">../</a>`,
			`<a href=".dot">.dot</a>`,
			`<a href="%3Cb%3E&amp;%22x%27.txt">&lt;b&gt;&amp;&#34;x&#39;.txt</a>`,
			`<a href="./a:colon">a:colon</a>`,
			`<a href="adirlink/">adirlink/</a>`,
			`<a href="b.txt">b.txt</a>`,
			`<a href="zdir/">zdir/</a>`,
		}
		last := -1
		for _, s := range wantOrder {
			i := strings.Index(body, s)
			if i < 0 {
				t.Errorf("listing lacks %s:\n%s", s, body)
				continue
			}
			if i < last {
				t.Errorf("%s out of order", s)
			}
			last = i
		}
		for _, s := range []string{".htaccess", "escape", "<b>"} {
			if strings.Contains(body, s) {
				t.Errorf("listing shows %q:\n%s", s, body)
			}
		}
		if strings.Contains(do(listing, "GET", "/").Body.String(), `href="../"`) {
			t.Errorf("root listing links to its parent")
		}
		if w := do(listing, "HEAD", "/list/"); w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != fmt.Sprint(len(body)) {
			t.Errorf("HEAD listing: %d, %d bytes, Content-Length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestNotFound(t *testing.T) {
	fx := newFixture(t)
	h := New(Options{Root: fx.root})
	w := do(h, "GET", "/nope.txt")
	if w.Code != 404 {
		t.Fatalf("status = %d", w.Code)
	}
	if got := w.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	body := w.Body.String()
	if !strings.Contains(body, "<title>404 Not Found</title>") || len(body) > 512 {
		t.Errorf("body = %q", body)
	}
	if got := w.Header().Get("Content-Length"); got != fmt.Sprint(len(body)) {
		t.Errorf("Content-Length = %q, body is %d bytes", got, len(body))
	}
}

func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file; TestStatusFor covers the mapping")
	}
	fx := newFixture(t)
	name := filepath.Join(fx.root, "locked.txt")
	writeFile(t, name, "locked")
	must(t, os.Chmod(name, 0))
	dir := filepath.Join(fx.root, "lockeddir")
	writeFile(t, filepath.Join(dir, "f.txt"), "f")
	must(t, os.Chmod(dir, 0))
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	h := New(Options{Root: fx.root})
	for _, p := range []string{"/locked.txt", "/lockeddir/", "/lockeddir/f.txt"} {
		if w := do(h, "GET", p); w.Code != http.StatusForbidden {
			t.Errorf("%s: status = %d, want 403", p, w.Code)
		}
	}
}

func TestStatusFor(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{fs.ErrNotExist, 404},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, 404},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.ENOTDIR}, 404},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.ENAMETOOLONG}, 404},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.ELOOP}, 404},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, 403},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EPERM}, 403},
		{syscall.ENXIO, 403},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EMFILE}, 503},
		{&fs.PathError{Op: "read", Path: "x", Err: syscall.EIO}, 500},
		{errors.New("other"), 500},
	}
	for _, tt := range tests {
		if got := statusFor(tt.err); got != tt.code {
			t.Errorf("statusFor(%v) = %d, want %d", tt.err, got, tt.code)
		}
	}
}

// TestSpecialFiles checks that a FIFO, a socket or a device in the document
// root is refused without hanging or failing the request.
func TestSpecialFiles(t *testing.T) {
	fx := newFixture(t)
	if err := syscall.Mkfifo(filepath.Join(fx.root, "pipe"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	sock := filepath.Join(fx.root, "sock")
	if len(sock) < 100 {
		l, err := net.Listen("unix", sock)
		must(t, err)
		t.Cleanup(func() { l.Close() })
	}
	must(t, os.Symlink("/dev/null", filepath.Join(fx.root, "devnull")))
	h := New(Options{Root: fx.root, DirectoryListing: true})
	for _, tt := range []struct {
		path string
		code int
	}{
		{"/pipe", 403},
		{"/sock", 403},
		{"/devnull", 404}, // outside the root
	} {
		done := make(chan int, 1)
		go func() { done <- do(h, "GET", tt.path).Code }()
		select {
		case code := <-done:
			if code != tt.code && !(tt.path == "/sock" && len(sock) >= 100) {
				t.Errorf("%s: status = %d, want %d", tt.path, code, tt.code)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: request hangs", tt.path)
		}
	}
	body := do(h, "GET", "/").Body.String()
	for _, s := range []string{"pipe", "sock", "devnull"} {
		if strings.Contains(body, s) {
			t.Errorf("listing shows %s", s)
		}
	}
}

// TestFileRawConn checks the handover to sendfile: the descriptor's kernel
// offset is moved to the read offset first, and the read offset follows
// whatever sendfile read.
func TestFileRawConn(t *testing.T) {
	fx := newFixture(t)
	f, err := openFile(filepath.Join(fx.root, "hello.txt"))
	must(t, err)
	defer f.Close()
	buf := make([]byte, 2)
	if n, err := f.Read(buf); n != 2 || string(buf) != "he" || err != nil {
		t.Fatalf("Read = %d %q %v", n, buf, err)
	}
	rc, err := f.SyscallConn()
	must(t, err)
	must(t, rc.Control(func(fd uintptr) {
		if int(fd) != f.fd {
			t.Errorf("Control fd %d, want %d", fd, f.fd)
		}
	}))
	// Stand in for sendfile: read two bytes at the kernel's offset.
	must(t, rc.Read(func(fd uintptr) bool {
		n, err := syscall.Read(int(fd), buf)
		if n != 2 || string(buf) != "ll" || err != nil {
			t.Errorf("read at kernel offset = %d %q %v, want \"ll\"", n, buf, err)
		}
		return true
	}))
	if off, err := f.Seek(0, io.SeekCurrent); off != 4 || err != nil {
		t.Errorf("offset after the handover = %d, %v; want 4", off, err)
	}
	if b, err := io.ReadAll(f); string(b) != "o\n" || err != nil {
		t.Errorf("rest = %q, %v", b, err)
	}
	if err := rc.Write(func(uintptr) bool { return true }); err == nil {
		t.Errorf("Write succeeded on a read-only file")
	}
}

// TestFileAfterClose checks that a closed file never touches its old
// descriptor number, which the kernel may have handed to another request.
func TestFileAfterClose(t *testing.T) {
	fx := newFixture(t)
	f, err := openFile(filepath.Join(fx.root, "hello.txt"))
	must(t, err)
	if n, err := f.Seek(0, io.SeekEnd); n != 6 || err != nil {
		t.Fatalf("Seek end = %d, %v", n, err)
	}
	if n, err := f.Seek(-2, io.SeekCurrent); n != 4 || err != nil {
		t.Fatalf("Seek current = %d, %v", n, err)
	}
	b, err := io.ReadAll(f)
	if string(b) != "o\n" || err != nil {
		t.Fatalf("read %q, %v", b, err)
	}
	if _, err := f.Seek(-1, io.SeekStart); err == nil {
		t.Errorf("negative seek succeeded")
	}
	must(t, f.Close())
	must(t, f.Close())
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if _, err := f.Seek(0, io.SeekStart); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Seek after Close: %v", err)
	}
	rc, _ := f.SyscallConn()
	if err := rc.Read(func(uintptr) bool { t.Error("callback after Close"); return true }); !errors.Is(err, os.ErrClosed) {
		t.Errorf("RawConn.Read after Close: %v", err)
	}
}

func TestWelcome(t *testing.T) {
	base := t.TempDir()
	missing := filepath.Join(base, "public")
	notDir := filepath.Join(base, "file")
	writeFile(t, notDir, "x")

	for _, tt := range []struct{ name, root, mention string }{
		{"missing", missing, missing},
		{"not a directory", notDir, notDir},
		{"not configured", "", "No <code>document_root</code> is configured"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := New(Options{Root: tt.root})
			for _, p := range []string{"/", "/index.html", ""} {
				w := do(h, "GET", p)
				if w.Code != 200 {
					t.Fatalf("%q: status = %d, want 200", p, w.Code)
				}
				body := w.Body.String()
				if !strings.Contains(body, "<title>phased is running</title>") || !strings.Contains(body, tt.mention) {
					t.Errorf("%q: welcome page lacks title or %q:\n%s", p, tt.mention, body)
				}
				if got := w.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
					t.Errorf("Content-Type = %q", got)
				}
			}
			if w := do(h, "HEAD", "/"); w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "" {
				t.Errorf("HEAD /: %d, body %d bytes", w.Code, w.Body.Len())
			}
			for _, p := range []string{"/x", "/index.htm", "/sub/"} {
				if w := do(h, "GET", p); w.Code != 404 {
					t.Errorf("%s: status = %d, want 404", p, w.Code)
				}
			}
			if w := do(h, "POST", "/"); w.Code != 405 {
				t.Errorf("POST /: status = %d, want 405", w.Code)
			}
		})
	}

	t.Run("escaped", func(t *testing.T) {
		root := filepath.Join(base, "<script>")
		body := do(New(Options{Root: root}), "GET", "/").Body.String()
		if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("root path not escaped:\n%s", body)
		}
	})

	t.Run("root appears", func(t *testing.T) {
		h := New(Options{Root: missing})
		if w := do(h, "GET", "/hello.txt"); w.Code != 404 {
			t.Fatalf("status = %d, want 404", w.Code)
		}
		writeFile(t, filepath.Join(missing, "hello.txt"), "hi")
		if w := do(h, "GET", "/hello.txt"); w.Code != 200 || w.Body.String() != "hi" {
			t.Fatalf("after creating the root: %d %q", w.Code, w.Body)
		}
		if w := do(h, "GET", "/"); w.Code != 403 {
			t.Errorf("GET / on the real root: %d, want 403", w.Code)
		}
	})
}

// TestRootSwap repoints a symlinked document root, as a deploy does, and
// checks the handler follows it.
func TestRootSwap(t *testing.T) { bothPaths(t, testRootSwap) }

func testRootSwap(t *testing.T, newH func(Options) *handler) {
	base := t.TempDir()
	for _, r := range []string{"r1", "r2", "r3"} {
		writeFile(t, filepath.Join(base, r, "v.txt"), r)
	}
	current := filepath.Join(base, "current")
	must(t, os.Symlink("r1", current))
	repoint := func(target string) {
		t.Helper()
		tmp := filepath.Join(base, "next")
		must(t, os.Symlink(target, tmp))
		must(t, os.Rename(tmp, current))
	}
	h := newH(Options{Root: current})
	h.recheck = 10 * time.Millisecond
	if got := do(h, "GET", "/v.txt").Body.String(); got != "r1" {
		t.Fatalf("before the swap: %q", got)
	}

	// After the recheck interval the new tree is served.
	repoint("r2")
	time.Sleep(2 * h.recheck)
	if w := do(h, "GET", "/v.txt"); w.Code != 200 || w.Body.String() != "r2" {
		t.Fatalf("after the swap: %d %q", w.Code, w.Body)
	}

	// Within the interval, a file gone from the old tree is looked up
	// through the symlink, which leads to the new one.
	h.recheck = time.Hour
	if h.cache != nil {
		h.cache.validity = 0 // a cached copy would be served for up to that long
	}
	repoint("r3")
	must(t, os.RemoveAll(filepath.Join(base, "r2")))
	if w := do(h, "GET", "/v.txt"); w.Code != 200 || w.Body.String() != "r3" {
		t.Fatalf("after the swap and removal: %d %q", w.Code, w.Body)
	}
	if w := do(h, "GET", "/nope"); w.Code != 404 {
		t.Errorf("missing file: %d", w.Code)
	}
}

func TestRelativeRoot(t *testing.T) {
	fx := newFixture(t)
	t.Chdir(filepath.Dir(fx.root))
	h := New(Options{Root: "root"})
	if w := do(h, "GET", "/hello.txt"); w.Code != 200 {
		t.Fatalf("status = %d", w.Code)
	}
}

// TestEndToEnd serves through a real server, where the body goes out by
// sendfile, and checks the HEAD, range and conditional paths end to end.
func TestEndToEnd(t *testing.T) {
	fx := newFixture(t)
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	writeFile(t, filepath.Join(fx.root, "big.bin"), big)
	srv := httptest.NewServer(New(Options{Root: fx.root}))
	t.Cleanup(srv.Close)

	get := func(method, path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		must(t, err)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		must(t, err)
		return resp, string(b)
	}
	resp, body := get("GET", "/big.bin")
	if resp.StatusCode != 200 || body != big {
		t.Fatalf("GET big: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = get("GET", "/big.bin", "Range", "bytes=16-31")
	if resp.StatusCode != 206 || body != "0123456789abcdef" {
		t.Errorf("range: %d %q", resp.StatusCode, body)
	}
	resp, body = get("GET", "/big.bin", "Range", "bytes=1000-600999")
	if resp.StatusCode != 206 || body != big[1000:601000] {
		t.Errorf("large range: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = get("GET", "/big.bin", "Range", "bytes=0-9,1000-600999,-5")
	if resp.StatusCode != 206 || !strings.Contains(body, big[1000:601000]) || !strings.Contains(body, big[len(big)-5:]) {
		t.Errorf("large multi-range: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, _ = get("GET", "/big.bin", "If-None-Match", resp.Header.Get("Etag"))
	if resp.StatusCode != 304 {
		t.Errorf("conditional: %d", resp.StatusCode)
	}
	resp, body = get("HEAD", "/hello.txt")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 6 {
		t.Errorf("HEAD: %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	resp, _ = get("GET", "/sub")
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/sub/" {
		t.Errorf("redirect followed to %s: %d", resp.Request.URL, resp.StatusCode)
	}
}

// TestConcurrent hammers one handler from many goroutines while the root
// appears, for the race detector.
func TestConcurrent(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	h := New(Options{Root: root})
	done := make(chan struct{})
	errs := make(chan string, 8)
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				w := do(h, "GET", "/a.txt")
				if w.Code != 200 && w.Code != 404 {
					errs <- fmt.Sprint("status ", w.Code)
					return
				}
			}
		}()
	}
	writeFile(t, filepath.Join(root, "a.txt"), "a")
	for range 8 {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestWithin(t *testing.T) {
	tests := []struct {
		real, root, rel string
		ok              bool
	}{
		{"/srv/www", "/srv/www", "", true},
		{"/srv/www/a/b", "/srv/www", "/a/b", true},
		{"/srv/wwwx/a", "/srv/www", "", false},
		{"/srv/ww", "/srv/www", "", false},
		{"/etc/passwd", "/srv/www", "", false},
		{"/etc/passwd", "/", "/etc/passwd", true},
		{"anon_inode:[x]", "/", "", false},
	}
	for _, tt := range tests {
		rel, ok := within(tt.real, tt.root)
		if rel != tt.rel || ok != tt.ok {
			t.Errorf("within(%q, %q) = %q, %v; want %q, %v", tt.real, tt.root, rel, ok, tt.rel, tt.ok)
		}
		brel, bok := within([]byte(tt.real), tt.root)
		if string(brel) != tt.rel || bok != tt.ok {
			t.Errorf("within([]byte(%q), %q) = %q, %v", tt.real, tt.root, brel, bok)
		}
	}
}

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path, raw string
		code      int
	}{
		{"/", "", 0},
		{"/a/b.txt", "", 0},
		{"//a//b", "", 0},
		{"/...", "", 0},
		{"/a..b", "", 0},
		{"/.well-known/x", "", 0},
		{"", "", 400},
		{"a", "", 400},
		{"*", "", 400},
		{"/a\x00", "", 400},
		{"/a\\b", "", 404},
		{"/a/..", "", 404},
		{"/a/./b", "", 404},
		{"/a/b", "/a%2Fb", 404},
		{"/a/b", "/a%2fb", 404},
		{"/.ht", "", 403},
		{"/a/.HTx/b", "", 403},
		{"/.ht/..", "", 404},
	}
	for _, tt := range tests {
		if got := checkPath(tt.path, tt.raw); got != tt.code {
			t.Errorf("checkPath(%q, %q) = %d, want %d", tt.path, tt.raw, got, tt.code)
		}
	}
}

// TestRangeLimits: Apache's MaxRanges (200), MaxRangeOverlaps and
// MaxRangeReversals (20): past them the whole file is served with 200, so
// a Range header can never make the response much larger than the file.
func TestRangeLimits(t *testing.T) { withCache(t, testRangeLimits) }

func testRangeLimits(t *testing.T, o Options) {
	fx := newFixture(t)
	body := strings.Repeat("abcdefghij", 100) // 1,000 bytes
	writeFile(t, filepath.Join(fx.root, "k.txt"), body)
	o.Root = fx.root
	h := New(o)
	spread := func(n int) string { // n one-byte ranges, apart
		var parts []string
		for i := range n {
			parts = append(parts, fmt.Sprintf("%d-%d", 2*i, 2*i))
		}
		return "bytes=" + strings.Join(parts, ",")
	}
	if w := do(h, "GET", "/k.txt", "Range", spread(200)); w.Code != 206 || strings.Count(w.Body.String(), "Content-Range: bytes ") != 200 {
		t.Errorf("200 ranges: %d with %d parts, want 206 with 200", w.Code, strings.Count(w.Body.String(), "Content-Range: bytes "))
	}
	for _, tt := range []struct{ name, rng string }{
		{"201 ranges", spread(201)},
		{"21 overlaps", "bytes=" + strings.Repeat("5-5,", 21) + "5-5"},
		{"21 reversals", func() string {
			var parts []string
			for i := 30; i >= 0; i-- {
				parts = append(parts, fmt.Sprintf("%d-%d", i, i))
			}
			return "bytes=" + strings.Join(parts, ",")
		}()},
		{"1,000 one-byte ranges", spread(500) + "," + spread(500)[len("bytes="):]},
	} {
		w := do(h, "GET", "/k.txt", "Range", tt.rng)
		if w.Code != 200 || w.Body.String() != body || w.Header().Get("Content-Range") != "" {
			t.Errorf("%s: %d, %d bytes; want 200 and the file once", tt.name, w.Code, w.Body.Len())
		}
	}
	if w := do(h, "GET", "/k.txt", "Range", "bytes="+strings.Repeat("5-5,", 20)+"5-5"); w.Code != 206 || w.Body.String() != "f" {
		t.Errorf("20 overlaps: %d %q, want 206 \"f\"", w.Code, w.Body)
	}
}

func TestPlanRanges(t *testing.T) {
	for _, tt := range []struct {
		header string
		size   int64
		want   []byteRange
		plan   rangePlan
	}{
		{"bytes=0-0", 10, []byteRange{{0, 0}}, rangeServe},
		{"BYTES=1-2", 10, []byteRange{{1, 2}}, rangeServe},
		{"bytes=-3", 10, []byteRange{{7, 9}}, rangeServe},
		{"bytes=-30", 10, []byteRange{{0, 9}}, rangeServe},
		{"bytes=-0", 10, nil, rangeUnsatisfiable},
		{"bytes=0-", 0, nil, rangeUnsatisfiable},
		{"bytes=-5", 0, nil, rangeUnsatisfiable},
		{"bytes=4-6,0-1", 10, []byteRange{{4, 6}, {0, 1}}, rangeServe},
		{"bytes=4-6,2-3", 10, []byteRange{{2, 6}}, rangeServe}, // a reversal, merged
		{"bytes=4-6, ,7-8", 10, []byteRange{{4, 8}}, rangeServe},
		{"bytes=", 10, nil, rangeIgnore},
		{"bytes=1", 10, nil, rangeIgnore},
		{"bytes=+1-2", 10, nil, rangeIgnore},
		{"bytes=1--2", 10, nil, rangeIgnore},
		{"bytes=99999999999999999999-", 10, nil, rangeIgnore},
	} {
		got, plan := planRanges(tt.header, tt.size)
		if plan != tt.plan || !slices.Equal(got, tt.want) {
			t.Errorf("planRanges(%q, %d) = %v, %v; want %v, %v", tt.header, tt.size, got, plan, tt.want, tt.plan)
		}
	}
}
