package sdk_test

import (
	"bytes"
	"flag"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite api.txt from the current exported API")

// TestAPI holds the exported API of sdk/'s packages against api.txt, so that
// a change to what authors import is deliberate and shows in review. After
// a deliberate change: go test ./sdk -run TestAPI -update.
func TestAPI(t *testing.T) {
	got := strings.Join(exportedAPI(t), "\n") + "\n"
	if *update {
		if err := os.WriteFile("api.txt", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile("api.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got == string(want) {
		return
	}
	gotL, wantL := strings.Split(got, "\n"), strings.Split(string(want), "\n")
	for _, l := range gotL {
		if !slices.Contains(wantL, l) {
			t.Errorf("new in the API (not in api.txt): %s", l)
		}
	}
	for _, l := range wantL {
		if !slices.Contains(gotL, l) {
			t.Errorf("gone from the API (still in api.txt): %s", l)
		}
	}
	t.Log("if the change is deliberate: go test ./sdk -run TestAPI -update")
}

// TestNoImplementationInSDK: what is phased's own implementation (the
// master-child environment, the scoreboard, the access log) is not part of
// the SDK.
func TestNoImplementationInSDK(t *testing.T) {
	for _, l := range exportedAPI(t) {
		if regexp.MustCompile(`^\S+: const Env`).MatchString(l) {
			t.Errorf("sdk exports an environment constant: %s", l)
		}
		if strings.HasPrefix(l, "sdk/scoreboard:") || strings.HasPrefix(l, "sdk/accesslog:") || strings.HasPrefix(l, "sdk/exechook:") {
			t.Errorf("phased's implementation is in sdk/: %s", l)
		}
	}
}

// exportedAPI lists every exported declaration of the packages under sdk/
// (test files and internal/ left out), one line each, sorted:
// "sdk/child: func Serve(h http.Handler, opts ...Option) error".
func exportedAPI(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if d.Name() == "internal" || d.Name() == "testdata" {
			return filepath.SkipDir
		}
		fset := token.NewFileSet()
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		var files []*ast.File
		for _, e := range entries {
			if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
				f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ParseComments)
				if err != nil {
					return err
				}
				files = append(files, f)
			}
		}
		if len(files) == 0 {
			return nil
		}
		name := filepath.ToSlash(filepath.Join("sdk", dir))
		dp, err := doc.NewFromFiles(fset, files, name)
		if err != nil {
			return err
		}
		{
			add := func(node any) {
				out = append(out, name+": "+oneLine(fset, node))
			}
			for _, v := range append(dp.Consts, dp.Vars...) {
				for _, s := range v.Decl.Specs {
					vs := s.(*ast.ValueSpec)
					vs.Doc, vs.Comment = nil, nil
					add(&ast.GenDecl{Tok: v.Decl.Tok, Specs: []ast.Spec{vs}})
				}
			}
			for _, f := range dp.Funcs {
				add(noBody(f.Decl))
			}
			for _, ty := range dp.Types {
				for _, s := range ty.Decl.Specs {
					ts := s.(*ast.TypeSpec)
					ts.Doc, ts.Comment = nil, nil
					add(&ast.GenDecl{Tok: token.TYPE, Specs: []ast.Spec{ts}})
				}
				for _, v := range append(ty.Consts, ty.Vars...) {
					for _, s := range v.Decl.Specs {
						vs := s.(*ast.ValueSpec)
						vs.Doc, vs.Comment = nil, nil
						add(&ast.GenDecl{Tok: v.Decl.Tok, Specs: []ast.Spec{vs}})
					}
				}
				for _, f := range append(ty.Funcs, ty.Methods...) {
					add(noBody(f.Decl))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func noBody(f *ast.FuncDecl) *ast.FuncDecl {
	c := *f
	c.Body, c.Doc = nil, nil
	return &c
}

// oneLine prints a declaration without comments, on one line.
func oneLine(fset *token.FileSet, node any) string {
	var b bytes.Buffer
	if err := (&printer.Config{Mode: printer.RawFormat}).Fprint(&b, fset, node); err != nil {
		return "?"
	}
	s := regexp.MustCompile(`//[^\n]*`).ReplaceAllString(b.String(), "")
	return strings.Join(strings.Fields(s), " ")
}
