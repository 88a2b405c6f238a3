package cpuset_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/phasedhq/phased/internal/cpuset"
	"github.com/phasedhq/phased/internal/e2e"
)

// TestStart starts a process bound to one CPU: it runs there from its
// start (what it prints of itself), and no thread of this process stays
// bound after.
func TestStart(t *testing.T) {
	allowed, err := cpuset.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	cpus := cpuset.CPUs(allowed)
	var one cpuset.Set
	one.Set(cpus[len(cpus)-1])
	cmd := exec.Command("sh", "-c", "grep Cpus_allowed_list /proc/self/status")
	var out strings.Builder
	cmd.Stdout = &out
	if err := cpuset.Start(cmd, one); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(strings.TrimPrefix(out.String(), "Cpus_allowed_list:")); got != cpuset.Format(one) {
		t.Errorf("the process ran on %q, want %q", got, cpuset.Format(one))
	}
	if got := e2e.CPUsAllowed(os.Getpid()); len(got) != 1 || got[cpuset.Format(allowed)] == 0 {
		t.Errorf("the test's threads may run on %v, want all on %q", got, cpuset.Format(allowed))
	}
	if err := cpuset.Start(exec.Command("sh", "-c", "true"), cpuset.Set{}); err == nil {
		t.Error("Start on no CPUs: no error")
	}
}
