package reaper

import (
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/procfs"
)

// group starts sh leading a process group of its own with two sleeps below
// it, and returns it once the sleeps run; the group is killed at the end.
func group(t *testing.T) (*exec.Cmd, []int) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL); cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if kids := procfs.Descendants(pid); len(kids) == 2 {
			return cmd, append([]int{pid}, kids...)
		}
	}
	t.Fatalf("sh %d did not start its sleeps: %v", pid, procfs.Descendants(pid))
	return nil, nil
}

func alive(pids []int) []int {
	var out []int
	for _, p := range pids {
		if procfs.Alive(p) {
			out = append(out, p)
		}
	}
	return out
}

// TestEndGroup: EndGroup kills every process of a group below this one,
// and leaves alone a group that holds a process to keep, ids that are no
// group of a process below, and this process's own group.
func TestEndGroup(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cmd, pids := group(t)
	pgid := cmd.Process.Pid
	for _, keep := range [][]int{{pgid}, {pids[1]}} {
		if got := EndGroup(log, pgid, keep); got != nil {
			t.Errorf("EndGroup kept %v: acted on %v", keep, got)
		}
	}
	if got := EndGroup(log, syscall.Getpgrp(), nil); got != nil {
		t.Errorf("EndGroup of the test's own group acted on %v", got)
	}
	if got := EndGroup(log, 1, nil); got != nil {
		t.Errorf("EndGroup(1) acted on %v", got)
	}
	if len(alive(pids)) != 3 {
		t.Fatalf("the group lost processes it should have kept: %v of %v alive", alive(pids), pids)
	}
	got := EndGroup(log, pgid, nil)
	slices.Sort(got)
	if want := slices.Sorted(slices.Values(pids)); !slices.Equal(got, want) {
		t.Errorf("EndGroup found %v, want %v", got, want)
	}
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); len(alive(pids)) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("alive after EndGroup: %v", alive(pids))
		}
	}
	if got := EndGroup(log, pgid, nil); got != nil {
		t.Errorf("EndGroup of a group that is gone acted on %v", got)
	}
}
