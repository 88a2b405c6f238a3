package plugins

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// TestThirdPartyMPMOndemand runs examples/mpm-ondemand as the MPM: no child
// until a connection waits, children retired once idle.
func TestThirdPartyMPMOndemand(t *testing.T) {
	bin := e2e.Build(t, "./examples/mpm-ondemand")
	s := e2e.StartMPM(t, "mpm: {name: "+bin+", max_children: 3, process_idle_timeout: 2s}\n")
	if n := len(e2e.Workers(s.PID())); n != 0 {
		t.Fatalf("%d children at start, want 0", n)
	}
	start := time.Now()
	code, body, err := e2e.Get(s.URL("/hello.txt"))
	if code != 200 || body != "hello\n" {
		t.Fatalf("first request: %d %q %v", code, body, err)
	}
	t.Logf("first request answered after %s (waited in the accept queue for a child)", time.Since(start).Round(time.Millisecond))
	if n := len(e2e.Workers(s.PID())); n < 1 {
		t.Fatal("no child after the first request")
	}
	s.WaitChildren(t, 0, 10*time.Second)
}

// TestHookPlugin runs examples/hook-warmup as a post-config hook plugin: it
// runs on both passes (counting on the rehearsal, writing on the real one)
// and, speaking protocol 2, hears of every child.
func TestHookPlugin(t *testing.T) {
	bin := e2e.Build(t, "./examples/hook-warmup")
	s := e2e.StartServer(t, "hooks:\n  - {name: warmup, plugin: "+bin+", phase: post-config, timeout: 10s}\n")
	index := filepath.Join(s.Dir, "warmup.index")
	b, err := os.ReadFile(index)
	if err != nil || !strings.Contains(string(b), "hello.txt") {
		t.Fatalf("warmup index: %v\n%s", err, b)
	}
	s.Log.Wait(t, "child spawned", 2, 5*time.Second)
	for _, r := range s.Log.Records("child spawned") {
		if !strings.Contains(r["plugin"].(string), "warmup") {
			t.Fatalf("plugin record without its name: %v", r)
		}
	}
	// And its configure phase can reject a configuration, naming the key.
	dir := t.TempDir()
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config("127.0.0.1:8080",
		"hooks:\n  - {name: warmup-check, plugin: "+bin+", phase: configure}\n"))
	code, _, errOut := e2e.Run(t, dir, nil, "-f", conf, "-t")
	if code != 1 || !strings.Contains(errOut, `hook "warmup-check" (configure)`) || !strings.Contains(errOut, "document_root") {
		t.Fatalf("-t with a missing document_root: %d %s", code, errOut)
	}
}

// TestHookPluginDyingMidPhase: a hook plugin that dies in its phase fails
// the pass naming it; on a graceful restart the old generation keeps serving.
func TestHookPluginDyingMidPhase(t *testing.T) {
	bin := traceHook(t)
	s := e2e.StartServer(t, "hooks:\n  - {name: crashy, plugin: "+bin+", phase: post-config}\n")
	e2e.WriteFile(t, s.Dir, "CRASH-post-config", "")
	code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful")
	if code != 1 || !strings.Contains(errOut, `hook "crashy" (post-config)`) || !strings.Contains(errOut, "exited during the phase") ||
		!strings.Contains(errOut, "old generation keeps serving") {
		t.Fatalf("-k graceful: %d %s", code, errOut)
	}
	if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
		t.Fatalf("not serving: %d %v", code, err)
	}
}
