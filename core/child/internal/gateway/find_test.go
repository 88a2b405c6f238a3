package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/phasedhq/phased/core/child/internal/testkit"
)

func TestFind(t *testing.T) {
	root := testkit.Site(t)
	rt, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, name, pathInfo, file string // file relative to root; "" for a folder
		dir                        bool
		err                        error
	}{
		{path: "/index.php", name: "/index.php", file: "index.php"},
		{path: "/index.php/foo/bar", name: "/index.php", pathInfo: "/foo/bar", file: "index.php"},
		{path: "/index.php/", name: "/index.php", pathInfo: "/", file: "index.php"},
		{path: "/index.php//x", name: "/index.php", pathInfo: "//x", file: "index.php"},
		{path: "/a/b/c.php/x.php", name: "/a/b/c.php", pathInfo: "/x.php", file: "a/b/c.php"},
		{path: "/img.png/foo.php", name: "/img.png", pathInfo: "/foo.php", file: "img.png"},
		{path: "/link-in.php/p", name: "/link-in.php", pathInfo: "/p", file: "index.php"},
		{path: "/fifo.php", name: "/fifo.php", file: "fifo.php"},
		{path: "/", name: "/", dir: true},
		{path: "/a/b/", name: "/a/b/", dir: true},
		{path: "/a/b", name: "/a/b", dir: true},
		{path: "/dir.php", name: "/dir.php", dir: true},
		{path: "/missing.php", err: ErrNotFound},
		{path: "/missing.php/x", err: ErrNotFound},
		{path: "/a/missing/c.php", err: ErrNotFound},
		{path: "/../outside/secret.php", err: ErrNotFound},
		{path: "/a/../index.php", err: ErrNotFound},
		{path: "/./index.php", err: ErrNotFound},
		{path: "/index.php/../../outside/secret.php", err: ErrNotFound},
		{path: "/index.php/..", err: ErrNotFound},
		{path: "/link-out.php", err: ErrNotFound},
		{path: "/link-out.php/x", err: ErrNotFound},
		{path: "/dir-out/secret.php", err: ErrNotFound},
		{path: "/dir-out/sub/another.php/x", err: ErrNotFound},
		{path: "/dir-out/", err: ErrNotFound},
		{path: "/abs-out.php", err: ErrNotFound},
		{path: "/index.php\x00.png", err: ErrNotFound},
		{path: "/..\\outside\\secret.php", err: ErrNotFound},
		{path: "index.php", err: ErrNotFound},
		{path: "", err: ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			// The walk (Find) and the resolving way (findLinked, which
			// Find takes at a symlink) say the same of every valid path.
			f, err := rt.Find(tc.path)
			if validPath(tc.path) {
				g, gerr := rt.findLinked(tc.path)
				if errors.Is(err, ErrNotFound) != errors.Is(gerr, ErrNotFound) || (err == nil) != (gerr == nil) ||
					err == nil && (f.Name != g.Name || f.PathInfo != g.PathInfo || f.File != g.File || f.Info.Mode() != g.Info.Mode()) {
					t.Fatalf("Find: %+v, %v; findLinked: %+v, %v", f, err, g, gerr)
				}
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Find: %+v, %v; want %v", f, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			if f.Name != tc.name || f.PathInfo != tc.pathInfo || f.Info.IsDir() != tc.dir {
				t.Fatalf("Find: name %q, path info %q, dir %v; want %q, %q, %v", f.Name, f.PathInfo, f.Info.IsDir(), tc.name, tc.pathInfo, tc.dir)
			}
			if !tc.dir && f.File != filepath.Join(rt.Real, tc.file) {
				t.Fatalf("file %q, want %q", f.File, filepath.Join(rt.Real, tc.file))
			}
		})
	}
}

// TestFindSymlinkedRoot: a root reached through a symlink (a deploy's
// "current") is resolved, and what is inside it stays reachable.
func TestFindSymlinkedRoot(t *testing.T) {
	root := testkit.Site(t)
	link := filepath.Join(t.TempDir(), "current")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	rt, err := OpenRoot(link)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Dir != link || rt.Real != root {
		t.Fatalf("root %+v", rt)
	}
	f, err := rt.Find("/link-in.php")
	if err != nil || f.File != filepath.Join(root, "index.php") {
		t.Fatalf("Find: %+v, %v", f, err)
	}
	if _, err := rt.Find("/link-out.php"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("escaping symlink: %v", err)
	}
}

func TestOpenRoot(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, bad := range []string{filepath.Join(dir, "missing"), file} {
		if _, err := OpenRoot(bad); err == nil {
			t.Errorf("OpenRoot(%q) did not fail", bad)
		}
	}
}

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		name, dir string
		want      bool
	}{
		{"/srv/www", "/srv/www", true},
		{"/srv/www/a", "/srv/www", true},
		{"/srv/wwwx", "/srv/www", false},
		{"/srv", "/srv/www", false},
		{"/etc/passwd", "/", true},
		{"", "/", false},
	} {
		if got := Within(tc.name, tc.dir); got != tc.want {
			t.Errorf("Within(%q, %q) = %v", tc.name, tc.dir, got)
		}
	}
}

func TestClassify(t *testing.T) {
	if err := classify(&os.PathError{Op: "stat", Path: "x", Err: syscall.EACCES}); !errors.Is(err, ErrForbidden) {
		t.Errorf("EACCES: %v", err)
	}
	if err := classify(&os.PathError{Op: "stat", Path: "x", Err: syscall.ELOOP}); !errors.Is(err, ErrNotFound) {
		t.Errorf("ELOOP: %v", err)
	}
	if err := classify(syscall.EIO); err != syscall.EIO {
		t.Errorf("EIO: %v", err)
	}
}

// FuzzFind: no URL path makes Find return a file outside the folder, or a
// name and path info that are not the path cut in two.
func FuzzFind(f *testing.F) {
	for _, p := range []string{
		"/index.php", "/index.php/a/b", "/a/b/c.php", "/link-out.php/x", "/dir-out/secret.php",
		"/../outside/secret.php", "/%2e%2e/x", "//abs-out.php", "/img.png/x.php", "/fifo.php/",
		"/dir.php/", "/a//b///c.php//", "/index.php\x00", "/dir-out/sub/another.php/..",
	} {
		f.Add(p)
	}
	rt, err := OpenRoot(testkit.Site(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p string) {
		found, err := rt.Find(p)
		if err != nil {
			return
		}
		if !Within(found.File, rt.Real) {
			t.Fatalf("%q: found %q outside %q", p, found.File, rt.Real)
		}
		if found.Name+found.PathInfo != p {
			t.Fatalf("%q: name %q + path info %q", p, found.Name, found.PathInfo)
		}
		if found.PathInfo != "" && found.Info.IsDir() {
			t.Fatalf("%q: a folder with path info", p)
		}
	})
}

// BenchmarkFind: a script named outright below a root with no symlink, as
// most requests are (OpenRoot, then Find, as a FastCGI request does).
func BenchmarkFind(b *testing.B) {
	root := testkit.Site(b)
	for b.Loop() {
		rt, err := OpenRoot(root)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rt.Find("/index.php/foo"); err != nil {
			b.Fatal(err)
		}
	}
}
