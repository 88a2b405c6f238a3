package static

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// appHandler stands for the app behind the files: it answers 299 with the
// path it got.
var appHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(299)
	w.Write([]byte("app " + r.Method + " " + r.URL.Path))
})

// TestFilesInFrontOfAnApp: with Options.Next, a GET or HEAD of a file, or of
// a folder with its slash and an index file, is served, through both ways
// (ServeHTTP and the fast path's LookupFast); everything else is the
// app's: other methods, what names nothing, a folder without its slash or
// without an index, ".ht" files, "..", symlinks out of the root. A file
// too large to cache is net/http's (neither). While the root does not
// exist every request is the app's, and files are served once it appears.
func TestFilesInFrontOfAnApp(t *testing.T) {
	bothPaths(t, func(t *testing.T, newH func(Options) *handler) {
		fx := newFixture(t)
		writeFile(t, filepath.Join(fx.root, "big.bin"), strings.Repeat("x", 100<<10))
		h := newH(Options{Root: fx.root, Next: appHandler})
		for _, tc := range []struct {
			method, path string
			code         int
			body         string
			fast         string // LookupFast's: "ok", "app" or "net/http"
		}{
			{"GET", "/hello.txt", 200, "hello\n", "ok"},
			{"HEAD", "/hello.txt", 200, "", "ok"},
			{"GET", "/sub/", 200, "<h1>sub index</h1>", "ok"},
			{"GET", "/link-in.txt", 200, "hello\n", "ok"},
			{"GET", "/big.bin", 200, strings.Repeat("x", 100<<10), "net/http"},
			{"POST", "/hello.txt", 299, "app POST /hello.txt", ""},
			{"DELETE", "/hello.txt", 299, "app DELETE /hello.txt", ""},
			{"OPTIONS", "/hello.txt", 299, "app OPTIONS /hello.txt", ""},
			{"GET", "/missing", 299, "app GET /missing", "app"},
			{"GET", "/", 299, "app GET /", "app"},
			{"GET", "/sub", 299, "app GET /sub", "app"},
			{"GET", "/empty/", 299, "app GET /empty/", "app"},
			{"GET", "/hello.txt/x", 299, "app GET /hello.txt/x", "app"},
			{"GET", "/.htaccess", 299, "app GET /.htaccess", "app"},
			{"GET", "/link-ht", 299, "app GET /link-ht", "app"},
			{"GET", "/link-out.txt", 299, "app GET /link-out.txt", "app"},
			{"GET", "/dir-out/secret.txt", 299, "app GET /dir-out/secret.txt", "app"},
			{"GET", "/dangling", 299, "app GET /dangling", "app"},
		} {
			w := do(h, tc.method, tc.path)
			if w.Code != tc.code || w.Body.String() != tc.body {
				t.Errorf("%s %s: %d %.60q, want %d %.60q", tc.method, tc.path, w.Code, w.Body.String(), tc.code, tc.body)
			}
			if tc.fast == "" {
				continue
			}
			_, body, ok, app := h.LookupFast(tc.path)
			got := "net/http"
			switch {
			case ok && !app:
				got = "ok"
				if string(body) != tc.body && tc.method == "GET" {
					t.Errorf("LookupFast(%s): body %.60q, want %.60q", tc.path, body, tc.body)
				}
			case app && !ok:
				got = "app"
			case ok && app:
				got = "both"
			}
			want := tc.fast
			if h.cache == nil && want == "ok" {
				want = "net/http" // without the cache, net/http serves every file
			}
			if got != want {
				t.Errorf("LookupFast(%s): %s, want %s", tc.path, got, want)
			}
		}
	})

	// A root that appears later: the app's until the next look.
	root := filepath.Join(t.TempDir(), "public")
	h := New(Options{Root: root, Next: appHandler}).(*handler)
	h.recheck = 200 * time.Millisecond
	if w := do(h, "GET", "/robots.txt"); w.Code != 299 {
		t.Fatalf("no root: %d %q, want the app's", w.Code, w.Body.String())
	}
	writeFile(t, filepath.Join(root, "robots.txt"), "User-agent: *\n")
	if _, _, ok, app := h.LookupFast("/robots.txt"); ok || !app {
		t.Fatalf("the root made just now, before the next look: ok %v app %v, want the app's", ok, app)
	}
	time.Sleep(250 * time.Millisecond)
	if w := do(h, "GET", "/robots.txt"); w.Code != 200 || w.Body.String() != "User-agent: *\n" {
		t.Fatalf("after the next look: %d %q", w.Code, w.Body.String())
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if w := do(h, "GET", "/other.txt"); w.Code != 299 {
		t.Fatalf("root gone: %d %q, want the app's", w.Code, w.Body.String())
	}
}
