package sdk_test

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

// TestSDKImportsAreAllowed holds sdk/ to its rule: the public surface
// imports only the standard library, golang.org/x/sys, go-plugin and its
// logger, gRPC, protobuf, Prometheus's client (the status module every child
// mounts), go-proxyproto (the PROXY protocol on every child's listeners that
// ask for it), golang.org/x/net (the HTTP/2 framer and HPACK of phased's
// HTTP/2 server, internal/h2, which children with TLS listeners run), sdk/ itself and phased's shared internal/ packages; and the
// internal packages every child links on its hot path (the scoreboard, the
// access log, the accept mutex, the accepted sockets) only the standard
// library, golang.org/x/sys and each other.
func TestSDKImportsAreAllowed(t *testing.T) {
	const module = "github.com/phasedhq/phased/"
	allowed := []string{module + "sdk", module + "internal", "golang.org/x/sys", "github.com/hashicorp/go-plugin", "github.com/hashicorp/go-hclog",
		"google.golang.org/grpc", "google.golang.org/protobuf", "github.com/prometheus/client_golang", "github.com/pires/go-proxyproto",
		"golang.org/x/net"}
	strict := map[string]bool{module + "internal/scoreboard": true, module + "internal/accesslog": true, module + "internal/acceptmutex": true,
		module + "internal/sockconn": true}
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Module", module+"sdk/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	n := 0
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p struct {
			ImportPath string
			Imports    []string
			Module     *struct{ Path string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Module == nil || p.Module.Path != strings.TrimSuffix(module, "/") {
			continue // the standard library and other modules
		}
		n++
		for _, imp := range p.Imports {
			std := !strings.Contains(strings.Split(imp, "/")[0], ".")
			ok := std
			for _, a := range allowed {
				if strict[p.ImportPath] && a != "golang.org/x/sys" {
					continue
				}
				ok = ok || imp == a || strings.HasPrefix(imp, a+"/")
			}
			// A hot-path package may build on another (the accept mutex
			// on sockconn's connections).
			ok = ok || strict[p.ImportPath] && strict[imp]
			if !ok {
				t.Errorf("%s imports %s, which the SDK may not", p.ImportPath, imp)
			}
		}
	}
	if n < 8 {
		t.Fatalf("go list listed only %d of phased's packages under sdk/", n)
	}
}

// TestExamplesImportOnlySDK proves that the examples, which authors copy,
// use nothing of phased but sdk/.
func TestExamplesImportOnlySDK(t *testing.T) {
	const module = "github.com/phasedhq/phased/"
	cmd := exec.Command("go", "list", "-test", "-json=ImportPath,Imports", module+"examples/...")
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
			if strings.HasPrefix(imp, module) && !strings.HasPrefix(imp, module+"sdk/") && !strings.HasPrefix(imp, module+"examples/") {
				t.Errorf("%s imports %s: examples may import only sdk/", p.ImportPath, imp)
			}
		}
	}
	if n < 3 {
		t.Fatalf("go list listed only %d example packages", n)
	}
}
