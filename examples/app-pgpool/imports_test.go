package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports proves that this example imports only the standard library,
// phased's sdk/ and its database driver (jackc/pgx), and reaches none of the
// master's packages (core/, phases/, plugins/) through them: a Go app links
// sdk/, never the master.
func TestImports(t *testing.T) {
	const module = "github.com/phasedhq/phased/"
	allowed := []string{module + "sdk/", "github.com/jackc/pgx/v5"}
	// One line a package, tab-separated (test variants' paths hold a space):
	// path, whether it is standard, whether it is only a dependency (not
	// this example or its test), then its imports.
	out, err := exec.Command("go", "list", "-deps", "-test",
		"-f", "{{.ImportPath}}\t{{.Standard}}\t{{.DepOnly}}\t{{join .Imports \"\\t\"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkg struct {
		path     string
		standard bool
		depOnly  bool
		imports  []string
	}
	var pkgs []pkg
	standard := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 4 {
			t.Fatalf("go list line %q", line)
		}
		p := pkg{path: f[0], standard: f[1] == "true", depOnly: f[2] == "true", imports: f[3:]}
		if f[3] == "" {
			p.imports = nil
		}
		pkgs = append(pkgs, p)
		base, _, _ := strings.Cut(p.path, " [")
		standard[base] = p.standard
	}
	own := 0
	for _, p := range pkgs {
		for _, master := range []string{"core", "phases", "plugins"} {
			if p.path == module+master || strings.HasPrefix(p.path, module+master+"/") {
				t.Errorf("%s is among the dependencies: a Go app must not reach the master's packages", p.path)
			}
		}
		if p.depOnly {
			continue
		}
		own++
	imports:
		for _, imp := range p.imports {
			imp, _, _ = strings.Cut(imp, " [") // a test variant: "path [path.test]"
			if standard[imp] || strings.HasPrefix(imp, module+"examples/app-pgpool") {
				continue
			}
			for _, a := range allowed {
				if imp == strings.TrimSuffix(a, "/") || strings.HasPrefix(imp, a) {
					continue imports
				}
			}
			t.Errorf("%s imports %s: this example imports only the standard library, %ssdk/... and pgx", p.path, imp, module)
		}
	}
	if own == 0 {
		t.Fatal("go list listed no package of the example")
	}
}
