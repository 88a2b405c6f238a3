package event

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/phasedhq/phased/plugins/mpm/internal/policy"
	"github.com/phasedhq/phased/plugins/mpm/internal/sim"
	"github.com/phasedhq/phased/sdk/mpm"
)

func TestConfigure(t *testing.T) {
	// def is the answer to no settings at all: Apache 2.4 event's defaults.
	def := mpm.ConfigureResponse{Model: mpm.Event, ThreadsPerChild: 25, ServerLimit: 16, StartServers: 3,
		MaxRequestWorkers: 400, AcceptMutex: "none"}
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
		// The scoreboard keeps server_limit slots; the slots beyond
		// max_request_workers / threads_per_child are for draining children.
		{"server_limit is the scoreboard", map[string]any{"server_limit": 32, "max_clients": 200}, with(func(r *mpm.ConfigureResponse) {
			r.ServerLimit, r.MaxRequestWorkers = 32, 200
		})},
		{"async_request_worker_factor", map[string]any{"async_request_worker_factor": 2.5}, def},
		{"thread_limit up to 100000", map[string]any{"thread_limit": 100000}, def},
		{"thread_limit above 100000", map[string]any{"thread_limit": 100001}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"thread_limit of 100001 exceeds compile-time limit of 100000 threads, decreasing to 100000"}
		})},
		{"max_request_workers above server_limit", map[string]any{"max_request_workers": 1000}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"max_request_workers of 1000 would require 40 servers and would exceed server_limit of 16, decreasing to 400; to increase, please see the server_limit setting"}
		})},
		{"start_servers above the active limit", map[string]any{"server_limit": 32, "max_request_workers": 50}, with(func(r *mpm.ConfigureResponse) {
			r.ServerLimit, r.MaxRequestWorkers, r.StartServers = 32, 50, 2
			r.Notes = []string{"start_servers of 3 exceeds the maximum of 2 servers, decreasing to 2"}
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
		{"unknown key", map[string]any{"x": 1}, "x", `unknown key "x" for the event MPM`},
		{"factor 0", map[string]any{"async_request_worker_factor": 0}, "async_request_worker_factor", "must be a positive number, got 0"},
		{"factor word", map[string]any{"async_request_worker_factor": "two"}, "async_request_worker_factor", `want a number, got "two"`},
		{"both names", map[string]any{"max_clients": 1, "max_request_workers": 1}, "max_clients", "max_clients is an alias of max_request_workers; set only one of them"},
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

// small is event with five threads a child, three active children at most
// (max_request_workers 15) and the given scoreboard size.
func small(serverLimit int) map[string]any {
	return map[string]any{"server_limit": serverLimit, "max_request_workers": 15, "threads_per_child": 5,
		"min_spare_threads": 4, "max_spare_threads": 12, "start_servers": 1}
}

func child(slot, busy int, st mpm.ChildState) mpm.Child {
	return mpm.Child{Slot: slot, PID: 100 + slot, State: st, IdleSlots: 5 - busy, BusySlots: busy}
}

func TestMaintain(t *testing.T) {
	r, g := mpm.ChildReady, mpm.ChildRetiring
	tests := []struct {
		name     string
		settings map[string]any
		children []mpm.Child
		actions  []mpm.Action
		warn     []string
	}{
		// Three active children all busy: max_request_workers is reached
		// although the scoreboard has free slots.
		{"at max_request_workers with free slots", small(10),
			[]mpm.Child{child(0, 5, r), child(1, 5, r), child(2, 5, r)}, nil, []string{policy.MsgReachedMax}},
		{"near max_request_workers", small(10),
			[]mpm.Child{child(0, 5, r), child(1, 5, r), child(2, 2, r)}, nil, []string{policy.MsgNearMax}},
		// Draining children fill the scoreboard before the active limit.
		{"scoreboard full", small(4),
			[]mpm.Child{child(0, 5, r), child(1, 0, g), child(2, 5, r), child(3, 0, g)}, nil, []string{policy.MsgScoreboard}},
		{"spawn below the active limit", small(10),
			[]mpm.Child{child(0, 5, r), child(1, 0, g), child(2, 5, r)},
			[]mpm.Action{{Kind: mpm.Spawn, Count: 1, Reason: policy.ReasonMinSpare}}, nil},
		// 15 idle > 12: retire one, unless children are draining and the
		// scoreboard has no room for a graceful restart.
		{"retire", small(4),
			[]mpm.Child{child(0, 0, r), child(1, 0, r), child(2, 0, r)},
			[]mpm.Action{{Kind: mpm.Retire, Slot: 2, Reason: policy.ReasonMaxSpare}}, nil},
		{"no retire while draining", small(6),
			[]mpm.Child{child(0, 0, r), child(1, 0, r), child(2, 0, r), child(3, 1, g)}, nil, nil},
		{"retire while draining with room", small(10),
			[]mpm.Child{child(0, 0, r), child(1, 0, r), child(2, 0, r), child(3, 1, g)},
			[]mpm.Action{{Kind: mpm.Retire, Slot: 2, Reason: policy.ReasonMaxSpare}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			p := New()
			if _, err := p.Configure(ctx, &mpm.ConfigureRequest{Settings: tt.settings}); err != nil {
				t.Fatal(err)
			}
			resp, err := p.Maintain(ctx, &mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 4, Children: tt.children})
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

// TestSpawnCappedByActiveLimit: spawning stops at max_request_workers /
// threads_per_child active children although the scoreboard has room.
func TestSpawnCappedByActiveLimit(t *testing.T) {
	ctx := context.Background()
	p := newPolicy()
	s, _, err := sim.New(ctx, p, map[string]any{"server_limit": 40, "max_request_workers": 20, "threads_per_child": 1,
		"min_spare_threads": 30, "max_spare_threads": 100, "start_servers": 1})
	if err != nil {
		t.Fatal(err)
	}
	// 1 start, then 1, 2, 4, 8, and 4 more (the rate was 16) reach the 20
	// active children; then max_request_workers is reached.
	for i, want := range []int{1, 1, 2, 4, 8, 4, 0} {
		snap, err := s.Step(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := sim.Spawned(snap.Response); got != want {
			t.Errorf("tick %d: spawned %d, want %d", i, got, want)
		}
		if i == 6 && !slices.Equal(sim.Messages(snap.Response, mpm.LevelWarn), []string{policy.MsgNearMax}) {
			t.Errorf("tick %d: warn %q", i, sim.Messages(snap.Response, mpm.LevelWarn))
		}
	}
	if rate, _ := p.Core().SpawnRate(); rate != 1 {
		t.Errorf("rate %d, want 1", rate)
	}
}
