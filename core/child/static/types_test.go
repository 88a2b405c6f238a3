package static

import (
	"bufio"
	"maps"
	"mime"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestTypeByExtensionIsMimes: the compact table gives what
// mime.TypeByExtension gives for every extension the system's files name,
// Go's built-in ones, their upper-case forms and a few unknown ones.
func TestTypeByExtensionIsMimes(t *testing.T) {
	exts := map[string]bool{".nosuchext": true, ".": true, ".TXT": true, ".Html": true, ".tar.gz": true, ".ÄÖ": true}
	for ext := range maps.Keys(builtinTypes) {
		exts[ext] = true
	}
	files := 0
	for _, name := range append(slices.Clone(mimeGlobs), typeFiles...) {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		files++
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "*."); i >= 0 {
				ext, _, _ := strings.Cut(line[i+1:], ":")
				exts[ext] = true
				continue
			}
			for _, ext := range strings.Fields(line)[min(1, len(strings.Fields(line))):] {
				exts["."+ext] = true
			}
		}
		f.Close()
	}
	if files == 0 {
		t.Log("no globs2 or mime.types file on this system: only Go's built-in types compared")
	}
	n := 0
	for ext := range exts {
		for _, e := range []string{ext, strings.ToUpper(ext)} {
			if got, want := typeByExtension(e), mime.TypeByExtension(e); got != want {
				t.Errorf("typeByExtension(%q) = %q, mime.TypeByExtension gives %q", e, got, want)
			}
			n++
		}
	}
	if len(types.exact) < len(builtinTypes) {
		t.Errorf("%d types loaded, fewer than Go's %d built-in ones", len(types.exact), len(builtinTypes))
	}
	t.Logf("%d extensions compared (%d files read, %d types loaded)", n, files, len(types.exact))
}
