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
