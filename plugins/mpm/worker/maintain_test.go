package worker

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/phasedhq/phased/plugins/mpm/internal/policy"
	"github.com/phasedhq/phased/plugins/mpm/internal/sim"
	"github.com/phasedhq/phased/sdk/mpm"
)

// rampSettings make one thread per child, so the spawn rate is the only
// limit while the load exceeds the server.
var rampSettings = map[string]any{
	"server_limit": 200, "max_request_workers": 200, "threads_per_child": 1,
	"min_spare_threads": 100, "max_spare_threads": 300, "start_servers": 1,
}

func TestSpawnDoubling(t *testing.T) {
	ctx := context.Background()
	p := newPolicy()
	s, _, err := sim.New(ctx, p, rampSettings)
	if err != nil {
		t.Fatal(err)
	}
	// Every thread is busy on every tick. The first tick starts
	// start_servers; then each tick spawns at the rate and doubles it up to
	// 32, until the free slots run out and the server is at
	// max_request_workers.
	wantSpawn := []int{1, 1, 2, 4, 8, 16, 32, 32, 32, 32, 32, 8, 0, 0}
	wantRate := []int{1, 2, 4, 8, 16, 32, 32, 32, 32, 32, 32, 32, 1, 1}
	children := 0
	for i := range wantSpawn {
		snap, err := s.Step(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Children != children {
			t.Fatalf("tick %d: %d children, want %d", i, snap.Children, children)
		}
		resp := snap.Response
		rate, _ := p.Core().SpawnRate()
		if got := sim.Spawned(resp); got != wantSpawn[i] || rate != wantRate[i] {
			t.Errorf("tick %d: spawned %d, rate %d; want %d, %d", i, got, rate, wantSpawn[i], wantRate[i])
		}
		var wantInfo []string
		if wantSpawn[i] >= 8 {
			wantInfo = []string{fmt.Sprintf(policy.MsgBusyThreaded, wantSpawn[i], 0, children)}
		}
		if got := sim.Messages(resp, mpm.LevelInfo); !slices.Equal(got, wantInfo) {
			t.Errorf("tick %d: info %q, want %q", i, got, wantInfo)
		}
		var wantWarn []string
		if children == 200 {
			wantWarn = []string{policy.MsgReachedMax}
		}
		if got := sim.Messages(resp, mpm.LevelWarn); !slices.Equal(got, wantWarn) {
			t.Errorf("tick %d: warn %q, want %q", i, got, wantWarn)
		}
		children += wantSpawn[i]
	}
}

func TestSpawnRateResets(t *testing.T) {
	ctx := context.Background()
	p := newPolicy()
	s, _, err := sim.New(ctx, p, rampSettings)
	if err != nil {
		t.Fatal(err)
	}
	// Start 1, then spawn 1, 2, 4: the rate is 8.
	for i := range 4 {
		if _, err := s.Step(ctx, 1000); err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
	}
	if rate, _ := p.Core().SpawnRate(); rate != 8 {
		t.Fatalf("rate %d, want 8", rate)
	}
	// Eight children, 4 busy: 4 idle, below 100, spawn 8 and log it.
	snap, err := s.Step(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got, info := sim.Spawned(snap.Response), sim.Messages(snap.Response, mpm.LevelInfo); got != 8 || len(info) != 1 {
		t.Fatalf("spawned %d with info %q, want 8 and one info log", got, info)
	}
	// A tick within bounds resets the rate to 1.
	if _, err := p.Configure(ctx, &mpm.ConfigureRequest{Settings: map[string]any{
		"server_limit": 200, "max_request_workers": 200, "threads_per_child": 1,
		"min_spare_threads": 10, "max_spare_threads": 300, "start_servers": 1,
	}}); err != nil {
		t.Fatal(err)
	}
	snap, err = s.Step(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rate, _ := p.Core().SpawnRate(); rate != 1 || len(snap.Response.Actions) != 0 {
		t.Errorf("rate %d and actions %+v after a tick within bounds, want 1 and none", rate, snap.Response.Actions)
	}
}

func TestHoldOffAfterRestart(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(ctx context.Context, s *sim.Sim)
	}{
		// The policy saw generation 1 start, then a graceful restart.
		{"generation change", func(ctx context.Context, s *sim.Sim) {
			if _, err := s.Step(ctx, 0); err != nil {
				panic(err)
			}
			s.NewGeneration()
		}},
		// The policy (a restarted plugin) first sees generation 2.
		{"first seen generation 2", func(ctx context.Context, s *sim.Sim) { s.Generation = 2 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			p := newPolicy()
			s, _, err := sim.New(ctx, p, rampSettings)
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(ctx, s)
			// Tick 0 starts start_servers; then ten spawning ticks keep
			// the rate at 1; the eleventh doubles it.
			want := []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 4}
			for i, w := range want {
				snap, err := s.Step(ctx, 1000)
				if err != nil {
					t.Fatal(err)
				}
				if got := sim.Spawned(snap.Response); got != w {
					t.Errorf("tick %d: spawned %d, want %d", i, got, w)
				}
			}
		})
	}
}

func TestRetireOnePerTick(t *testing.T) {
	settings := map[string]any{"server_limit": 10, "max_request_workers": 50, "threads_per_child": 5,
		"min_spare_threads": 4, "max_spare_threads": 12, "start_servers": 6}
	// 6 idle children: 30, 25, 20, 15 idle threads are above 12, one child
	// a tick goes, highest slot first; 10 is within bounds.
	runScript(t, settings, []step{
		{load: 0, children: 0, idle: 0, spawn: 6, rate: 1},
		{load: 0, children: 6, idle: 30, retire: []int{5}, rate: 1},
		{load: 0, children: 5, idle: 25, retire: []int{4}, rate: 1},
		{load: 0, children: 4, idle: 20, retire: []int{3}, rate: 1},
		{load: 0, children: 3, idle: 15, retire: []int{2}, rate: 1},
		{load: 0, children: 2, idle: 10, rate: 1},
	})
	// With keep_start_servers no child goes below start_servers.
	settings["keep_start_servers"] = true
	runScript(t, settings, []step{
		{load: 0, children: 0, idle: 0, spawn: 6, rate: 1},
		{load: 0, children: 6, idle: 30, rate: 1},
		{load: 0, children: 6, idle: 30, rate: 1},
	})
}

func ready(slot, busy int) mpm.Child {
	return mpm.Child{Slot: slot, PID: 100 + slot, State: mpm.ChildReady, IdleSlots: 5 - busy, BusySlots: busy}
}

func TestMaintainSnapshots(t *testing.T) {
	withMem := func(c mpm.Child, mem int64) mpm.Child { c.MemoryBytes = mem; return c }
	withState := func(c mpm.Child, s mpm.ChildState) mpm.Child { c.State = s; return c }
	const mb = 1 << 20
	memExample := map[string]any{"max_memory_per_child": "100M"}
	for k, v := range workedExample {
		memExample[k] = v
	}
	onlyOne := map[string]any{"max_memory_per_child": "100M", "max_request_workers": 5, "threads_per_child": 5,
		"min_spare_threads": 1, "max_spare_threads": 10, "start_servers": 1}
	keep := map[string]any{"keep_start_servers": true}
	for k, v := range workedExample {
		keep[k] = v
	}
	keep["start_servers"] = 3
	tests := []struct {
		name     string
		settings map[string]any
		req      mpm.MaintainRequest
		actions  []mpm.Action
		warn     []string
	}{
		{"first tick tops up start_servers", nil,
			mpm.MaintainRequest{Generation: 1, Children: []mpm.Child{withState(ready(0, 0), mpm.ChildStarting)}},
			[]mpm.Action{{Kind: mpm.Spawn, Count: 2, Reason: policy.ReasonStartServers}}, nil},
		{"first tick with start_servers running does maintenance", workedExample,
			mpm.MaintainRequest{Generation: 1, Children: []mpm.Child{ready(0, 5)}},
			[]mpm.Action{{Kind: mpm.Spawn, Count: 1, Reason: policy.ReasonMinSpare}}, nil},
		{"a starting child counts as idle", workedExample,
			mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5, Children: []mpm.Child{ready(0, 5), withState(ready(1, 5), mpm.ChildStarting)}},
			nil, nil},
		{"a retiring child holds its slot", workedExample,
			mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5, Children: []mpm.Child{ready(0, 5), withState(ready(1, 0), mpm.ChildRetiring), ready(2, 5)}},
			nil, []string{policy.MsgReachedMax}},
		{"a retiring child's idle threads do not count", workedExample,
			mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5, Children: []mpm.Child{ready(0, 5), withState(ready(1, 0), mpm.ChildRetiring)}},
			[]mpm.Action{{Kind: mpm.Spawn, Count: 1, Reason: policy.ReasonMinSpare}}, nil},
		{"retire prefers a child with no busy thread", workedExample,
			mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5, Children: []mpm.Child{ready(0, 0), ready(1, 0), ready(2, 1)}},
			[]mpm.Action{{Kind: mpm.Retire, Slot: 1, Reason: policy.ReasonMaxSpare}}, nil},
		{"memory: retire the largest, replacement first", memExample,
			mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5, Children: []mpm.Child{withMem(ready(0, 1), 150*mb), withMem(ready(1, 1), 200*mb)}},
			[]mpm.Action{{Kind: mpm.Spawn, Count: 1, Reason: policy.ReasonMemory}, {Kind: mpm.Retire, Slot: 1, Reason: policy.ReasonMemory}}, nil},
		{"memory: the replacement's idle threads count", memExample,
			mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5, Children: []mpm.Child{ready(0, 5), withMem(ready(1, 0), 200*mb)}},
			[]mpm.Action{{Kind: mpm.Spawn, Count: 1, Reason: policy.ReasonMemory}, {Kind: mpm.Retire, Slot: 1, Reason: policy.ReasonMemory}}, nil},
		{"memory: no free slot, another child serves", memExample,
			mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5, Children: []mpm.Child{ready(0, 0), withMem(ready(1, 0), 200*mb), ready(2, 0)}},
			[]mpm.Action{{Kind: mpm.Retire, Slot: 1, Reason: policy.ReasonMemory}}, nil},
		{"memory: the only child and no free slot", onlyOne,
			mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5, Children: []mpm.Child{withMem(ready(0, 0), 200*mb)}},
			nil, []string{"child exceeds max_memory_per_child but is the only child and no slot is free for its replacement; keeping it"}},
		// One child, all busy: the rate allows one more, and
		// keep_start_servers wants a third.
		{"keep_start_servers adds to a spawn", keep,
			mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5, Children: []mpm.Child{ready(0, 5)}},
			[]mpm.Action{{Kind: mpm.Spawn, Count: 2, Reason: policy.ReasonMinSpare}}, nil},
		{"keep_start_servers spawns alone", keep,
			mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5, Children: []mpm.Child{ready(0, 0), ready(1, 0)}},
			[]mpm.Action{{Kind: mpm.Spawn, Count: 1, Reason: policy.ReasonKeepStartServers}}, nil},
		{"memory under the limit", memExample,
			mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5, Children: []mpm.Child{withMem(ready(0, 0), 100*mb)}},
			nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			p := New()
			if _, err := p.Configure(ctx, &mpm.ConfigureRequest{Settings: tt.settings}); err != nil {
				t.Fatal(err)
			}
			resp, err := p.Maintain(ctx, &tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(resp.Actions, tt.actions) {
				t.Errorf("actions %+v, want %+v", resp.Actions, tt.actions)
			}
			if got := sim.Messages(resp, mpm.LevelWarn); !slices.Equal(got, tt.warn) {
				t.Errorf("warn %q, want %q", got, tt.warn)
			}
		})
	}
}

// TestMemoryRecycleSimulated lets a child grow past max_memory_per_child:
// its replacement is spawned in the same tick and the server never has
// fewer ready children than it needs.
func TestMemoryRecycleSimulated(t *testing.T) {
	settings := map[string]any{"max_memory_per_child": "100M"}
	for k, v := range workedExample {
		settings[k] = v
	}
	runScriptWith(t, settings, []step{
		{load: 0, children: 0, idle: 0, spawn: 1, rate: 1},
		{load: 0, children: 1, idle: 5, rate: 1},
		// Slot 0 is over the limit: a replacement, and slot 0 retires.
		{load: 0, children: 1, idle: 5, spawn: 1, retire: []int{0}, rate: 1},
		// The replacement took slot 1 (slot 0 was still draining).
		{load: 0, children: 1, idle: 5, rate: 1},
	}, func(s *sim.Sim, tick int) {
		if tick == 2 {
			s.SetMemory(0, 200<<20)
		}
	})
}

func TestNilRequest(t *testing.T) {
	resp, err := New().Maintain(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// An empty first tick starts start_servers.
	if want := []mpm.Action{{Kind: mpm.Spawn, Count: 3, Reason: policy.ReasonStartServers}}; !reflect.DeepEqual(resp.Actions, want) {
		t.Errorf("actions %+v, want %+v", resp.Actions, want)
	}
}

func TestConcurrentUse(t *testing.T) {
	p := New()
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				if i%2 == 0 {
					_, _ = p.Configure(ctx, &mpm.ConfigureRequest{Settings: workedExample})
				}
				_, _ = p.Maintain(ctx, &mpm.MaintainRequest{Generation: 1, TicksSinceRestart: j, Children: []mpm.Child{ready(0, 1)}})
			}
		})
	}
	wg.Wait()
}
