package plugin_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestSDKImports proves that no package under sdk/, tests included, reaches
// the master's packages (core/, phases/, plugins/), directly or through
// another package: plugin authors link sdk/ and must not link the master.
func TestSDKImports(t *testing.T) {
	const module = "github.com/phasedhq/phased/"
	forbidden := []string{module + "core", module + "phases", module + "plugins"}

	cmd := exec.Command("go", "list", "-deps", "-test", "-json=ImportPath,Imports", module+"sdk/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	type pkg struct {
		ImportPath string
		Imports    []string
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list listed no packages")
	}
	bad := func(path string) bool {
		path, _, _ = strings.Cut(path, " ") // "p [p.test]" variants
		for _, f := range forbidden {
			if path == f || strings.HasPrefix(path, f+"/") {
				return true
			}
		}
		return false
	}
	for _, p := range pkgs {
		if bad(p.ImportPath) {
			continue // reported where it is imported
		}
		for _, imp := range p.Imports {
			if bad(imp) {
				t.Errorf("%s imports %s: sdk/ must not depend on core/, phases/ or plugins/", p.ImportPath, imp)
			}
		}
	}
}

// TestSDKImportsAreAllowed holds sdk/ to STYLE.md's rule: the public surface
// imports only the standard library, golang.org/x/sys, go-plugin and its
// logger, gRPC, protobuf and sdk/ itself; and the packages every child links
// on its hot path (the scoreboard, the access log, the accept mutex) only the
// standard library and golang.org/x/sys.
func TestSDKImportsAreAllowed(t *testing.T) {
	const module = "github.com/phasedhq/phased/"
	allowed := []string{module + "sdk", "golang.org/x/sys", "github.com/hashicorp/go-plugin", "github.com/hashicorp/go-hclog",
		"google.golang.org/grpc", "google.golang.org/protobuf"}
	strict := map[string]bool{module + "sdk/scoreboard": true, module + "sdk/accesslog": true, module + "sdk/internal/acceptmutex": true}
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", module+"sdk/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	n := 0
	for dec := json.NewDecoder(bytes.NewReader(out)); ; n++ {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		for _, imp := range p.Imports {
			std := !strings.Contains(strings.Split(imp, "/")[0], ".")
			ok := std
			for _, a := range allowed {
				if strict[p.ImportPath] && a != "golang.org/x/sys" {
					continue
				}
				ok = ok || imp == a || strings.HasPrefix(imp, a+"/")
			}
			if !ok {
				t.Errorf("%s imports %s, which the SDK may not", p.ImportPath, imp)
			}
		}
	}
	if n < 8 {
		t.Fatalf("go list listed only %d sdk packages", n)
	}
}
