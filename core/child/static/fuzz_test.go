package static

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPath feeds arbitrary URL paths to a handler over a document root that
// is surrounded by secrets: the siblings of the root and the targets of its
// escaping symlinks hold a marker that must never appear in a response. No
// path may panic the handler or make it answer with a 5xx.
func FuzzPath(f *testing.F) {
	for _, seed := range []string{
		"/", "/hello.txt", "/sub", "/sub/", "/../secret.txt", "/%2e%2e/secret.txt",
		"/..%2fsecret.txt", "/..\\secret.txt", "/link-out.txt", "/dir-out/secret.txt",
		"/abs-out.txt", "/dir-in/../../outside/secret.txt", "/.htpasswd", "/link-ht",
		"/hello.txt\x00", "//outside/secret.txt", "/sub/%2E%2E/..%5c", "*", "",
		"/" + strings.Repeat("../", 20) + "etc/passwd", "http://x/../secret.txt",
	} {
		f.Add(seed)
	}
	fx := newFixture(f)
	writeFile(f, fx.root+"/../secret.txt", secret)
	// Every body a 200 may carry, apart from directory listings.
	served := map[string]bool{}
	filepath.WalkDir(fx.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			served[string(b)] = true
		}
		return nil
	})
	var handlers []http.Handler
	for _, listing := range []bool{false, true} {
		for _, noOpenat2 := range []bool{false, true} {
			h := New(Options{Root: fx.root, DirectoryListing: listing}).(*handler)
			h.noOpenat2.Store(noOpenat2)
			handlers = append(handlers, h)
		}
	}
	f.Fuzz(func(t *testing.T, p string) {
		// The path both as net/http would decode it from a request line
		// and as a raw, already decoded path.
		var reqs []*http.Request
		if u, err := url.ParseRequestURI(p); err == nil {
			r := httptest.NewRequest("GET", "/", nil)
			r.URL, r.RequestURI = u, p
			reqs = append(reqs, r)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path, r.URL.RawPath = p, ""
		reqs = append(reqs, r)
		for _, h := range handlers {
			for _, r := range reqs {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code >= 500 {
					t.Fatalf("path %q: status %d", r.URL.Path, w.Code)
				}
				body := w.Body.String()
				if strings.Contains(body, secret) {
					t.Fatalf("path %q: served a file outside the root", r.URL.Path)
				}
				if w.Code == http.StatusOK && !served[body] && !strings.Contains(body, "<title>Index of /") {
					t.Fatalf("path %q: 200 with a body that is no file of the root: %q", r.URL.Path, body)
				}
			}
		}
	})
}
