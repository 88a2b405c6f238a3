package plugins

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/phasedhq/phased/internal/e2e"
)

// TestPluginTemplateBuildsAsItsOwnModule treats examples/plugin-template as
// a plugin author outside this repository would: a copy in a folder of its
// own, its go.mod's replace directive pointing at a checkout of phased (this
// one), `go build` and `go test` run there with GOFLAGS=-mod=mod and the
// module proxy as it is; then phased -t runs the plugin it built, with its
// setting and with a misspelt one.
func TestPluginTemplateBuildsAsItsOwnModule(t *testing.T) {
	e2e.Binary(t) // skips with -short
	root := e2e.ModuleRoot()
	dir := filepath.Join(t.TempDir(), "phased-hello")
	src := filepath.Join(root, "examples", "plugin-template")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(dir, "go.mod")
	b, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	replace := regexp.MustCompile(`(?m)^replace github.com/phasedhq/phased => .*$`)
	if !replace.Match(b) {
		t.Fatalf("the template's go.mod has no replace directive for phased:\n%s", b)
	}
	b = replace.ReplaceAll(b, []byte("replace github.com/phasedhq/phased => "+root))
	if err := os.WriteFile(mod, b, 0o644); err != nil {
		t.Fatal(err)
	}
	gocmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s in the template's copy: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	bin := filepath.Join(dir, "bin", "phased-hello")
	gocmd("build", "-o", bin, ".")
	if out := gocmd("test", "-count=1", "./..."); !strings.Contains(out, "ok") {
		t.Fatalf("go test: %s", out)
	}

	site := t.TempDir()
	os.MkdirAll(filepath.Join(site, "logs"), 0o755)
	conf := e2e.WriteFile(t, site, "phased.yaml", e2e.Config(e2e.FreePort(t),
		"hooks:\n  - {name: hello, plugin: "+bin+", phase: post-config, settings: {greeting: hi}}\n"))
	if code, out, errOut := e2e.Run(t, site, nil, "-f", conf, "-t"); code != 0 {
		t.Fatalf("-t with the template's plugin: %d %s %s", code, out, errOut)
	}
	conf = e2e.WriteFile(t, site, "phased.yaml", e2e.Config(e2e.FreePort(t),
		"hooks:\n  - {name: hello, plugin: "+bin+", phase: post-config, settings: {greting: hi}}\n"))
	if code, _, errOut := e2e.Run(t, site, nil, "-f", conf, "-t"); code != 1 || !strings.Contains(errOut, "hooks[0].settings.greting") {
		t.Fatalf("-t with a misspelt setting: %d %s", code, errOut)
	}
}
