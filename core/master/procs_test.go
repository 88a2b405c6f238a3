package master

import (
	"runtime"
	"testing"

	"github.com/phasedhq/phased/sdk/mpm"
)

func TestChildProcs(t *testing.T) {
	for _, tt := range []struct {
		model mpm.Model
		start int
		want  int
	}{
		{mpm.Prefork, 4, 1},
		{mpm.Prefork, 0, 1},
		{mpm.Worker, 1, 0}, // one child alone: every core
		{mpm.Worker, 2, (runtime.GOMAXPROCS(0) + 1) / 2},
		{mpm.Worker, 3 * runtime.GOMAXPROCS(0), 1},
		{mpm.Event, 0, 0}, // one child alone: every core
		{mpm.Event, 1, 0},
		{mpm.Event, 2, (runtime.GOMAXPROCS(0) + 1) / 2},
		{mpm.Event, runtime.GOMAXPROCS(0), 1},
		{mpm.Event, 2 * runtime.GOMAXPROCS(0), 1},
	} {
		l := &mpm.ConfigureResponse{Model: tt.model, StartServers: tt.start}
		if got := childProcs(l); got != tt.want {
			t.Errorf("%s, start_servers %d: GOMAXPROCS %d, want %d", tt.model, tt.start, got, tt.want)
		}
	}
}

// TestChildProcsFollowTheMaster: a threaded child's share is of the cores
// the master's runtime uses (its GOMAXPROCS: a container's CPU limit
// included), not of every CPU the machine has.
func TestChildProcsFollowTheMaster(t *testing.T) {
	prev := runtime.GOMAXPROCS(8 * runtime.NumCPU())
	defer runtime.GOMAXPROCS(prev)
	l := &mpm.ConfigureResponse{Model: mpm.Event, StartServers: 2}
	if got, want := childProcs(l), 4*runtime.NumCPU(); got != want {
		t.Fatalf("master GOMAXPROCS %d, 2 children: GOMAXPROCS %d each, want %d", 8*runtime.NumCPU(), got, want)
	}
	runtime.GOMAXPROCS(1)
	if got := childProcs(l); got != 1 {
		t.Fatalf("master GOMAXPROCS 1, 2 children: GOMAXPROCS %d each, want 1", got)
	}
}

// TestQueuedForSlots: the master asks for maintenance within a beat when
// connections wait in an accept queue for prefork or worker children, not
// for event children (which accept while they have room for connections)
// nor with every queue empty.
func TestQueuedForSlots(t *testing.T) {
	for _, tt := range []struct {
		models []mpm.Model
		depths []int
		want   bool
	}{
		{[]mpm.Model{mpm.Prefork}, []int{0, 3}, true},
		{[]mpm.Model{mpm.Worker}, []int{1}, true},
		{[]mpm.Model{mpm.Prefork}, []int{0, 0}, false},
		{[]mpm.Model{mpm.Event}, []int{40}, false},
		{[]mpm.Model{mpm.Event, mpm.Prefork}, []int{40}, true}, // a swap from event to prefork
	} {
		m := &Master{gens: map[int]*generation{}}
		for i, model := range tt.models {
			m.gens[i+1] = &generation{num: i + 1, limits: &mpm.ConfigureResponse{Model: model}}
		}
		for _, d := range tt.depths {
			m.queues = append(m.queues, mpm.Listener{QueueDepth: d})
		}
		if got := m.queuedForSlots(); got != tt.want {
			t.Errorf("%v with queues %v: %v, want %v", tt.models, tt.depths, got, tt.want)
		}
	}
}
