package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// helperEnv, set in a re-executed test binary, makes it run main instead of
// the tests (go-plugin's helperProcess pattern).
const helperEnv = "HOOK_WARMUP_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// checkNotAPluginRun runs a plugin binary as a person would, without a
// master: go-plugin refuses (the handshake's magic cookie is missing), says
// so on stderr, exits 1, and nothing reaches stdout, which belongs to the
// handshake.
func checkNotAPluginRun(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 1 {
		t.Fatalf("run without a master: %v, want exit status 1 (stderr: %s)", err, stderr.String())
	}
	if stdout.Len() > 0 {
		t.Errorf("stdout = %q, want nothing: stdout belongs to the handshake", stdout.String())
	}
	if !strings.Contains(stderr.String(), "plugin") {
		t.Errorf("stderr = %q, want go-plugin's note that this is a plugin", stderr.String())
	}
}

// main serves the hook as a plugin.
func TestMainServesAPlugin(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	checkNotAPluginRun(t, cmd)
}

// TestImports proves that this example imports only the standard library
// and phased's sdk/, and reaches none of the master's packages (core/,
// phases/, plugins/) through them: a plugin links sdk/, never the master.
func TestImports(t *testing.T) {
	checkImports(t, ".")
}

func checkImports(t *testing.T, patterns ...string) {
	t.Helper()
	const module = "github.com/phasedhq/phased/"
	args := append([]string{"list", "-deps", "-test", "-json=ImportPath,Imports,Standard,DepOnly"}, patterns...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	type pkg struct {
		ImportPath string
		Imports    []string
		Standard   bool
		DepOnly    bool
	}
	var pkgs []pkg
	standard := map[string]bool{}
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
		standard[p.ImportPath] = p.Standard
	}
	roots := 0
	for _, p := range pkgs {
		for _, f := range []string{"core", "phases", "plugins"} {
			if p.ImportPath == module+f || strings.HasPrefix(p.ImportPath, module+f+"/") {
				t.Errorf("%s is among the dependencies: examples must not reach the master's packages", p.ImportPath)
			}
		}
		if p.DepOnly {
			continue
		}
		roots++
		for _, imp := range p.Imports {
			if !standard[imp] && !strings.HasPrefix(imp, module+"sdk/") && !strings.HasPrefix(imp, module+"examples/") {
				t.Errorf("%s imports %s: examples import only the standard library and %ssdk/...", p.ImportPath, imp, module)
			}
		}
	}
	if roots == 0 {
		t.Fatal("go list listed no package of the example")
	}
}
