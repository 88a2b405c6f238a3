package sdktest_test

import (
	"testing"
	"time"

	"github.com/phasedhq/phased/sdk/mpm"
	"github.com/phasedhq/phased/sdk/sdktest"
)

// BenchmarkMaintainInProcess is one Maintain round trip through the gRPC
// path, in-process, with a 16-child snapshot (plugins/host's
// BenchmarkMaintainProcess is the same to a plugin process).
func BenchmarkMaintainInProcess(b *testing.B) {
	m := sdktest.MPM(b, &echoMPM{maintain: &mpm.MaintainResponse{Actions: []mpm.Action{{Kind: mpm.Spawn, Count: 1}}}})
	req := &mpm.MaintainRequest{Now: time.Now(), Generation: 1, Listeners: []mpm.Listener{{Addr: "127.0.0.1:8080"}}}
	for i := range 16 {
		req.Children = append(req.Children, mpm.Child{Slot: i, PID: 1000 + i, State: mpm.ChildReady, IdleSlots: 20, BusySlots: 5, Started: time.Now()})
	}
	for b.Loop() {
		if _, err := m.Maintain(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}
