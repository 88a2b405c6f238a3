package apps

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/cpuset"
	"github.com/phasedhq/phased/internal/e2e"
)

// TestWorkerCPUAffinity runs two event children in front of node apps
// with worker_cpu_affinity: auto, then with a CPU list per slot, and
// looks at where each process may run: a child, every thread of it, its
// app server and that server's processes on their slot's CPUs (as phased
// status says), the master on all of them; a bad list is refused by
// phased -t and by a graceful restart, which leaves the children serving
// where they were.
func TestWorkerCPUAffinity(t *testing.T) {
	allowed, err := cpuset.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	cpus := cpuset.CPUs(allowed)
	all := cpuset.Format(allowed)
	group := func(slot int) string { return e2e.AutoCPUs(t, slot, 2) }
	mpm := "mpm: {name: event, start_servers: 2, server_limit: 2, threads_per_child: 2, min_spare_threads: 1, max_spare_threads: 4, max_request_workers: 4}\n"
	app := nodeApp(t, []string{"--socket={socket}"}, "")
	s := e2e.StartServer(t, mpm+app+"worker_cpu_affinity: auto\n")

	check := func(t *testing.T, slotCPUs func(int) string, not []int) []int {
		t.Helper()
		waitApps(t, s, 2, not, 20*time.Second)
		var kids []int
		for _, c := range appStatus(t, s) {
			if c.State != "ready" {
				continue
			}
			want := slotCPUs(c.Slot)
			if c.CPUs != want {
				t.Errorf("phased status: child %d in slot %d on CPUs %q, want %q", c.PID, c.Slot, c.CPUs, want)
			}
			e2e.OnlyOn(t, fmt.Sprintf("child %d in slot %d", c.PID, c.Slot), []int{c.PID}, want)
			e2e.OnlyOn(t, fmt.Sprintf("slot %d's app server", c.Slot), append([]int{c.AppPID}, e2e.Descendants(c.AppPID)...), want)
			if n, _ := strconv.Atoi(e2e.Env(t, c.PID, "GOMAXPROCS")); n < 1 || n > cpuCount(want) {
				t.Errorf("child %d: GOMAXPROCS %d, bound to %s", c.PID, n, want)
			}
			kids = append(kids, c.PID)
		}
		if len(kids) != 2 {
			t.Fatalf("%d ready children, want 2", len(kids))
		}
		e2e.OnlyOn(t, "the master", []int{s.PID()}, all)
		for range 4 {
			if code, body, err := e2e.Get(s.URL("/stats")); code != http.StatusOK {
				t.Fatalf("GET /stats: %d %v %q", code, err, body)
			}
		}
		return kids
	}
	check(t, group, nil)

	// One list per slot, taken in turn: the last CPU first.
	last, first := strconv.Itoa(cpus[len(cpus)-1]), strconv.Itoa(cpus[0])
	before := appPIDs(t, s)
	e2e.WriteFile(t, s.Dir, "phased.yaml", e2e.Config(s.Addr, mpm+app+fmt.Sprintf("worker_cpu_affinity: %q\n", last+" "+first)))
	if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("-k graceful: %s", errOut)
	}
	kids := check(t, func(slot int) string { return map[int]string{0: last, 1: first}[slot%2] }, before)

	// A CPU phased may not run on, and a list that is none.
	for _, bad := range []struct{ value, want string }{
		{strconv.Itoa(cpus[len(cpus)-1] + 1), "is not one phased may run on"},
		{"0-", "is not a CPU list"},
		{"3-1", "runs backwards"},
	} {
		conf := e2e.WriteFile(t, s.Dir, "phased.yaml", e2e.Config(s.Addr, mpm+app+fmt.Sprintf("worker_cpu_affinity: %q\n", bad.value)))
		code, out, errOut := e2e.Run(t, s.Dir, nil, "-t", "-f", conf)
		if code == 0 || !strings.Contains(out+errOut, "worker_cpu_affinity") || !strings.Contains(out+errOut, bad.want) {
			t.Errorf("phased -t with %q: exit %d, %q; want an error naming worker_cpu_affinity with %q", bad.value, code, out+errOut, bad.want)
		}
		code, _, errOut = e2e.Run(t, s.Dir, nil, "-f", conf, "-k", "graceful")
		if code != 1 || !strings.Contains(errOut, "worker_cpu_affinity") {
			t.Errorf("-k graceful with %q: exit %d, %q; want 1 naming worker_cpu_affinity", bad.value, code, errOut)
		}
	}
	for _, c := range appStatus(t, s) {
		if !slices.Contains(kids, c.PID) {
			t.Errorf("child %d (%s) is new after refused restarts; the children were %v", c.PID, c.State, kids)
		}
	}
	if code, body, err := e2e.Get(s.URL("/stats")); code != http.StatusOK {
		t.Fatalf("after the refused restarts: %d %v %q", code, err, body)
	}
}

// cpuCount is how many CPUs a CPU list ("0-3,8") names.
func cpuCount(list string) int {
	set, err := cpuset.ParseList(list)
	if err != nil {
		return 0
	}
	return set.Count()
}
