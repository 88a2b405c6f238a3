// Package sim is a small master for testing MPM policies: it keeps a
// generation of children, spreads a scripted load over them, asks the
// policy for one maintenance tick and carries out its actions.
//
// Its rules are the simplest that still exercise a policy: a child spawned
// in one tick is ready, with all its slots idle, on the next; a retired child
// drains at once and is gone on the next tick; busy slots fill the ready
// children in slot order, ThreadsPerChild each.
package sim

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/phasedhq/phased/sdk/mpm"
)

// Sim is a simulated master for one MPM.
type Sim struct {
	// MPM is the policy under test.
	MPM mpm.MPM
	// ThreadsPerChild and ServerLimit are those the policy configured.
	ThreadsPerChild, ServerLimit int
	// Generation is the current generation; 1 unless a test sets it.
	Generation int
	// Queue, when set, reports the load that no ready child's slot takes as
	// connections waiting in one listener's accept queue (QueueDepth), as
	// the master does from TCP_INFO.
	Queue bool

	tick     int
	nextPID  int
	children []*child
	start    time.Time
}

type child struct {
	slot, pid int
	state     mpm.ChildState
	busy      int
	memory    int64
}

// Snapshot is what one tick's maintenance saw and did.
type Snapshot struct {
	// Tick counts ticks since the generation began.
	Tick int
	// Children counts children that are not retiring; Idle and Busy their
	// slots.
	Children, Idle, Busy int
	// Slots lists the slots of the children that are not retiring.
	Slots []int
	// Queued is the accept-queue depth reported (with Queue set).
	Queued int
	// Response is the policy's answer.
	Response *mpm.MaintainResponse
}

// New configures m with settings and returns a simulator for it.
func New(ctx context.Context, m mpm.MPM, settings map[string]any) (*Sim, *mpm.ConfigureResponse, error) {
	cr, err := m.Configure(ctx, &mpm.ConfigureRequest{Settings: settings})
	if err != nil {
		return nil, nil, err
	}
	return &Sim{MPM: m, ThreadsPerChild: cr.ThreadsPerChild, ServerLimit: cr.ServerLimit, Generation: 1,
		nextPID: 1000, start: time.Unix(1_700_000_000, 0)}, cr, nil
}

// SetMemory sets the memory the child in slot reports.
func (s *Sim) SetMemory(slot int, bytes int64) {
	for _, c := range s.children {
		if c.slot == slot {
			c.memory = bytes
		}
	}
}

// Remove takes the child in slot away, as if it had crashed.
func (s *Sim) Remove(slot int) {
	s.children = slices.DeleteFunc(s.children, func(c *child) bool { return c.slot == slot })
}

// NewGeneration starts the next generation with no children, as after a
// graceful restart whose old generation has drained.
func (s *Sim) NewGeneration() {
	s.Generation++
	s.tick = 0
	s.children = nil
}

// Step runs one tick with load busy slots wanted.
func (s *Sim) Step(ctx context.Context, load int) (Snapshot, error) {
	// The previous tick's spawns are ready, its retirements gone.
	kept := s.children[:0]
	for _, c := range s.children {
		switch c.state {
		case mpm.ChildRetiring:
			continue
		case mpm.ChildStarting:
			c.state = mpm.ChildReady
		}
		kept = append(kept, c)
	}
	s.children = kept
	sort.Slice(s.children, func(i, j int) bool { return s.children[i].slot < s.children[j].slot })

	snap := Snapshot{Tick: s.tick}
	req := &mpm.MaintainRequest{Now: s.start.Add(time.Duration(s.tick) * time.Second), Generation: s.Generation, TicksSinceRestart: s.tick}
	for _, c := range s.children {
		c.busy = min(load, s.ThreadsPerChild)
		load -= c.busy
		idle := s.ThreadsPerChild - c.busy
		req.Children = append(req.Children, mpm.Child{Slot: c.slot, PID: c.pid, State: c.state,
			IdleSlots: idle, BusySlots: c.busy, MemoryBytes: c.memory, Started: s.start})
		snap.Children++
		snap.Idle += idle
		snap.Busy += c.busy
		snap.Slots = append(snap.Slots, c.slot)
	}
	if s.Queue {
		waiting := 0
		if load > 0 {
			waiting = load // no ready child's slot took it
		}
		req.Listeners = []mpm.Listener{{Addr: "127.0.0.1:80", QueueDepth: waiting}}
		snap.Queued = waiting
	}
	resp, err := s.MPM.Maintain(ctx, req)
	if err != nil {
		return snap, err
	}
	snap.Response = resp
	for _, a := range resp.Actions {
		switch a.Kind {
		case mpm.Spawn:
			for range a.Count {
				slot, ok := s.freeSlot()
				if !ok {
					return snap, fmt.Errorf("tick %d: spawn with no free slot (server_limit %d)", s.tick, s.ServerLimit)
				}
				s.nextPID++
				s.children = append(s.children, &child{slot: slot, pid: s.nextPID, state: mpm.ChildStarting})
			}
		case mpm.Retire, mpm.Kill:
			found := false
			for _, c := range s.children {
				if c.slot == a.Slot && c.state != mpm.ChildRetiring {
					c.state, found = mpm.ChildRetiring, true
				}
			}
			if !found {
				return snap, fmt.Errorf("tick %d: %s of slot %d, which has no live child", s.tick, a.Kind, a.Slot)
			}
		default:
			return snap, fmt.Errorf("tick %d: unknown action %q", s.tick, a.Kind)
		}
	}
	s.tick++
	return snap, nil
}

func (s *Sim) freeSlot() (int, bool) {
	used := map[int]bool{}
	for _, c := range s.children {
		used[c.slot] = true
	}
	for i := range s.ServerLimit {
		if !used[i] {
			return i, true
		}
	}
	return 0, false
}

// Spawned returns how many children resp spawns, all reasons together.
func Spawned(resp *mpm.MaintainResponse) int {
	n := 0
	for _, a := range resp.Actions {
		if a.Kind == mpm.Spawn {
			n += a.Count
		}
	}
	return n
}

// Retired returns the slots resp retires, in order.
func Retired(resp *mpm.MaintainResponse) []int {
	var slots []int
	for _, a := range resp.Actions {
		if a.Kind == mpm.Retire {
			slots = append(slots, a.Slot)
		}
	}
	return slots
}

// Messages returns resp's log messages at level.
func Messages(resp *mpm.MaintainResponse, level mpm.Level) []string {
	var msgs []string
	for _, l := range resp.Logs {
		if l.Level == level {
			msgs = append(msgs, l.Message)
		}
	}
	return msgs
}
