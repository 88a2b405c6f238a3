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
	// The MPM names itself: "ondemand", not its file's path, on the status
	// page, in metrics' labels and in phased status.
	_, auto, _ := e2e.Get(s.URL("/server-status?auto"))
	if !strings.Contains(auto, "ServerMPM: ondemand\n") {
		t.Errorf("status page:\n%s", auto)
	}
	if st := s.Status(t); st["mpm"] != "ondemand" {
		t.Errorf("phased status: mpm %v, want ondemand", st["mpm"])
	}
	_, metrics, _ := e2e.Get(s.URL("/metrics"))
	if strings.Contains(metrics, bin) {
		t.Errorf("metrics name the MPM by its path %s", bin)
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

// TestHookPluginSettings: a hook entry's settings reach the plugin
// (examples/hook-warmup writes its index where its index setting says), a
// setting the plugin refuses fails -t and the start naming
// hooks[i].settings.KEY, and a plugin of an older protocol, which could not
// read them, fails naming hooks[i].settings rather than ignore them; it
// still runs without settings.
func TestHookPluginSettings(t *testing.T) {
	bin := e2e.Build(t, "./examples/hook-warmup")
	s := e2e.StartServer(t, "hooks:\n  - {name: warmup, plugin: "+bin+", phase: post-config, settings: {index: var/site.index}}\n",
		func(dir string) { os.MkdirAll(filepath.Join(dir, "var"), 0o755) })
	if b, err := os.ReadFile(filepath.Join(s.Dir, "var/site.index")); err != nil || !strings.Contains(string(b), "hello.txt") {
		t.Fatalf("index at the setting's path: %v\n%s", err, b)
	}

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(e2e.FreePort(t),
		"hooks:\n  - {name: warmup, plugin: "+bin+", phase: post-config, settings: {indx: var/site.index}}\n"))
	code, _, errOut := e2e.Run(t, dir, nil, "-f", conf, "-t")
	if code != 1 || !strings.Contains(errOut, "hooks[0].settings.indx: the one setting is index") {
		t.Fatalf("-t with a setting the plugin refuses: %d %s", code, errOut)
	}
	p := e2e.Start(t, dir, nil, "-f", conf)
	if code := p.WaitExit(t, 30*time.Second); code != 1 || !strings.Contains(p.Log.String(), "hooks[0].settings.indx") {
		t.Fatalf("start with a setting the plugin refuses: exit %d\n%s", code, p.Log)
	}

	old := e2e.Build(t, "./internal/e2e/plugins/testdata/tracehook")
	e2e.WriteFile(t, dir, "PROTOCOL-2", "")
	conf = e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(e2e.FreePort(t),
		"hooks:\n  - {name: old, plugin: "+old+", phase: post-config, settings: {a: 1}}\n"))
	code, _, errOut = e2e.Run(t, dir, nil, "-f", conf, "-t")
	if code != 1 || !strings.Contains(errOut, "hooks[0].settings: plugin") || !strings.Contains(errOut, "protocol 2") {
		t.Fatalf("-t with settings for a protocol 2 plugin: %d %s", code, errOut)
	}
	conf = e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(e2e.FreePort(t),
		"hooks:\n  - {name: old, plugin: "+old+", phase: post-config}\n"))
	if code, out, errOut := e2e.Run(t, dir, nil, "-f", conf, "-t"); code != 0 {
		t.Fatalf("-t with a protocol 2 plugin and no settings: %d %s %s", code, out, errOut)
	}
}
