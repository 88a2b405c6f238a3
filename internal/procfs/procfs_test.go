package procfs

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestTreeAndMemory(t *testing.T) {
	// sh starts a sleep below it: a process with a descendant.
	cmd := exec.Command("/bin/sh", "-c", "sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var kids []int
	for deadline := time.Now().Add(5 * time.Second); len(kids) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		kids = Descendants(cmd.Process.Pid)
	}
	if len(kids) != 1 || !Alive(kids[0]) {
		t.Fatalf("descendants of sh: %v", kids)
	}
	defer func() {
		if p, err := os.FindProcess(kids[0]); err == nil {
			p.Kill()
		}
	}()
	if !slices.Contains(Children(cmd.Process.Pid), kids[0]) {
		t.Fatalf("children %v", Children(cmd.Process.Pid))
	}
	one, tree := Memory(cmd.Process.Pid), TreeMemory(cmd.Process.Pid)
	if one <= 0 || tree <= one {
		t.Fatalf("memory %d, with its descendant %d: want more with it", one, tree)
	}
	// The sleep is below sh and below the test, by its parent ids; the
	// test is below neither, and every one of them is in Pids.
	if !Below(kids[0], cmd.Process.Pid) || !Below(kids[0], os.Getpid()) || Below(os.Getpid(), cmd.Process.Pid) || Below(1<<30, 1) {
		t.Fatalf("Below: the sleep %d below sh %d and the test %d: %v %v; the test below sh: %v",
			kids[0], cmd.Process.Pid, os.Getpid(), Below(kids[0], cmd.Process.Pid), Below(kids[0], os.Getpid()), Below(os.Getpid(), cmd.Process.Pid))
	}
	if pids := Pids(); !slices.Contains(pids, kids[0]) || !slices.Contains(pids, os.Getpid()) {
		t.Fatalf("Pids lacks the sleep %d or the test %d", kids[0], os.Getpid())
	}
	if Pgid(kids[0]) != Pgid(os.Getpid()) || Pgid(os.Getpid()) == 0 {
		t.Fatalf("the sleep's process group is %d, the test's %d; want the same", Pgid(kids[0]), Pgid(os.Getpid()))
	}
	if Memory(1<<30) != 0 || Alive(1<<30) || Pgid(1<<30) != 0 {
		t.Fatal("a process that does not exist has memory or is alive")
	}
}
