package worker

import (
	"context"
	"slices"
	"testing"

	"github.com/phasedhq/phased/plugins/mpm/internal/policy"
	"github.com/phasedhq/phased/plugins/mpm/internal/sim"
	"github.com/phasedhq/phased/sdk/mpm"
)

// workedExample is the worked example of worker-MPM process control in
// Hitachi's HTTP Server manual (its figure 4-5; the manual that also
// documents HWSKeepStartServers):
//
//	ServerLimit 3, StartServers 1, MinSpareThreads 4, MaxSpareThreads 12,
//	ThreadsPerChild 5, MaxClients 15
//
// worker_check_config keeps every value: 15 / 5 = 3 servers, within
// ServerLimit; 12 >= 4 + 5 + 1, so max_spare_threads stands.
var workedExample = map[string]any{
	"server_limit":      3,
	"start_servers":     1,
	"min_spare_threads": 4,
	"max_spare_threads": 12,
	"threads_per_child": 5,
	"max_clients":       15,
}

// step is one tick of a scripted load and what Apache's
// perform_idle_server_maintenance makes of it.
type step struct {
	load int // busy threads the clients want
	// children, idle: what the tick sees (children not retiring, their
	// idle threads).
	children, idle int
	spawn          int    // children spawned
	retire         []int  // slots retired
	warn           string // the warn log, if any
	rate           int    // idle_spawn_rate after the tick
}

func runScript(t *testing.T, settings map[string]any, script []step) {
	t.Helper()
	runScriptWith(t, settings, script, nil)
}

// runScriptWith runs script, calling before(s, i) ahead of tick i.
func runScriptWith(t *testing.T, settings map[string]any, script []step, before func(s *sim.Sim, tick int)) {
	t.Helper()
	ctx := context.Background()
	p := newPolicy()
	s, _, err := sim.New(ctx, p, settings)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range script {
		if before != nil {
			before(s, i)
		}
		snap, err := s.Step(ctx, want.load)
		if err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
		resp := snap.Response
		rate, _ := p.Core().SpawnRate()
		var warn string
		if w := sim.Messages(resp, mpm.LevelWarn); len(w) > 0 {
			warn = w[0]
		}
		got := step{load: want.load, children: snap.Children, idle: snap.Idle, spawn: sim.Spawned(resp),
			retire: sim.Retired(resp), warn: warn, rate: rate}
		if got.children != want.children || got.idle != want.idle || got.spawn != want.spawn ||
			!slices.Equal(got.retire, want.retire) || got.warn != want.warn || got.rate != want.rate {
			t.Errorf("tick %d (load %d):\n got children=%d idle=%d spawn=%d retire=%v rate=%d warn=%q\nwant children=%d idle=%d spawn=%d retire=%v rate=%d warn=%q",
				i, want.load, got.children, got.idle, got.spawn, got.retire, got.rate, got.warn,
				want.children, want.idle, want.spawn, want.retire, want.rate, want.warn)
		}
	}
}

// TestWorkedExample replays the worked example under a scripted load. Each row is
// what Apache 2.4's worker MPM does with that snapshot; the comments give the
// branch of perform_idle_server_maintenance taken.
func TestWorkedExample(t *testing.T) {
	runScript(t, workedExample, []step{
		// Tick 0: the generation has no child yet; the first tick starts
		// StartServers (1) children and does nothing else.
		{load: 0, children: 0, idle: 0, spawn: 1, rate: 1},
		// One child, 5 idle threads: 4 <= 5 <= 12, nothing to do.
		{load: 0, children: 1, idle: 5, rate: 1},
		// 2 busy: idle 3 < MinSpareThreads 4. Two slots are free; the rate
		// is 1, so one child is spawned and the rate doubles to 2.
		{load: 2, children: 1, idle: 3, spawn: 1, rate: 2},
		// Two children, 8 idle: within bounds, the rate falls back to 1.
		{load: 2, children: 2, idle: 8, rate: 1},
		// 7 busy: idle 3 < 4, one free slot, spawn 1, rate 2.
		{load: 7, children: 2, idle: 3, spawn: 1, rate: 2},
		// Three children (ServerLimit): 12 busy leaves 3 idle < 4 but no
		// slot is free. Some threads are still idle, so this is Apache's
		// "within MinSpareThreads of MaxRequestWorkers"; the rate resets.
		{load: 12, children: 3, idle: 3, warn: policy.MsgNearMax, rate: 1},
		// Load beyond MaxClients (20 > 15): every thread busy, no slot
		// free: "reached max_request_workers", logged on every such tick
		// (Apache logs it once per lifetime).
		{load: 20, children: 3, idle: 0, warn: policy.MsgReachedMax, rate: 1},
		{load: 20, children: 3, idle: 0, warn: policy.MsgReachedMax, rate: 1},
		{load: 18, children: 3, idle: 0, warn: policy.MsgReachedMax, rate: 1},
		// The load falls to 3: idle 12 is not above MaxSpareThreads 12.
		{load: 3, children: 3, idle: 12, rate: 1},
		// No load: idle 15 > 12, one child is retired: the highest slot
		// whose threads are all idle (slot 2).
		{load: 0, children: 3, idle: 15, retire: []int{2}, rate: 1},
		// It is gone: two children, 10 idle <= 12. Two children can never
		// have more than 10 idle threads, so the server stays at two, above
		// StartServers 1: StartServers only matters at start.
		{load: 0, children: 2, idle: 10, rate: 1},
		{load: 0, children: 2, idle: 10, rate: 1},
		// A burst of 10: idle 0, one slot free, spawn 1, rate 2.
		{load: 10, children: 2, idle: 0, spawn: 1, rate: 2},
		// Still 10 busy over three children: idle 5, within bounds.
		{load: 10, children: 3, idle: 5, rate: 1},
	})
}

// TestWorkedExampleRamp starts idle and loads the server at once: the spawn rate
// doubles, but free slots cap what is spawned.
func TestWorkedExampleRamp(t *testing.T) {
	runScript(t, workedExample, []step{
		{load: 0, children: 0, idle: 0, spawn: 1, rate: 1},
		// 5 busy on one child: idle 0 < 4, spawn min(2 free, rate 1) = 1.
		{load: 5, children: 1, idle: 0, spawn: 1, rate: 2},
		// 10 busy on two: idle 0, spawn min(1 free, rate 2) = 1, rate 4.
		{load: 10, children: 2, idle: 0, spawn: 1, rate: 4},
		// 15 busy on three: at MaxClients.
		{load: 15, children: 3, idle: 0, warn: policy.MsgReachedMax, rate: 1},
		// 11 busy: idle 4, within bounds.
		{load: 11, children: 3, idle: 4, rate: 1},
	})
}

// TestWorkedExampleKeepStartServers is the example with HWSKeepStartServers On
// and StartServers 3: the idle threads may exceed MaxSpareThreads, but no
// child is retired below three, and a lost child is replaced.
func TestWorkedExampleKeepStartServers(t *testing.T) {
	settings := map[string]any{"keep_start_servers": true}
	for k, v := range workedExample {
		settings[k] = v
	}
	settings["start_servers"] = 3
	runScriptWith(t, settings, []step{
		{load: 0, children: 0, idle: 0, spawn: 3, rate: 1},
		// 15 idle > 12, but three children is start_servers: keep them.
		{load: 0, children: 3, idle: 15, rate: 1},
		{load: 0, children: 3, idle: 15, rate: 1},
		// Slot 1 crashed before this tick: 10 idle is within bounds, but
		// two children are fewer than start_servers, so one is spawned.
		{load: 0, children: 2, idle: 10, spawn: 1, rate: 1},
		{load: 0, children: 3, idle: 15, rate: 1},
	}, func(s *sim.Sim, tick int) {
		if tick == 3 {
			s.Remove(1)
		}
	})
}
