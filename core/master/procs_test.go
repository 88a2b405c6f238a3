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
		{mpm.Worker, 2, (runtime.NumCPU() + 1) / 2},
		{mpm.Worker, 3 * runtime.NumCPU(), 1},
		{mpm.Event, 0, 0}, // one child alone: every core
		{mpm.Event, 1, 0},
		{mpm.Event, 2, (runtime.NumCPU() + 1) / 2},
		{mpm.Event, runtime.NumCPU(), 1},
		{mpm.Event, 2 * runtime.NumCPU(), 1},
	} {
		l := &mpm.ConfigureResponse{Model: tt.model, StartServers: tt.start}
		if got := childProcs(l); got != tt.want {
			t.Errorf("%s, start_servers %d: GOMAXPROCS %d, want %d", tt.model, tt.start, got, tt.want)
		}
	}
}
