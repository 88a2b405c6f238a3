package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docsFile is the plugin author's guide, which quotes these examples.
const docsFile = "../../docs/plugins.md"

// goBlocks returns the ```go blocks of a markdown text.
func goBlocks(md string) []string {
	re := regexp.MustCompile("(?s)```go\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(md, -1) {
		out = append(out, m[1])
	}
	return out
}

// trimLines trims each line's surrounding space, so that a quote may be
// dedented, and joins the non-empty ones.
func trimLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDocsQuoteCompiledCode keeps docs/plugins.md honest: every Go block in
// it is a quote (dedented, in blank-line-separated pieces) of a file of the
// examples, which the tests compile and run, and the minimal MPM is quoted
// whole.
func TestDocsQuoteCompiledCode(t *testing.T) {
	md, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, dir := range []string{".", "testdata/minimal", "../hook-warmup", "../plugin-template"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sources = append(sources, trimLines(string(b)))
		}
	}
	quoted := func(piece string) bool {
		for _, s := range sources {
			if strings.Contains(s, piece) {
				return true
			}
		}
		return false
	}
	blocks := goBlocks(string(md))
	if len(blocks) < 5 {
		t.Fatalf("%s has %d Go blocks; the guide has lost its code", docsFile, len(blocks))
	}
	for i, b := range blocks {
		for _, piece := range strings.Split(b, "\n\n") {
			if p := trimLines(piece); p != "" && !quoted(p) {
				t.Errorf("%s, Go block %d: this piece is in no example file, so nothing compiles it:\n%s", docsFile, i+1, piece)
			}
		}
	}
	minimal, err := os.ReadFile("testdata/minimal/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "```go\n"+string(minimal)+"```") {
		t.Errorf("%s does not quote testdata/minimal/main.go whole", docsFile)
	}
}
