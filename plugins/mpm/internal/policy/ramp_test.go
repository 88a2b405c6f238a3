package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/phasedhq/phased/plugins/mpm/internal/policy"
	"github.com/phasedhq/phased/plugins/mpm/internal/sim"
	"github.com/phasedhq/phased/sdk/mpm"
)

// ramp runs prefork (start_servers 8, Apache's spares 5/10) under 50
// keep-alive clients, each holding a child, and returns the ticks until no
// connection waits in the accept queue and the children spawned per tick.
func ramp(t *testing.T, queue bool, settings map[string]any) (ticks int, spawned []int, last sim.Snapshot) {
	t.Helper()
	ctx := context.Background()
	p := policy.New("prefork", policy.ParsePrefork)
	s, _, err := sim.New(ctx, p, settings)
	if err != nil {
		t.Fatal(err)
	}
	s.Queue = queue
	for tick := range 20 {
		load := 50
		if tick == 0 {
			load = 0 // the start: no client yet
		}
		snap, err := s.Step(ctx, load)
		if err != nil {
			t.Fatalf("tick %d: %v", tick, err)
		}
		spawned = append(spawned, sim.Spawned(snap.Response))
		if tick > 0 && snap.Busy >= load {
			return tick, spawned, snap
		}
		last = snap
	}
	return -1, spawned, last
}

// TestRampSpawnsAheadOfTheAcceptQueue: prefork told that 42 connections
// wait in the accept queue starts the children for them (and the minimum of
// spares) in one tick, instead of Apache's 1, 2, 4, 8, 16, 32 over six
// ticks while the clients wait.
func TestRampSpawnsAheadOfTheAcceptQueue(t *testing.T) {
	settings := map[string]any{"start_servers": 8}
	ticks, spawned, _ := ramp(t, true, settings)
	if ticks != 2 {
		t.Errorf("the queue drained at tick %d (spawns %v), want 2: every waiting connection's child spawned at tick 1", ticks, spawned)
	}
	// 8 at the start; then 42 queued + 5 min_spare_servers at once.
	if len(spawned) < 2 || spawned[0] != 8 || spawned[1] != 47 {
		t.Errorf("spawns %v, want [8 47 ...]", spawned)
	}

	// Without the queue's depth the policy is Apache's: the rate doubles
	// tick after tick while the clients wait.
	ticks, spawned, _ = ramp(t, false, settings)
	if ticks != 7 {
		t.Errorf("without the queue: busy covered the load at tick %d (spawns %v), want 7 (Apache's doubling)", ticks, spawned)
	}
}

// TestRampBoundedByMaxRequestWorkers: the queue never spawns beyond
// max_request_workers; at the limit the policy warns as Apache does.
func TestRampBoundedByMaxRequestWorkers(t *testing.T) {
	ctx := context.Background()
	p := policy.New("prefork", policy.ParsePrefork)
	s, _, err := sim.New(ctx, p, map[string]any{"start_servers": 8, "max_request_workers": 20})
	if err != nil {
		t.Fatal(err)
	}
	s.Queue = true
	if _, err := s.Step(ctx, 0); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Step(ctx, 50)
	if err != nil {
		t.Fatal(err)
	}
	if got := sim.Spawned(snap.Response); got != 12 {
		t.Errorf("spawned %d with 42 queued, 8 children and max_request_workers 20, want 12", got)
	}
	snap, err = s.Step(ctx, 50)
	if err != nil {
		t.Fatal(err)
	}
	if got := sim.Spawned(snap.Response); got != 0 || !snap.Response.ReachedMax {
		t.Errorf("at max_request_workers: spawned %d, reached max %v; want 0, true", got, snap.Response.ReachedMax)
	}
	if w := sim.Messages(snap.Response, mpm.LevelWarn); len(w) != 1 || w[0] != policy.MsgReachedMax {
		t.Errorf("warnings %q, want %q", w, policy.MsgReachedMax)
	}
}

// queued is a tick of n ready children, each with idle and busy slots,
// while depth connections wait in the accept queue.
func queued(n, idle, busy, depth int) *mpm.MaintainRequest {
	req := &mpm.MaintainRequest{Generation: 1, TicksSinceRestart: 5,
		Listeners: []mpm.Listener{{Addr: "127.0.0.1:80", QueueDepth: depth}}}
	for slot := range n {
		req.Children = append(req.Children, mpm.Child{Slot: slot, PID: 100 + slot, State: mpm.ChildReady, IdleSlots: idle, BusySlots: busy})
	}
	return req
}

// TestQueueDoesNotRetire: idle children while connections wait (a sample
// taken between two accepts) are not retired as spares.
func TestQueueDoesNotRetire(t *testing.T) {
	ctx := context.Background()
	p := policy.New("prefork", policy.ParsePrefork)
	resp, err := p.Maintain(ctx, queued(20, 1, 0, 30))
	if err != nil {
		t.Fatal(err)
	}
	if r := sim.Retired(resp); len(r) != 0 {
		t.Errorf("retired %v with 20 idle children and 30 queued connections, want none", r)
	}
}

// TestEventIgnoresTheQueue: the event model's accept queue is not counted
// (it accepts while it has room for connections, not slots): the same
// snapshot with and without a queue gets the same answer.
func TestEventIgnoresTheQueue(t *testing.T) {
	ctx := context.Background()
	spec := policy.ThreadedSpec{Name: "event", Model: mpm.Event, MaxServerLimit: 20000, MaxThreadLimit: 100000, Event: true}
	parse := func(s map[string]any) (*policy.Config, error) { return policy.ParseThreaded(spec, s) }
	var got []int
	for _, depth := range []int{0, 500} {
		p := policy.New("event", parse)
		resp, err := p.Maintain(ctx, queued(2, 25, 0, depth))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, sim.Spawned(resp), len(sim.Retired(resp)))
	}
	if got[0] != got[2] || got[1] != got[3] {
		t.Errorf("event with no queue: spawned %d, retired %d; with 500 queued: spawned %d, retired %d; want the same", got[0], got[1], got[2], got[3])
	}
}

// TestWorkerSpawnsForTheQueue: worker counts its queue as prefork does,
// in children of threads_per_child.
func TestWorkerSpawnsForTheQueue(t *testing.T) {
	ctx := context.Background()
	spec := policy.ThreadedSpec{Name: "worker", Model: mpm.Worker, MaxServerLimit: 20000, MaxThreadLimit: 20000}
	p := policy.New("worker", func(s map[string]any) (*policy.Config, error) { return policy.ParseThreaded(spec, s) })
	resp, err := p.Maintain(ctx, queued(2, 0, 25, 100))
	if err != nil {
		t.Fatal(err)
	}
	// 100 waiting + 75 spare (worker's default min_spare_threads) = 175
	// threads: 7 children of 25, capped by max_request_workers 400 / 25 =
	// 16 children, 2 of them running.
	if got := sim.Spawned(resp); got != 7 {
		t.Errorf("spawned %d children for 100 queued connections with every thread busy, want 7", got)
	}
}

// accepting is queued's tick at now, each child having accepted conns
// connections since it started a minute before t0.
func accepting(n, idle, busy, depth int, now time.Duration, conns uint64) *mpm.MaintainRequest {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	req := queued(n, idle, busy, depth)
	req.Now = t0.Add(now)
	for i := range req.Children {
		req.Children[i].Started = t0.Add(-time.Minute)
		req.Children[i].Connections = conns
	}
	return req
}

// TestQueueThatDrainsSpawnsNothing: 2 prefork children, both busy, 40
// connections waiting. When the children took 10,000 connections each
// since the last tick (the queue waits 2 ms), that is no demand: no spawn,
// neither for the queue nor for the missing spares. When they took one
// each (keep-alive clients that hold them), the queue's children and the
// spares are spawned at once, as before.
func TestQueueThatDrainsSpawnsNothing(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name       string
		accepted   uint64
		wantSpawns int
	}{
		{"short connections", 10000, 0},
		{"keep-alive connections", 1, 40 + 5},
	} {
		p := policy.New("prefork", policy.ParsePrefork)
		if _, err := p.Maintain(ctx, accepting(2, 0, 1, 40, 0, 60)); err != nil {
			t.Fatal(err)
		}
		resp, err := p.Maintain(ctx, accepting(2, 0, 1, 40, time.Second, 60+c.accepted))
		if err != nil {
			t.Fatal(err)
		}
		if got := sim.Spawned(resp); got != c.wantSpawns {
			t.Errorf("%s: spawned %d, want %d", c.name, got, c.wantSpawns)
		}
	}
	// The freshest rate (since the Recent sample, a quarter second before
	// the tick) judges the queue of 40, each child having accepted 60 at
	// the last tick. Short connections in the last second that stopped
	// before the sample, while keep-alive clients wait: the queue does not
	// drain, and they are spawned for now, not a tick later, whether
	// nothing was accepted since the sample or the two children took a
	// keep-alive client each. Short connections still coming since, at the
	// second's rate or at a fifth of it, keep it draining. Short
	// connections that began in the last quarter second, after keep-alive
	// clients: the second's rate (150 a child) says the queue waits 133
	// ms, the quarter second's (600) that it turns over in 33; nothing is
	// spawned for it.
	for _, c := range []struct {
		name          string
		now, atRecent uint64 // each child's accepted count at the tick and at the sample
		wantSpawns    int
	}{
		{"the short connections stopped", 10060, 10060, 45},
		{"keep-alive clients took the children", 10061, 10060, 45},
		{"they still come", 12560, 10060, 0},
		{"they still come, fewer", 10560, 10060, 0},
		{"short connections that just began", 210, 60, 0},
	} {
		p := policy.New("prefork", policy.ParsePrefork)
		if _, err := p.Maintain(ctx, accepting(2, 0, 1, 40, 0, 60)); err != nil {
			t.Fatal(err)
		}
		req := accepting(2, 0, 1, 40, time.Second, c.now)
		req.Recent = req.Now.Add(-250 * time.Millisecond)
		for i := range req.Children {
			req.Children[i].RecentConnections = c.atRecent
		}
		resp, err := p.Maintain(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got := sim.Spawned(resp); got != c.wantSpawns {
			t.Errorf("%s: spawned %d, want %d", c.name, got, c.wantSpawns)
		}
	}
	// A child's first tick: its rate is its connections over its age
	// (a minute here): 600,000 drain the queue, 30 do not.
	for _, c := range []struct {
		accepted   uint64
		wantSpawns int
	}{{600000, 0}, {30, 45}} {
		p := policy.New("prefork", policy.ParsePrefork)
		resp, err := p.Maintain(ctx, accepting(2, 0, 1, 40, 0, c.accepted))
		if err != nil {
			t.Fatal(err)
		}
		if got := sim.Spawned(resp); got != c.wantSpawns {
			t.Errorf("first tick, %d connections a child in a minute: spawned %d, want %d", c.accepted, got, c.wantSpawns)
		}
	}
}

// TestRetireHalfTheExcess: 40 idle prefork children against
// max_spare_servers 10 lose 15 in one tick (half the 30 beyond), 10 idle
// ones lose none, 11 lose one; event children go one a tick.
func TestRetireHalfTheExcess(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		children, want int
	}{{40, 15}, {11, 1}, {10, 0}} {
		p := policy.New("prefork", policy.ParsePrefork)
		if _, err := p.Configure(ctx, &mpm.ConfigureRequest{Settings: map[string]any{"max_spare_servers": 10}}); err != nil {
			t.Fatal(err)
		}
		resp, err := p.Maintain(ctx, queued(c.children, 1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if got := len(sim.Retired(resp)); got != c.want {
			t.Errorf("%d idle children, max_spare_servers 10: retired %d, want %d", c.children, got, c.want)
		}
	}
	spec := policy.ThreadedSpec{Name: "event", Model: mpm.Event, MaxServerLimit: 20000, MaxThreadLimit: 100000, Event: true}
	p := policy.New("event", func(s map[string]any) (*policy.Config, error) { return policy.ParseThreaded(spec, s) })
	resp, err := p.Maintain(ctx, queued(12, 25, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(sim.Retired(resp)); got != 1 {
		t.Errorf("12 idle event children: retired %d, want 1", got)
	}
}

// TestShortConnectionsFreeBusyChildren: 50 prefork children (5 idle, 45
// busy at the tick) with max_spare_servers 10 and nothing queued, on a
// machine whose CPUs are saturated. When each busy child took 300
// connections since the last tick (3 ms each) or 33 (30 ms each, under
// QueueWait), the busy ones count as spares: half the 40 beyond the
// maximum go, busy ones among them. When each took one (keep-alive
// clients) or 10 (100 ms app requests), none goes, as when the connections queue up or when the CPUs
// have room (children waiting for an app's I/O).
func TestShortConnectionsFreeBusyChildren(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	req := func(now time.Duration, conns uint64, depth int) *mpm.MaintainRequest {
		r := queued(50, 0, 1, depth)
		r.Now = t0.Add(now)
		for i := range r.Children {
			r.Children[i].Started = t0.Add(-time.Minute)
			r.Children[i].Connections = conns
			if i < 5 {
				r.Children[i].IdleSlots, r.Children[i].BusySlots = 1, 0
			}
		}
		return r
	}
	for _, c := range []struct {
		name     string
		accepted uint64
		depth    int
		cpu      float64
		want     int
	}{
		{"3 ms connections", 300, 0, 0.95, 20},
		{"keep-alive connections", 1, 0, 0.95, 0},
		{"30 ms connections", 33, 0, 0.95, 20},
		{"100 ms connections", 10, 0, 0.95, 0},
		{"3 ms connections with a queue that does not drain", 300, 20000, 0.95, 0},
		{"3 ms connections, CPUs with room", 300, 0, 0.6, 0},
	} {
		p := policy.New("prefork", policy.ParsePrefork)
		if _, err := p.Configure(ctx, &mpm.ConfigureRequest{Settings: map[string]any{"max_spare_servers": 10}}); err != nil {
			t.Fatal(err)
		}
		p.Core().CPUBusy = func() (float64, bool) { return c.cpu, true }
		if _, err := p.Maintain(ctx, req(0, 1000, c.depth)); err != nil {
			t.Fatal(err)
		}
		resp, err := p.Maintain(ctx, req(time.Second, 1000+c.accepted, c.depth))
		if err != nil {
			t.Fatal(err)
		}
		retired := sim.Retired(resp)
		if len(retired) != c.want {
			t.Errorf("%s: retired %d (%v), want %d", c.name, len(retired), retired, c.want)
		}
		busy := 0
		for _, slot := range retired {
			if slot >= 5 {
				busy++
			}
		}
		if c.want > 0 && busy != c.want-5 {
			t.Errorf("%s: retired %d busy children, want the 5 idle ones and %d busy", c.name, busy, c.want-5)
		}
	}
}
