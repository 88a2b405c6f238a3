package plugins

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// The hook plugin of these tests, testdata/tracehook, appends "plugin PHASE
// PASS GENERATION pid=PID" to trace.log in server_root for every phase it
// runs, and "KIND pid=P slot=S generation=G status=S" to events.log for
// every child event. HANG-PHASE and CRASH-PHASE files there make that phase
// hang or crash.

func traceHook(t *testing.T) string {
	t.Helper()
	return e2e.Build(t, "./internal/e2e/plugins/testdata/tracehook")
}

// pluginLine is one "plugin ..." line of trace.log.
type pluginLine struct {
	phase      string
	pass, gen  int
	pid        int
	traceIndex int
}

// pluginLines returns the plugin's lines of trace.log, in order.
func pluginLines(t *testing.T, dir string) []pluginLine {
	t.Helper()
	var out []pluginLine
	for i, l := range e2e.ReadTrace(t, dir) {
		var p pluginLine
		if n, _ := fmt.Sscanf(l, "plugin %s %d %d pid=%d", &p.phase, &p.pass, &p.gen, &p.pid); n == 4 {
			p.traceIndex = i
			out = append(out, p)
		}
	}
	return out
}

// waitPluginLine waits for the plugin's trace line of phase at pass.
func waitPluginLine(t *testing.T, dir, phase string, pass int) pluginLine {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, p := range pluginLines(t, dir) {
			if p.phase == phase && p.pass == pass {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no plugin trace of %s at pass %d:\n%s", phase, pass, strings.Join(e2e.ReadTrace(t, dir), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procsOf returns the processes below pid that run the program bin.
func procsOf(pid int, bin string) []int {
	var out []int
	for _, c := range e2e.Descendants(pid) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
		if argv0, _, _ := strings.Cut(string(b), "\x00"); argv0 == bin {
			out = append(out, c)
		}
	}
	return out
}

// waitEvent waits for a line of events.log that contains every one of want
// and none of the pids in not.
func waitEvent(t *testing.T, dir string, not []int, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "events.log"))
	lines:
		for _, l := range strings.Split(string(b), "\n") {
			for _, w := range want {
				if !strings.Contains(l, w) {
					continue lines
				}
			}
			for _, pid := range not {
				if strings.Contains(l, fmt.Sprintf(" pid=%d ", pid)) {
					continue lines
				}
			}
			if l != "" {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no child event with %q in events.log:\n%s", want, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHookPluginRelaunchedEveryPass: a hook plugin is a new process at each
// configuration pass (pass 1, pass 2, and the pass of a graceful restart),
// as Apache reloads its modules, and the process of a pass that is over is
// gone: pass 1's once the rehearsal is torn down, pass 2's once its
// generation has drained. The MPM plugin is relaunched the same way. On
// stop, the shutdown phase runs once, in the current pass's plugin.
func TestHookPluginRelaunchedEveryPass(t *testing.T) {
	bin := traceHook(t)
	s := e2e.StartServer(t, "hooks:\n  - {name: tracer, plugin: "+bin+", phase: post-config}\n  - {name: farewell, plugin: "+bin+", phase: shutdown}\n")
	p1 := waitPluginLine(t, s.Dir, "post-config", 1)
	p2 := waitPluginLine(t, s.Dir, "post-config", 2)
	if p1.pid == p2.pid || p1.gen != 1 || p2.gen != 1 {
		t.Fatalf("pass 1 %+v and pass 2 %+v: want two processes, generation 1", p1, p2)
	}
	e2e.WaitGone(t, []int{p1.pid}, 2*time.Second)
	loaded := procsOf(s.PID(), bin) // pass 2's: tracer and farewell
	if len(loaded) != 2 || !slices.Contains(loaded, p2.pid) {
		t.Fatalf("hook plugin processes %v, want pass 2's two (tracer %d)", loaded, p2.pid)
	}
	mpm1 := e2e.Plugins(s.PID())
	if len(mpm1) != 1 {
		t.Fatalf("MPM plugin processes %v, want 1", mpm1)
	}

	if code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("-k graceful: %d %s %s", code, out, errOut)
	}
	p3 := waitPluginLine(t, s.Dir, "post-config", 3)
	if p3.gen != 2 || p3.pid == p1.pid || p3.pid == p2.pid {
		t.Fatalf("restart pass %+v: want a new process for generation 2 (passes 1, 2: %d, %d)", p3, p1.pid, p2.pid)
	}
	s.Log.Wait(t, `"generation finished"`, 1, 10*time.Second)
	e2e.WaitGone(t, append(loaded, mpm1...), 3*time.Second)
	now := procsOf(s.PID(), bin)
	if len(now) != 2 || !slices.Contains(now, p3.pid) {
		t.Fatalf("hook plugin processes after the restart %v, want pass 3's two (tracer %d)", now, p3.pid)
	}
	if mpm2 := e2e.Plugins(s.PID()); len(mpm2) != 1 || mpm2[0] == mpm1[0] {
		t.Fatalf("MPM plugin processes after the restart %v, want one new (was %v)", mpm2, mpm1)
	}

	s.Signal(t, syscall.SIGTERM)
	if c := s.WaitExit(t, 10*time.Second); c != 0 {
		t.Fatalf("exit %d", c)
	}
	var shutdowns []pluginLine
	for _, p := range pluginLines(t, s.Dir) {
		if p.phase == "shutdown" {
			shutdowns = append(shutdowns, p)
		}
	}
	farewell := now[0]
	if farewell == p3.pid {
		farewell = now[1]
	}
	if len(shutdowns) != 1 || shutdowns[0].pass != 3 || shutdowns[0].gen != 2 || shutdowns[0].pid != farewell {
		t.Fatalf("shutdown traces %+v, want one, at pass 3 generation 2, by pid %d", shutdowns, farewell)
	}
	e2e.WaitGone(t, now, 3*time.Second)
}

// TestHookPluginSeesChildExit: the master tells a hook plugin (protocol 2)
// that a child exited, with its pid and how it ended, and that its
// replacement was spawned.
func TestHookPluginSeesChildExit(t *testing.T) {
	bin := traceHook(t)
	s := e2e.StartServer(t, "hooks:\n  - {name: tracer, plugin: "+bin+", phase: post-config}\n")
	kids := e2e.Workers(s.PID())
	if len(kids) != 2 {
		t.Fatalf("%d children, want 2", len(kids))
	}
	for _, k := range kids {
		waitEvent(t, s.Dir, nil, fmt.Sprintf("spawned pid=%d ", k), "generation=1")
	}
	if err := e2e.Kill(t, kids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	line := waitEvent(t, s.Dir, nil, fmt.Sprintf("exited pid=%d ", kids[0]))
	if !strings.Contains(line, "generation=1") || !strings.HasSuffix(line, "status=killed by signal killed") {
		t.Fatalf("exit event %q: want generation 1 and the signal", line)
	}
	var slot int
	fmt.Sscanf(line[strings.Index(line, "slot="):], "slot=%d", &slot)
	waitEvent(t, s.Dir, kids, "spawned", fmt.Sprintf("slot=%d generation=1", slot)) // its replacement
	if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
}

// TestPluginAndExecHooksOrdered: plugin and exec hooks of one phase are
// ordered together by order, before and after; the trace file they share
// shows the order they ran in, on both passes of the double start.
func TestPluginAndExecHooksOrdered(t *testing.T) {
	bin := traceHook(t)
	mark := func(dir string) {
		e2e.WriteFile(t, dir, "mark.sh", "#!/bin/sh\necho \"exec $1 $PHASED_PHASE $PHASED_PASS\" >> \"$(dirname \"$0\")/trace.log\"\n")
		os.Chmod(filepath.Join(dir, "mark.sh"), 0o755)
	}
	s := e2e.StartServer(t, `hooks:
  - {name: late, phase: post-config, exec: [./mark.sh, late], order: last, before: [tracer]}
  - {name: tracer, phase: post-config, plugin: `+bin+`}
  - {name: early, phase: post-config, exec: [./mark.sh, early], order: first}
  - {name: follower, phase: post-config, exec: [./mark.sh, follower], order: really-first, after: [tracer]}
`, mark)
	code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-S")
	if code != 0 || !strings.Contains(out, "# post-config: early (first) -> late (last) -> tracer (middle) -> follower (really-first)") {
		t.Fatalf("-S: %d\n%s\n%s", code, out, errOut)
	}
	tr := e2e.ReadTrace(t, s.Dir)
	for i, l := range tr {
		if strings.HasPrefix(l, "plugin ") {
			tr[i] = strings.Join(strings.Fields(l)[:4], " ") // without the pid
		}
	}
	e2e.EqualLines(t, "post-config, passes 1 and 2", tr, []string{
		"exec early post-config 1", "exec late post-config 1", "plugin post-config 1 1", "exec follower post-config 1",
		"exec early post-config 2", "exec late post-config 2", "plugin post-config 2 1", "exec follower post-config 2",
	})
}

// TestHookPluginTimeout: a hook plugin that outruns its timeout fails the
// pass with an error naming the hook and the phase: at start phased exits 1,
// on a graceful restart the old generation keeps serving and -k graceful
// exits 1. The hanging plugin process does not survive either.
func TestHookPluginTimeout(t *testing.T) {
	bin := traceHook(t)
	hooks := "hooks:\n  - {name: slow, plugin: " + bin + ", phase: post-config, timeout: 500ms}\n"
	const want = `hook "slow" (post-config): timed out after 500ms`

	t.Run("start", func(t *testing.T) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
		e2e.WriteFile(t, dir, "HANG-post-config", "")
		conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(e2e.FreePort(t), hooks))
		start := time.Now()
		code, _, errOut := e2e.Run(t, dir, nil, "-f", conf)
		if code != 1 || !strings.Contains(errOut, want) {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Fatalf("a 500ms timeout took %s to fail the start", d)
		}
		e2e.WaitGone(t, []int{waitPluginLine(t, dir, "post-config", 1).pid}, 3*time.Second)
		if _, err := os.Stat(filepath.Join(dir, "run/phased.pid")); !os.IsNotExist(err) {
			t.Fatal("failed start left its pid file")
		}
	})

	t.Run("graceful", func(t *testing.T) {
		s := e2e.StartServer(t, hooks)
		kids := e2e.Sorted(e2e.Workers(s.PID()))
		e2e.WriteFile(t, s.Dir, "HANG-post-config", "")
		code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful")
		if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "old generation keeps serving") {
			t.Fatalf("-k graceful: exit %d %s", code, errOut)
		}
		e2e.WaitGone(t, []int{waitPluginLine(t, s.Dir, "post-config", 3).pid}, 3*time.Second)
		if now := e2e.Sorted(e2e.Workers(s.PID())); !slices.Equal(now, kids) {
			t.Fatalf("children changed from %v to %v", kids, now)
		}
		if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
			t.Fatalf("not serving after the failed restart: %d %v", code, err)
		}
		os.Remove(filepath.Join(s.Dir, "HANG-post-config"))
		if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
			t.Fatalf("restart once the plugin answers: %d %s", code, errOut)
		}
	})
}

// TestKilledMasterLeavesNoPlugin: after kill -9 of the master, no plugin
// process is left (the parent-death signal), whether a hook plugin is in
// the middle of a phase or loaded beside the MPM plugin and the children.
func TestKilledMasterLeavesNoPlugin(t *testing.T) {
	bin := traceHook(t)
	hooks := "hooks:\n  - {name: tracer, plugin: " + bin + ", phase: post-config}\n"
	check := func(t *testing.T, p *e2e.Proc, hookPID int) {
		t.Helper()
		below := e2e.Descendants(p.PID())
		if !slices.Contains(below, hookPID) || len(e2e.Plugins(p.PID())) != 1 {
			t.Fatalf("processes below the master %v: want the hook plugin %d and an MPM plugin", below, hookPID)
		}
		t.Cleanup(func() { // orphans, if the test fails, are no longer below the master
			for _, pid := range below {
				if e2e.Alive(pid) {
					e2e.Kill(t, pid, syscall.SIGKILL)
				}
			}
		})
		p.Signal(t, syscall.SIGKILL)
		p.WaitExit(t, 5*time.Second)
		e2e.WaitGone(t, below, 5*time.Second)
	}

	t.Run("mid-phase", func(t *testing.T) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
		e2e.WriteFile(t, dir, "HANG-post-config", "")
		conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(e2e.FreePort(t), hooks))
		p := e2e.Start(t, dir, nil, "-f", conf)
		check(t, p, waitPluginLine(t, dir, "post-config", 1).pid)
	})

	t.Run("serving", func(t *testing.T) {
		s := e2e.StartServer(t, hooks)
		if len(e2e.Workers(s.PID())) == 0 {
			t.Fatal("no children")
		}
		check(t, s.Proc, waitPluginLine(t, s.Dir, "post-config", 2).pid)
	})
}

// pluginEnv is what a plugin process may find in its environment: the
// variables host.Launch keeps from the master's (docs/plugins.md), phased's
// own and go-plugin's handshake variables.
var pluginEnv = []string{
	"PATH", "HOME", "LANG", "TZ", "TMPDIR", "GORACE",
	"PHASED_PLUGIN", "PHASED_PLUGIN_LOG_LEVEL",
	"PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_UNIX_SOCKET_DIR", "PLUGIN_UNIX_SOCKET_GROUP",
}

// TestPluginEnvironmentIsClean: neither a hook plugin nor the MPM plugin
// inherits the master's environment beyond the documented variables.
func TestPluginEnvironmentIsClean(t *testing.T) {
	bin := traceHook(t)
	dir := t.TempDir()
	addr := e2e.FreePort(t)
	e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, "hooks:\n  - {name: tracer, plugin: "+bin+", phase: post-config}\n"))
	p := e2e.Start(t, dir, []string{"FOO_SECRET=hunter2", "LANG=C.UTF-8"}, "-f", conf)
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	master, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.PID()))
	if !bytes.Contains(master, []byte("FOO_SECRET=hunter2")) {
		t.Fatal("the master itself lacks FOO_SECRET: the test proves nothing")
	}
	hooks, mpms := procsOf(p.PID(), bin), e2e.Plugins(p.PID())
	if len(hooks) != 1 || len(mpms) != 1 {
		t.Fatalf("hook plugins %v, MPM plugins %v: want one each", hooks, mpms)
	}
	for _, pid := range append(hooks, mpms...) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
			name, _, _ := strings.Cut(kv, "=")
			names = append(names, name)
			if !slices.Contains(pluginEnv, name) {
				t.Errorf("plugin %d has %s in its environment", pid, kv)
			}
		}
		if !slices.Contains(names, "LANG") || !slices.Contains(names, "PATH") {
			t.Errorf("plugin %d lacks PATH or LANG: %v", pid, names)
		}
	}
}
