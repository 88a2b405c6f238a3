package skeleton

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
	"github.com/phasedhq/phased/internal/procfs"
)

// TestGoodParent: what hooks leave behind is the master's. A hook's orphan
// that exits is reaped (no zombie), one that runs on is ended when the
// master stops (no stray process), whether the master is PID 1 of a PID
// namespace (a container) or a process among others (a subreaper).
func TestGoodParent(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		name := "subreaper"
		if pid1 {
			name = "pid 1"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			addr := e2e.FreePort(t)
			e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
			os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
			conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, `error_log: {path: stderr, level: debug, format: json}
hooks:
  - {name: runaway, phase: post-config, exec: [/bin/sh, -c, "sleep 300 >/dev/null 2>&1 &"]}
  - {name: shortlived, phase: post-config, exec: [/bin/sh, -c, "(sleep 0.3; exit 3) >/dev/null 2>&1 &"]}
`))
			argv := []string{e2e.Binary(t), "-f", conf}
			if pid1 {
				argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc"}, argv...)
			}
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Dir = dir
			cmd.Env = e2e.Environ(t)
			out, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var log strings.Builder
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					mu.Lock()
					log.WriteString(sc.Text() + "\n")
					mu.Unlock()
				}
			}()
			logged := func(s string) bool { mu.Lock(); defer mu.Unlock(); return strings.Contains(log.String(), s) }
			top := cmd.Process.Pid
			t.Cleanup(func() {
				for _, p := range append(procfs.Descendants(top), top) {
					syscall.Kill(p, syscall.SIGKILL)
				}
				cmd.Wait()
			})
			for deadline := time.Now().Add(20 * time.Second); !logged("resuming normal operations"); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					mu.Lock()
					t.Fatalf("not serving:\n%s", log.String())
				}
			}
			master := top
			if pid1 {
				master = procfs.Children(top)[0] // unshare's child is the namespace's PID 1
			}
			// Both hooks' children were orphaned, twice (pass 1 and pass 2),
			// and reparented to the master.
			runaway := func() []int {
				var out []int
				for _, p := range procfs.Descendants(master) {
					if b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "cmdline")); strings.HasPrefix(string(b), "sleep\x00300") && procfs.Alive(p) {
						out = append(out, p)
					}
				}
				return out
			}
			sleeps := runaway()
			if len(sleeps) != 2 {
				t.Fatalf("the runaway hook's sleeps below the master: %v, want two (one a pass)", sleeps)
			}
			// The short-lived ones exited and were reaped: no zombie is left.
			for deadline := time.Now().Add(10 * time.Second); strings.Count(func() string { mu.Lock(); defer mu.Unlock(); return log.String() }(), "reaped an orphaned process") < 2; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					mu.Lock()
					t.Fatalf("the short-lived orphans were not reaped:\n%s", log.String())
				}
			}
			var zombies []int
			for deadline := time.Now().Add(6 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				zombies = slices.DeleteFunc(procfs.Descendants(master), func(p int) bool { return !procfs.Zombie(p) })
				if len(zombies) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("zombies below the master: %v", zombies)
				}
			}
			syscall.Kill(master, syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("phased exited with %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("phased did not stop")
			}
			for _, p := range sleeps {
				if procfs.Alive(p) {
					mu.Lock()
					t.Fatalf("after stop, sleep %d is left behind\n%s", p, log.String())
				}
			}
			if !logged("ending processes left behind") {
				mu.Lock()
				t.Fatalf("the master did not say it ended what was left behind:\n%s", log.String())
			}
		})
	}
}
