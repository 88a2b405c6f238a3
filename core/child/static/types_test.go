package static

import (
	"bufio"
	"maps"
	"mime"
	"os"
	"slices"
	"strings"
	"sync"
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

// TestTypeTableRules: the mime package's rules on a globs2 file that has
// what the system's may not: an extension in two cases with different
// types (the exact case wins, the lower-case lookup takes the last one),
// one in upper case only, types with capitals, a parameter, or none valid.
func TestTypeTableRules(t *testing.T) {
	dir := t.TempDir()
	globs := dir + "/globs2"
	if err := os.WriteFile(globs, []byte(`# comment
50:text/x-csrc:*.c
50:text/x-c++src:*.C
50:text/markdown:*.Md
50:Application/X-Foo:*.foo
50:TEXT/Plain:*.up
50:text/plain; charset=latin1:*.lat
50:text/x-tex; format=x:*.tex
50:bad type:*.bad
40:image/png:*.c
40:text/x-other:*.png
`), 0o644); err != nil {
		t.Fatal(err)
	}
	saved, savedFiles := mimeGlobs, typeFiles
	mimeGlobs, typeFiles = []string{dir + "/none", globs}, nil
	types.once, types.exact, types.lower = sync.Once{}, nil, nil
	t.Cleanup(func() {
		mimeGlobs, typeFiles = saved, savedFiles
		types.once, types.exact, types.lower = sync.Once{}, nil, nil
	})
	for ext, want := range map[string]string{
		".c":   "text/x-csrc; charset=utf-8",
		".C":   "text/x-c++src; charset=utf-8",
		".md":  "text/markdown; charset=utf-8",
		".MD":  "text/markdown; charset=utf-8",
		".Md":  "text/markdown; charset=utf-8",
		".foo": "Application/X-Foo",
		".FOO": "Application/X-Foo",
		".up":  "TEXT/Plain",
		".lat": "text/plain; charset=latin1",
		".tex": "", // as the mime package: FormatMediaType of the whole "type; param" fails
		".bad": "",
		".png": "image/png", // built in: the file's later line does not replace it
		".PNG": "image/png",
		".txt": "text/plain; charset=utf-8",
	} {
		if got := typeByExtension(ext); got != want {
			t.Errorf("typeByExtension(%q) = %q, want %q", ext, got, want)
		}
	}
	if len(types.lower) > 2 {
		t.Errorf("lower-case table holds %d entries (%v), more than those that differ from the exact table", len(types.lower), types.lower)
	}
}
