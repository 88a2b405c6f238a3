package master

import (
	"strings"
	"testing"
)

// TestWriteStatusApps: the table shows each child's app server and its
// memory when a child owns one, and stays as it was when none does.
func TestWriteStatusApps(t *testing.T) {
	s := Status{PID: 10, Uptime: "1m0s", Generation: 1, MPM: "prefork", Listen: []string{"127.0.0.1:80"}, Scoreboard: "_W",
		Children: []ChildStatus{
			{PID: 11, Generation: 1, Slot: 0, State: "ready", Uptime: "1m0s", Requests: 3, Bytes: 300, AppPID: 21, AppMemory: 42 << 20},
			{PID: 12, Generation: 1, Slot: 1, State: "starting", Uptime: "0s"},
		}}
	var b strings.Builder
	WriteStatus(&b, s)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"PID      GEN  SLOT STATE     UPTIME   BUSY  REQUESTS  BYTES       APP PID  APP MEM",
		"11       1    0    ready     1m0s     0     3         300         21       42.0M",
		"12       1    1    starting  0s       0     0         0",
	}
	if got := lines[len(lines)-3:]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("with an app:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	s.Children = s.Children[1:]
	b.Reset()
	WriteStatus(&b, s)
	lines = strings.Split(strings.TrimSpace(b.String()), "\n")
	want = []string{
		"PID      GEN  SLOT STATE     UPTIME   BUSY  REQUESTS  BYTES",
		"12       1    1    starting  0s       0     0         0",
	}
	if got := lines[len(lines)-2:]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("without apps:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestWriteStatusBackoff: the back-off line appears while children keep
// dying, and never as "0 in a row".
func TestWriteStatusBackoff(t *testing.T) {
	for _, tt := range []struct {
		crashes int
		want    bool
	}{{0, false}, {2, true}} {
		var b strings.Builder
		WriteStatus(&b, Status{Crashes: tt.crashes, LastExit: "exit status 1", BackoffUntil: "2030-01-01T00:00:00Z"})
		if got := strings.Contains(b.String(), "children keep dying"); got != tt.want {
			t.Errorf("%d crashes: back-off line shown %v, want %v:\n%s", tt.crashes, got, tt.want, b.String())
		}
		if strings.Contains(b.String(), "(0 in a row") {
			t.Errorf("%d crashes:\n%s", tt.crashes, b.String())
		}
	}
}

// TestWriteStatusCPUs: a column of each child's CPUs when children are
// bound (worker_cpu_affinity), before the app's.
func TestWriteStatusCPUs(t *testing.T) {
	s := Status{PID: 10, Uptime: "1m0s", Generation: 2, MPM: "event", Listen: []string{"127.0.0.1:80"}, Scoreboard: "__",
		Children: []ChildStatus{
			{PID: 11, Generation: 2, Slot: 0, State: "ready", Uptime: "1m0s", AppPID: 21, AppMemory: 42 << 20, CPUs: "0-3"},
			{PID: 12, Generation: 2, Slot: 1, State: "ready", Uptime: "1m0s", AppPID: 22, AppMemory: 42 << 20, CPUs: "4-7"},
			{PID: 13, Generation: 1, Slot: 0, State: "retiring", Uptime: "2m0s", AppPID: 23, AppMemory: 42 << 20},
		}}
	var b strings.Builder
	WriteStatus(&b, s)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"PID      GEN  SLOT STATE     UPTIME   BUSY  REQUESTS  BYTES       CPUS     APP PID  APP MEM",
		"11       2    0    ready     1m0s     0     0         0           0-3      21       42.0M",
		"12       2    1    ready     1m0s     0     0         0           4-7      22       42.0M",
		"13       1    0    retiring  2m0s     0     0         0           -        23       42.0M",
	}
	if got := lines[len(lines)-4:]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("bound:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
