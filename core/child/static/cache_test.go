package static

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCacheServesFromMemory: a small file, once served, is answered from
// memory for the validity period, even if it is gone from the disk; a large
// file never is.
func TestCacheServesFromMemory(t *testing.T) {
	fx := newFixture(t)
	big := strings.Repeat("b", defaultMaxCachedFile+1)
	writeFile(t, filepath.Join(fx.root, "big.txt"), big)
	h := New(Options{Root: fx.root}).(*handler)
	h.cache.validity = time.Hour
	for _, p := range []string{"/hello.txt", "/big.txt", "/sub/"} {
		if w := do(h, "GET", p); w.Code != 200 {
			t.Fatalf("%s: %d", p, w.Code)
		}
	}
	must(t, os.Remove(filepath.Join(fx.root, "hello.txt")))
	must(t, os.Remove(filepath.Join(fx.root, "big.txt")))
	must(t, os.Remove(filepath.Join(fx.root, "sub", "index.html")))
	if w := do(h, "GET", "/hello.txt"); w.Code != 200 || w.Body.String() != "hello\n" {
		t.Errorf("cached small file: %d %q", w.Code, w.Body)
	}
	if w := do(h, "GET", "/sub/"); w.Code != 200 || w.Body.String() != "<h1>sub index</h1>" {
		t.Errorf("cached index: %d %q", w.Code, w.Body)
	}
	if w := do(h, "GET", "/big.txt"); w.Code != 404 {
		t.Errorf("large file, deleted: %d, want 404 (never cached)", w.Code)
	}
	// Checked again: gone.
	h.cache.validity = 0
	if w := do(h, "GET", "/hello.txt"); w.Code != 404 {
		t.Errorf("deleted file after the check: %d", w.Code)
	}
	if w := do(h, "GET", "/sub/"); w.Code != 403 {
		t.Errorf("deleted index after the check: %d, want 403", w.Code)
	}
}

// TestCacheRevalidates: with the real validity, a changed file and a deleted
// one are seen within a second.
func TestCacheRevalidates(t *testing.T) {
	fx := newFixture(t)
	name := filepath.Join(fx.root, "v.txt")
	writeFile(t, name, "v1")
	h := New(Options{Root: fx.root}).(*handler)
	if got := do(h, "GET", "/v.txt").Body.String(); got != "v1" {
		t.Fatalf("first: %q", got)
	}
	within := func(what string, ok func() bool) {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > time.Second {
				t.Fatalf("%s not seen within a second", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%s seen after %s", what, time.Since(start).Round(time.Millisecond))
	}
	// Same size, new content: only the modification time tells.
	writeFile(t, name, "v2")
	within("a rewrite", func() bool { return do(h, "GET", "/v.txt").Body.String() == "v2" })
	// A file renamed over it (a deploy): a new inode.
	writeFile(t, name+".new", "v3, longer")
	must(t, os.Rename(name+".new", name))
	within("a rename over", func() bool { return do(h, "GET", "/v.txt").Body.String() == "v3, longer" })
	must(t, os.Remove(name))
	within("a removal", func() bool { return do(h, "GET", "/v.txt").Code == 404 })
}

// TestCacheSymlinkRetargeted: a cached file reached through a symlink that
// is repointed out of the document root is refused at the next check, and
// the file outside is never served.
func TestCacheSymlinkRetargeted(t *testing.T) {
	fx := newFixture(t)
	h := New(Options{Root: fx.root}).(*handler)
	if w := do(h, "GET", "/link-in.txt"); w.Code != 200 || w.Body.String() != "hello\n" {
		t.Fatalf("link-in: %d %q", w.Code, w.Body)
	}
	link := filepath.Join(fx.root, "link-in.txt")
	must(t, os.Remove(link))
	must(t, os.Symlink("../outside/secret.txt", link))
	h.cache.validity = 0
	w := do(h, "GET", "/link-in.txt")
	if w.Code != 404 || strings.Contains(w.Body.String(), secret) {
		t.Fatalf("retargeted out of the root: %d %q", w.Code, w.Body)
	}
}

// TestCacheHeaders: a response from the cache carries the same headers as
// one from http.ServeContent, for GET and HEAD.
func TestCacheHeaders(t *testing.T) {
	fx := newFixture(t)
	cached := New(Options{Root: fx.root}).(*handler)
	plain := New(Options{Root: fx.root, MaxCachedFile: -1}).(*handler)
	for _, p := range []string{"/hello.txt", "/page.html", "/noext", "/blob.unknownext", "/sub/", "/img.png"} {
		for _, m := range []string{"GET", "HEAD"} {
			do(cached, m, p) // fills the cache
			c, u := do(cached, m, p), do(plain, m, p)
			if c.Code != u.Code || c.Body.String() != u.Body.String() {
				t.Errorf("%s %s: cached %d %q, uncached %d %q", m, p, c.Code, c.Body, u.Code, u.Body)
			}
			ch, uh := c.Header().Clone(), u.Header().Clone()
			ch.Del("Date")
			uh.Del("Date")
			if fmt.Sprint(ch) != fmt.Sprint(uh) {
				t.Errorf("%s %s: headers differ\ncached:   %v\nuncached: %v", m, p, ch, uh)
			}
		}
	}
}

// TestCacheBounded: the cache never holds more than CacheBytes, and what is
// evicted is still served.
func TestCacheBounded(t *testing.T) {
	root := t.TempDir()
	for i := range 20 {
		writeFile(t, filepath.Join(root, fmt.Sprintf("f%02d.txt", i)), strings.Repeat("x", 30))
	}
	h := New(Options{Root: root, MaxCachedFile: 64, CacheBytes: 100}).(*handler)
	for round := range 3 {
		for i := range 20 {
			p := fmt.Sprintf("/f%02d.txt", i)
			if w := do(h, "GET", p); w.Code != 200 || w.Body.Len() != 30 {
				t.Fatalf("round %d %s: %d, %d bytes", round, p, w.Code, w.Body.Len())
			}
			if n := h.cache.bytes.Load(); n > 100 || n < 0 {
				t.Fatalf("cache holds %d bytes, bound 100", n)
			}
		}
	}
	held := 0
	h.cache.entries.Range(func(_, _ any) bool { held++; return true })
	if held == 0 || held > 3 {
		t.Errorf("%d entries held, want 1 to 3", held)
	}
}

// TestCacheConcurrent: many readers while the file is rewritten and the
// cache checks it on every request, for the race detector. Every response
// is one of the versions, whole.
func TestCacheConcurrent(t *testing.T) {
	root := t.TempDir()
	name := filepath.Join(root, "v.txt")
	writeFile(t, name, "version-0")
	h := New(Options{Root: root, MaxCachedFile: 64, CacheBytes: 64}).(*handler)
	h.cache.validity = 0
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 100)
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				w := do(h, "GET", "/v.txt")
				if w.Code == http.StatusOK && !strings.HasPrefix(w.Body.String(), "version-") {
					select {
					case errs <- w.Body.String():
					default:
					}
				}
			}
		})
	}
	for i := 1; i <= 50; i++ {
		tmp := name + ".tmp"
		writeFile(t, tmp, fmt.Sprintf("version-%d", i))
		must(t, os.Rename(tmp, name))
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("torn response %q", e)
	}
}

// TestServeFast: the child's fast path gets, for what the cache can hold,
// the same headers and body ServeHTTP sends, and is declined for all else.
func TestServeFast(t *testing.T) {
	fx := newFixture(t)
	writeFile(t, filepath.Join(fx.root, "big.txt"), strings.Repeat("b", defaultMaxCachedFile+1))
	h := New(Options{Root: fx.root}).(*handler)
	for _, p := range []string{"/hello.txt", "/sub/", "/link-in.txt", "/noext"} {
		hdr, body, ok := h.ServeFast(p)
		if !ok {
			t.Fatalf("%s: declined", p)
		}
		w := do(New(Options{Root: fx.root, MaxCachedFile: -1}), "GET", p)
		if string(body) != w.Body.String() {
			t.Errorf("%s: body %q, ServeHTTP %q", p, body, w.Body)
		}
		want := w.Header().Clone()
		want.Del("Date")
		var wantLines []string
		for k, vs := range want {
			for _, v := range vs {
				wantLines = append(wantLines, k+": "+v)
			}
		}
		got := strings.Split(strings.TrimSuffix(string(hdr), "\r\n"), "\r\n")
		slices.Sort(got)
		slices.Sort(wantLines)
		if !slices.Equal(got, wantLines) {
			t.Errorf("%s: header block\n%q\nServeHTTP sends\n%q", p, got, wantLines)
		}
	}
	for _, p := range []string{"/sub", "/nope", "/.htpasswd", "/sub/.htaccess", "/../outside/secret.txt",
		"/link-out.txt", "/abs-out.txt", "/dir-out/secret.txt", "/big.txt", "/empty/", "/hello.txt/", "/a\\b"} {
		if hdr, body, ok := h.ServeFast(p); ok || strings.Contains(string(body), secret) {
			t.Errorf("%s: taken (%q %q)", p, hdr, body)
		}
	}
	if _, _, ok := New(Options{}).(*handler).ServeFast("/"); ok {
		t.Error("the welcome page went the fast path")
	}
	if _, _, ok := New(Options{Root: fx.root, MaxCachedFile: -1}).(*handler).ServeFast("/hello.txt"); ok {
		t.Error("fast path with the cache off")
	}
}
