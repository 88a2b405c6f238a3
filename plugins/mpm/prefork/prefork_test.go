package prefork

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/phasedhq/phased/plugins/mpm/internal/policy"
	"github.com/phasedhq/phased/plugins/mpm/internal/sim"
	"github.com/phasedhq/phased/sdk/mpm"
)

func TestConfigure(t *testing.T) {
	// def is the answer to no settings at all: Apache 2.4 prefork's defaults.
	def := mpm.ConfigureResponse{Model: mpm.Prefork, ThreadsPerChild: 1, ServerLimit: 256, StartServers: 5,
		MaxRequestWorkers: 256, AcceptMutex: "epoll"}
	with := func(f func(r *mpm.ConfigureResponse)) mpm.ConfigureResponse {
		r := def
		f(&r)
		return r
	}
	tests := []struct {
		name     string
		settings map[string]any
		want     mpm.ConfigureResponse
	}{
		{"defaults", nil, def},
		{"alias max_clients", map[string]any{"max_clients": 100}, with(func(r *mpm.ConfigureResponse) {
			r.ServerLimit, r.MaxRequestWorkers = 100, 100
		})},
		{"phased extras", map[string]any{"max_connections_per_child": 500, "max_connections_per_child_jitter": 50,
			"max_memory_per_child": "256M", "accept_mutex": "none", "keep_start_servers": true}, with(func(r *mpm.ConfigureResponse) {
			r.MaxConnectionsPerChild, r.MaxConnectionsPerChildJitter, r.MaxMemoryPerChild, r.AcceptMutex = 500, 50, 256<<20, "none"
		})},
		{"server_limit above the compile-time limit", map[string]any{"server_limit": 300000}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"server_limit of 300000 exceeds compile-time limit of 200000 servers, decreasing to 200000"}
		})},
		{"server_limit 0", map[string]any{"server_limit": 0}, with(func(r *mpm.ConfigureResponse) {
			r.ServerLimit, r.MaxRequestWorkers, r.StartServers = 1, 1, 1
			r.Notes = []string{
				"server_limit of 0 not allowed, increasing to 1",
				"max_request_workers of 256 exceeds server_limit value of 1 servers, decreasing max_request_workers to 1; to increase, please see the server_limit setting",
				"start_servers of 5 exceeds the maximum of 1 servers, decreasing to 1",
			}
		})},
		{"max_request_workers above server_limit", map[string]any{"max_request_workers": 300}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"max_request_workers of 300 exceeds server_limit value of 256 servers, decreasing max_request_workers to 256; to increase, please see the server_limit setting"}
		})},
		{"max_request_workers 0", map[string]any{"max_request_workers": 0}, with(func(r *mpm.ConfigureResponse) {
			r.ServerLimit, r.MaxRequestWorkers, r.StartServers = 1, 1, 1
			r.Notes = []string{
				"max_request_workers of 0 not allowed, increasing to 1",
				"start_servers of 5 exceeds the maximum of 1 servers, decreasing to 1",
			}
		})},
		{"start_servers 0", map[string]any{"start_servers": 0}, with(func(r *mpm.ConfigureResponse) {
			r.StartServers = 1
			r.Notes = []string{"start_servers of 0 not allowed, increasing to 1"}
		})},
		{"min_spare_servers 0", map[string]any{"min_spare_servers": -3}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"min_spare_servers of -3 not allowed, increasing to 1 to avoid almost certain server failure"}
		})},
		{"max_spare_servers too small", map[string]any{"max_spare_servers": 5}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"max_spare_servers of 5 is less than min_spare_servers + 1, increasing to 6"}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New().Configure(context.Background(), &mpm.ConfigureRequest{Settings: tt.settings})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestConfigureErrors(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]any
		key, msg string
	}{
		{"unknown key", map[string]any{"x": 1}, "x", `unknown key "x" for the prefork MPM`},
		{"worker key", map[string]any{"threads_per_child": 25}, "threads_per_child", `unknown key "threads_per_child" for the prefork MPM`},
		{"bad type", map[string]any{"min_spare_servers": "five"}, "min_spare_servers", `want an integer, got "five"`},
		{"alias bad type", map[string]any{"max_clients": 1.5}, "max_clients", "want an integer, got 1.5"},
		{"accept_mutex", map[string]any{"accept_mutex": "sysvsem"}, "accept_mutex", `want one of epoll, flock, none, got "sysvsem"`},
		{"memory", map[string]any{"max_memory_per_child": "lots"}, "max_memory_per_child", `want a size such as "512M" or "1G", got "lots"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New().Configure(context.Background(), &mpm.ConfigureRequest{Settings: tt.settings})
			var se *mpm.SettingError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a *mpm.SettingError", err)
			}
			if se.Key != tt.key || se.Msg != tt.msg {
				t.Errorf("got key %q msg %q, want key %q msg %q", se.Key, se.Msg, tt.key, tt.msg)
			}
		})
	}
}

type step struct {
	load, children, idle, spawn int
	retire                      []int
	warn                        string
	rate                        int
}

// TestScript replays prefork's maintenance under a scripted load with
// start_servers 2, min_spare_servers 2, max_spare_servers 4 and
// max_request_workers 6 (six one-connection children at most).
func TestScript(t *testing.T) {
	ctx := context.Background()
	p := newPolicy()
	s, _, err := sim.New(ctx, p, map[string]any{"start_servers": 2, "min_spare_servers": 2,
		"max_spare_servers": 4, "max_request_workers": 6})
	if err != nil {
		t.Fatal(err)
	}
	script := []step{
		// The generation's first tick starts start_servers.
		{load: 0, children: 0, idle: 0, spawn: 2, rate: 1},
		// Two idle children: exactly min_spare_servers.
		{load: 0, children: 2, idle: 2, rate: 1},
		// One busy: 1 idle < 2, spawn at rate 1, rate 2.
		{load: 1, children: 2, idle: 1, spawn: 1, rate: 2},
		// All three busy: spawn 2, rate 4.
		{load: 3, children: 3, idle: 0, spawn: 2, rate: 4},
		// All five busy: only one slot is free, spawn 1, rate 8.
		{load: 5, children: 5, idle: 0, spawn: 1, rate: 8},
		// Six busy, no slot free: max_request_workers, every tick.
		{load: 9, children: 6, idle: 0, warn: policy.MsgReachedMax, rate: 1},
		{load: 6, children: 6, idle: 0, warn: policy.MsgReachedMax, rate: 1},
		// One idle is still short, and prefork says "reached" then too.
		{load: 5, children: 6, idle: 1, warn: policy.MsgReachedMax, rate: 1},
		// Quiet: 6 idle > 4, retire the highest idle child, one a tick.
		{load: 0, children: 6, idle: 6, retire: []int{5}, rate: 1},
		{load: 0, children: 5, idle: 5, retire: []int{4}, rate: 1},
		{load: 0, children: 4, idle: 4, rate: 1},
	}
	for i, want := range script {
		snap, err := s.Step(ctx, want.load)
		if err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
		rate, _ := p.Core().SpawnRate()
		var warn string
		if w := sim.Messages(snap.Response, mpm.LevelWarn); len(w) > 0 {
			warn = w[0]
		}
		got := step{load: want.load, children: snap.Children, idle: snap.Idle, spawn: sim.Spawned(snap.Response),
			retire: sim.Retired(snap.Response), warn: warn, rate: rate}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("tick %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func TestSpawnDoublingLog(t *testing.T) {
	ctx := context.Background()
	p := newPolicy()
	s, _, err := sim.New(ctx, p, map[string]any{"start_servers": 1, "min_spare_servers": 100, "max_spare_servers": 200})
	if err != nil {
		t.Fatal(err)
	}
	wantSpawn := []int{1, 1, 2, 4, 8, 16, 32, 32, 32, 32, 32, 32, 32, 0}
	children := 0
	for i, w := range wantSpawn {
		snap, err := s.Step(ctx, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if got := sim.Spawned(snap.Response); got != w {
			t.Errorf("tick %d: spawned %d, want %d", i, got, w)
		}
		var wantInfo []string
		if w >= 8 {
			wantInfo = []string{fmt.Sprintf(policy.MsgBusyPrefork, w, 0, children)}
		}
		if got := sim.Messages(snap.Response, mpm.LevelInfo); !slices.Equal(got, wantInfo) {
			t.Errorf("tick %d: info %q, want %q", i, got, wantInfo)
		}
		children += w
	}
	if children != 256 {
		t.Errorf("%d children, want max_request_workers 256", children)
	}
}

func TestIdleCounting(t *testing.T) {
	child := func(slot int, st mpm.ChildState, idle int) mpm.Child {
		return mpm.Child{Slot: slot, PID: 10 + slot, State: st, IdleSlots: idle, BusySlots: 1 - idle}
	}
	tests := []struct {
		name     string
		children []mpm.Child
		actions  []mpm.Action
	}{
		// min 2, max 3. Busy ready children are not idle: spawn.
		{"busy children", []mpm.Child{child(0, mpm.ChildReady, 0), child(1, mpm.ChildReady, 1)},
			[]mpm.Action{{Kind: mpm.Spawn, Count: 1, Reason: policy.ReasonMinSpare}}},
		// A starting child counts as idle.
		{"starting child", []mpm.Child{child(0, mpm.ChildReady, 1), child(1, mpm.ChildStarting, 0)}, nil},
		// A retiring child does not.
		{"retiring child", []mpm.Child{child(0, mpm.ChildReady, 1), child(1, mpm.ChildRetiring, 1)},
			[]mpm.Action{{Kind: mpm.Spawn, Count: 1, Reason: policy.ReasonMinSpare}}},
		// Four idle > 3: retire the highest idle slot, not a busy one.
		{"retire an idle child", []mpm.Child{child(0, mpm.ChildReady, 1), child(1, mpm.ChildReady, 1),
			child(2, mpm.ChildReady, 1), child(3, mpm.ChildStarting, 0), child(4, mpm.ChildReady, 1), child(5, mpm.ChildReady, 0)},
			[]mpm.Action{{Kind: mpm.Retire, Slot: 4, Reason: policy.ReasonMaxSpare}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			p := New()
			if _, err := p.Configure(ctx, &mpm.ConfigureRequest{Settings: map[string]any{
				"start_servers": 1, "min_spare_servers": 2, "max_spare_servers": 3, "max_request_workers": 10}}); err != nil {
				t.Fatal(err)
			}
			resp, err := p.Maintain(ctx, &mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 3, Children: tt.children})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(resp.Actions, tt.actions) {
				t.Errorf("actions %+v, want %+v", resp.Actions, tt.actions)
			}
		})
	}
}

func TestMemoryRetire(t *testing.T) {
	ctx := context.Background()
	p := New()
	if _, err := p.Configure(ctx, &mpm.ConfigureRequest{Settings: map[string]any{
		"start_servers": 2, "min_spare_servers": 1, "max_spare_servers": 5, "max_memory_per_child": 1000}}); err != nil {
		t.Fatal(err)
	}
	resp, err := p.Maintain(ctx, &mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 3, Children: []mpm.Child{
		{Slot: 0, State: mpm.ChildReady, IdleSlots: 1, MemoryBytes: 1001},
		{Slot: 1, State: mpm.ChildReady, BusySlots: 1, MemoryBytes: 5000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []mpm.Action{{Kind: mpm.Spawn, Count: 1, Reason: policy.ReasonMemory}, {Kind: mpm.Retire, Slot: 1, Reason: policy.ReasonMemory}}
	if !reflect.DeepEqual(resp.Actions, want) {
		t.Errorf("actions %+v, want %+v", resp.Actions, want)
	}
}
