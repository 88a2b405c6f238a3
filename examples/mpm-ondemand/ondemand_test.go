package main

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/phasedhq/phased/sdk/mpm"
	"github.com/phasedhq/phased/sdk/sdktest"
)

// t0 is the tests' clock origin.
var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// configured returns the ondemand MPM behind the same gRPC path a master
// uses, configured with settings.
func configured(t *testing.T, settings map[string]any) mpm.MPM {
	t.Helper()
	m := sdktest.MPM(t, New())
	if _, err := m.Configure(t.Context(), &mpm.ConfigureRequest{Settings: settings}); err != nil {
		t.Fatalf("Configure(%v): %v", settings, err)
	}
	return m
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]any
		want     *mpm.ConfigureResponse
		wantKey  string // a *mpm.SettingError for this key
	}{
		{
			name: "defaults",
			want: &mpm.ConfigureResponse{Model: mpm.Prefork, ThreadsPerChild: 1, ServerLimit: 5, StartServers: 0,
				MaxRequestWorkers: 5, AcceptMutex: "epoll", Name: "ondemand"},
		},
		{
			name:     "the README's snippet",
			settings: map[string]any{"max_children": 8, "process_idle_timeout": "30s"},
			want: &mpm.ConfigureResponse{Model: mpm.Prefork, ThreadsPerChild: 1, ServerLimit: 8,
				MaxRequestWorkers: 8, AcceptMutex: "epoll", Name: "ondemand"},
		},
		{
			name:     "threads make the worker model",
			settings: map[string]any{"max_children": 4, "threads_per_child": 25, "max_connections_per_child": 1000},
			want: &mpm.ConfigureResponse{Model: mpm.Worker, ThreadsPerChild: 25, ServerLimit: 4,
				MaxRequestWorkers: 100, MaxConnectionsPerChild: 1000, AcceptMutex: "none", Name: "ondemand"},
		},
		{
			name:     "integers as strings and idle timeout in seconds",
			settings: map[string]any{"max_children": "3", "process_idle_timeout": 20},
			want: &mpm.ConfigureResponse{Model: mpm.Prefork, ThreadsPerChild: 1, ServerLimit: 3,
				MaxRequestWorkers: 3, AcceptMutex: "epoll", Name: "ondemand"},
		},
		{name: "unknown key", settings: map[string]any{"start_servers": 2}, wantKey: "start_servers"},
		{name: "first unknown key in sorted order", settings: map[string]any{"pm": "ondemand", "min_spare": 1}, wantKey: "min_spare"},
		{name: "max_children zero", settings: map[string]any{"max_children": 0}, wantKey: "max_children"},
		{name: "max_children not a number", settings: map[string]any{"max_children": "many"}, wantKey: "max_children"},
		{name: "max_children fractional", settings: map[string]any{"max_children": 2.5}, wantKey: "max_children"},
		{name: "threads_per_child zero", settings: map[string]any{"threads_per_child": 0}, wantKey: "threads_per_child"},
		{name: "threads_per_child huge", settings: map[string]any{"threads_per_child": 1 << 20}, wantKey: "threads_per_child"},
		{name: "negative max_connections_per_child", settings: map[string]any{"max_connections_per_child": -1}, wantKey: "max_connections_per_child"},
		{name: "idle timeout not a duration", settings: map[string]any{"process_idle_timeout": "soon"}, wantKey: "process_idle_timeout"},
		{name: "idle timeout zero", settings: map[string]any{"process_idle_timeout": "0s"}, wantKey: "process_idle_timeout"},
		{name: "idle timeout a bool", settings: map[string]any{"process_idle_timeout": true}, wantKey: "process_idle_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sdktest.MPM(t, New())
			got, err := m.Configure(t.Context(), &mpm.ConfigureRequest{Settings: tt.settings})
			if tt.wantKey != "" {
				se, ok := errors.AsType[*mpm.SettingError](err)
				if !ok || se.Key != tt.wantKey {
					t.Fatalf("Configure error = %v, want a *mpm.SettingError for %s", err, tt.wantKey)
				}
				return
			}
			if err != nil {
				t.Fatalf("Configure: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Configure =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

// A rejected configuration leaves the previous one in force.
func TestConfigureErrorKeepsPrevious(t *testing.T) {
	m := configured(t, map[string]any{"max_children": 2})
	if _, err := m.Configure(t.Context(), &mpm.ConfigureRequest{Settings: map[string]any{"max_children": -3}}); err == nil {
		t.Fatal("Configure accepted max_children -3")
	}
	// Two busy children: max_children 2 still holds, so nothing is spawned.
	resp, err := m.Maintain(t.Context(), &mpm.MaintainRequest{Now: t0, TicksSinceRestart: 5,
		Children: []mpm.Child{busy(0, 1, 0), busy(1, 1, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Actions) != 0 {
		t.Errorf("actions = %+v, want none at max_children 2", resp.Actions)
	}
}

// ready is a ready child with idle and busy slots, started ago before t0.
func ready(slot, idle, busy int, ago time.Duration, connections uint64) mpm.Child {
	return mpm.Child{Slot: slot, PID: 1000 + slot, State: mpm.ChildReady, IdleSlots: idle, BusySlots: busy,
		Connections: connections, Started: t0.Add(-ago)}
}

// busy is a ready prefork-style child serving threads connections, started
// a minute before t0.
func busy(slot, threads int, idle int) mpm.Child {
	return ready(slot, idle, threads, time.Minute, 10)
}

func queue(depth int) []mpm.Listener {
	return []mpm.Listener{{Addr: "127.0.0.1:8080", QueueDepth: depth}}
}

func spawn(n int, reason string) mpm.Action {
	return mpm.Action{Kind: mpm.Spawn, Count: n, Reason: reason}
}

func retire(slot int) mpm.Action { return mpm.Action{Kind: mpm.Retire, Slot: slot, Reason: ReasonIdle} }

// TestMaintain replays single ticks; each case starts from a fresh policy,
// so what it knows of idle times comes from the children's Started and
// Connections (see Maintain).
func TestMaintain(t *testing.T) {
	starting := mpm.Child{Slot: 0, PID: 1000, State: mpm.ChildStarting, Started: t0}
	retiring := mpm.Child{Slot: 2, PID: 1002, State: mpm.ChildRetiring, BusySlots: 1, Started: t0.Add(-time.Hour)}
	tests := []struct {
		name     string
		settings map[string]any
		req      mpm.MaintainRequest
		want     []mpm.Action
		wantWarn bool // MsgReachedMax
	}{
		{
			name: "a generation's first tick with nothing queued starts nothing",
			req:  mpm.MaintainRequest{TicksSinceRestart: 0, Listeners: queue(0)},
		},
		{
			name: "at rest with no child, nothing",
			req:  mpm.MaintainRequest{TicksSinceRestart: 7, Listeners: queue(0)},
		},
		{
			name: "queued connections with no child spawn one per connection",
			req:  mpm.MaintainRequest{TicksSinceRestart: 7, Listeners: queue(3)},
			want: []mpm.Action{spawn(3, ReasonQueue)},
		},
		{
			name: "queues of every listener add up",
			req: mpm.MaintainRequest{TicksSinceRestart: 7, Listeners: []mpm.Listener{
				{Addr: "127.0.0.1:8080", QueueDepth: 1}, {Addr: "127.0.0.1:8443", QueueDepth: 1}}},
			want: []mpm.Action{spawn(2, ReasonQueue)},
		},
		{
			name:     "queued connections fill threaded children",
			settings: map[string]any{"threads_per_child": 4},
			req:      mpm.MaintainRequest{TicksSinceRestart: 7, Listeners: queue(9)},
			want:     []mpm.Action{spawn(3, ReasonQueue)},
		},
		{
			name: "an idle slot takes a queued connection",
			req: mpm.MaintainRequest{TicksSinceRestart: 7, Listeners: queue(2),
				Children: []mpm.Child{ready(0, 1, 0, time.Second, 0), busy(1, 1, 0)}},
			want: []mpm.Action{spawn(1, ReasonQueue)},
		},
		{
			name: "a starting child will take a queued connection",
			req:  mpm.MaintainRequest{TicksSinceRestart: 7, Listeners: queue(1), Children: []mpm.Child{starting}},
		},
		{
			name: "queued beyond max_children spawns up to it and warns",
			req:  mpm.MaintainRequest{TicksSinceRestart: 7, Listeners: queue(50), Children: []mpm.Child{busy(0, 1, 0)}},
			want: []mpm.Action{spawn(4, ReasonQueue)}, wantWarn: true,
		},
		{
			name: "every child busy spawns one",
			req:  mpm.MaintainRequest{TicksSinceRestart: 7, Children: []mpm.Child{busy(0, 1, 0), busy(1, 1, 0)}},
			want: []mpm.Action{spawn(1, ReasonBusy)},
		},
		{
			name:     "every thread busy spawns one",
			settings: map[string]any{"threads_per_child": 4},
			req:      mpm.MaintainRequest{TicksSinceRestart: 7, Children: []mpm.Child{busy(0, 4, 0)}},
			want:     []mpm.Action{spawn(1, ReasonBusy)},
		},
		{
			name:     "a free thread is not every child busy",
			settings: map[string]any{"threads_per_child": 4},
			req:      mpm.MaintainRequest{TicksSinceRestart: 7, Children: []mpm.Child{busy(0, 3, 1)}},
		},
		{
			name:     "every child busy at max_children spawns none and warns",
			settings: map[string]any{"max_children": 3},
			req:      mpm.MaintainRequest{TicksSinceRestart: 7, Children: []mpm.Child{busy(0, 1, 0), busy(1, 1, 0), busy(3, 1, 0)}},
			wantWarn: true,
		},
		{
			name:     "a retiring child holds its slot against max_children",
			settings: map[string]any{"max_children": 3},
			req:      mpm.MaintainRequest{TicksSinceRestart: 7, Children: []mpm.Child{busy(0, 1, 0), busy(1, 1, 0), retiring}},
			wantWarn: true,
		},
		{
			name: "a child that never served, started beyond the timeout, is retired",
			req:  mpm.MaintainRequest{Now: t0, TicksSinceRestart: 30, Children: []mpm.Child{ready(0, 1, 0, 11*time.Second, 0)}},
			want: []mpm.Action{retire(0)},
		},
		{
			name: "a child started within the timeout is kept",
			req:  mpm.MaintainRequest{Now: t0, TicksSinceRestart: 30, Children: []mpm.Child{ready(0, 1, 0, 9*time.Second, 0)}},
		},
		{
			name:     "the timeout is a setting",
			settings: map[string]any{"process_idle_timeout": "30s"},
			req:      mpm.MaintainRequest{Now: t0, TicksSinceRestart: 30, Children: []mpm.Child{ready(0, 1, 0, 20*time.Second, 0)}},
		},
		{
			name: "a child that served is idle from the first tick that sees it idle",
			req:  mpm.MaintainRequest{Now: t0, TicksSinceRestart: 30, Children: []mpm.Child{ready(0, 1, 0, time.Hour, 3)}},
		},
		{
			name: "the child idle the longest goes, one a tick",
			req: mpm.MaintainRequest{Now: t0, TicksSinceRestart: 30, Children: []mpm.Child{
				ready(0, 1, 0, 20*time.Second, 0), ready(1, 1, 0, time.Minute, 0), ready(2, 1, 0, 30*time.Second, 0)}},
			want: []mpm.Action{retire(1)},
		},
		{
			name: "the last free slot beside busy children is kept",
			req: mpm.MaintainRequest{Now: t0, TicksSinceRestart: 30, Children: []mpm.Child{
				busy(0, 1, 0), ready(1, 1, 0, time.Minute, 0)}},
		},
		{
			name: "no retiring while connections queue",
			req: mpm.MaintainRequest{Now: t0, TicksSinceRestart: 30, Listeners: queue(2), Children: []mpm.Child{
				ready(0, 1, 0, time.Minute, 0)}},
			want: []mpm.Action{spawn(1, ReasonQueue)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := configured(t, tt.settings)
			resp, err := m.Maintain(t.Context(), &tt.req)
			if err != nil {
				t.Fatalf("Maintain: %v", err)
			}
			if !reflect.DeepEqual(resp.Actions, tt.want) {
				t.Errorf("actions = %+v, want %+v", resp.Actions, tt.want)
			}
			if got := warned(resp); got != tt.wantWarn {
				t.Errorf("logged %q: %v, want %v (logs %+v)", MsgReachedMax, got, tt.wantWarn, resp.Logs)
			}
		})
	}
}

func warned(resp *mpm.MaintainResponse) bool {
	for _, l := range resp.Logs {
		if l.Message == MsgReachedMax && l.Level == mpm.LevelWarn {
			return true
		}
	}
	return false
}

// TestMaintainIdleAcrossTicks follows one child through a day of ticks: the
// policy remembers when it last saw the child busy, and a connection served
// between two ticks (its connection count grew) counts as busy too.
func TestMaintainIdleAcrossTicks(t *testing.T) {
	// max_children 1: a busy tick wants a second child and cannot have it.
	m := configured(t, map[string]any{"process_idle_timeout": "10s", "max_children": 1})
	child := func(idle, busy int, conns uint64) []mpm.Child {
		return []mpm.Child{{Slot: 0, PID: 4242, State: mpm.ChildReady, IdleSlots: idle, BusySlots: busy,
			Connections: conns, Started: t0}}
	}
	steps := []struct {
		at       time.Duration // since t0
		children []mpm.Child
		retire   bool
	}{
		{at: 1 * time.Second, children: child(0, 1, 1)},  // serving its first connection
		{at: 2 * time.Second, children: child(1, 0, 1)},  // idle from here
		{at: 12 * time.Second, children: child(1, 0, 1)}, // idle 10s: not longer than the timeout
		{at: 13 * time.Second, children: child(1, 0, 2)}, // served one between ticks: idle from here
		{at: 23 * time.Second, children: child(1, 0, 2)}, // idle 10s
		{at: 24 * time.Second, children: child(0, 1, 3)}, // busy
		{at: 25 * time.Second, children: child(1, 0, 3)}, // idle from here
		{at: 35500 * time.Millisecond, children: child(1, 0, 3), retire: true},
	}
	for i, s := range steps {
		resp, err := m.Maintain(t.Context(), &mpm.MaintainRequest{Now: t0.Add(s.at), Generation: 1,
			TicksSinceRestart: i + 1, Children: s.children})
		if err != nil {
			t.Fatalf("tick at %s: %v", s.at, err)
		}
		var want []mpm.Action
		if s.retire {
			want = []mpm.Action{retire(0)}
		}
		if !reflect.DeepEqual(resp.Actions, want) {
			t.Errorf("tick at %s: actions = %+v, want %+v", s.at, resp.Actions, want)
		}
	}
}

// A pid the kernel reused for a new child is a new child, not the old one's
// idle time.
func TestMaintainReusedPID(t *testing.T) {
	m := configured(t, nil)
	tick := func(at time.Duration, c mpm.Child) []mpm.Action {
		t.Helper()
		resp, err := m.Maintain(t.Context(), &mpm.MaintainRequest{Now: t0.Add(at), Generation: 1, TicksSinceRestart: 5,
			Children: []mpm.Child{c}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Actions
	}
	old := mpm.Child{Slot: 0, PID: 77, State: mpm.ChildReady, IdleSlots: 1, Connections: 5, Started: t0.Add(-time.Hour)}
	tick(0, old) // idle from t0
	reborn := mpm.Child{Slot: 0, PID: 77, State: mpm.ChildReady, IdleSlots: 1, Connections: 1, Started: t0.Add(15 * time.Second)}
	if got := tick(20*time.Second, reborn); len(got) != 0 {
		t.Errorf("a new child under a reused pid was retired: %+v", got)
	}
}

// Generations are tracked apart: during a graceful restart the master ticks
// the old generation and the new one, and a pid of one means nothing to
// the other.
func TestMaintainGenerations(t *testing.T) {
	m := configured(t, nil)
	c := mpm.Child{Slot: 0, PID: 500, State: mpm.ChildReady, IdleSlots: 1, Connections: 2, Started: t0.Add(-time.Hour)}
	for _, gen := range []int{1, 2} {
		if _, err := m.Maintain(t.Context(), &mpm.MaintainRequest{Now: t0, Generation: gen, TicksSinceRestart: 3, Children: []mpm.Child{c}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, gen := range []int{1, 2} {
		resp, err := m.Maintain(t.Context(), &mpm.MaintainRequest{Now: t0.Add(11 * time.Second), Generation: gen, TicksSinceRestart: 4, Children: []mpm.Child{c}})
		if err != nil {
			t.Fatal(err)
		}
		if want := []mpm.Action{retire(0)}; !reflect.DeepEqual(resp.Actions, want) {
			t.Errorf("generation %d: actions = %+v, want %+v", gen, resp.Actions, want)
		}
	}
}

// A Maintain after the caller gave up returns the context's error.
func TestMaintainCanceled(t *testing.T) {
	m := configured(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := m.Maintain(ctx, &mpm.MaintainRequest{}); err == nil {
		t.Error("Maintain with a canceled context succeeded")
	}
}
