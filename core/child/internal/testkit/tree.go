package testkit

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Tree makes the files of tree below folder base, each path relative to
// it. A value "symlink:TARGET" makes a symlink, "fifo:" a FIFO,
// "exec:CONTENT" an executable file and anything else a file holding it.
func Tree(t testing.TB, base string, tree map[string]string) {
	t.Helper()
	for name, v := range tree {
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasPrefix(v, "symlink:"):
			err = os.Symlink(strings.TrimPrefix(v, "symlink:"), p)
		case v == "fifo:":
			err = syscall.Mkfifo(p, 0o644)
		case strings.HasPrefix(v, "exec:"):
			err = os.WriteFile(p, []byte(strings.TrimPrefix(v, "exec:")), 0o755)
		default:
			err = os.WriteFile(p, []byte(v), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Site lays out a document root of scripts next to a folder that must stay
// out of its reach, and returns the root, its symlinks resolved:
//
//	index.php, a/b/c.php, dir.php/index.php, app/index.php
//	sub/index.html, page.html, img.png, fifo.php (a FIFO)
//	link-in.php -> index.php, link-out.php -> ../outside/secret.php
//	dir-out -> ../outside, abs-out.php -> <outside>/secret.php
//
// with outside/secret.php and outside/sub/another.php beside the root.
func Site(t testing.TB) string {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	Tree(t, base, map[string]string{
		"www/index.php":           "<?php",
		"www/a/b/c.php":           "<?php",
		"www/dir.php/index.php":   "<?php",
		"www/app/index.php":       "<?php",
		"www/sub/index.html":      "<p>static index</p>",
		"www/page.html":           "<p>page</p>",
		"www/img.png":             "png",
		"www/fifo.php":            "fifo:",
		"www/link-in.php":         "symlink:index.php",
		"www/link-out.php":        "symlink:../outside/secret.php",
		"www/dir-out":             "symlink:../outside",
		"www/abs-out.php":         "symlink:" + filepath.Join(base, "outside/secret.php"),
		"outside/secret.php":      "<?php // secret",
		"outside/sub/another.php": "<?php // secret",
	})
	return filepath.Join(base, "www")
}
