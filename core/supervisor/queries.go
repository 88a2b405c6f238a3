package supervisor

import (
	"cmp"
	"slices"
	"time"
)

// ChildInfo is what the supervisor knows of one child.
type ChildInfo struct {
	ID       ChildID
	PID      int // 0 until Spawned
	Gen      int
	Slot     int
	Started  time.Time
	Ready    bool
	Retiring bool
}

// Children returns every child, by generation, then slot.
func (s *Supervisor) Children() []ChildInfo {
	out := make([]ChildInfo, 0, len(s.kids))
	for _, k := range s.kids {
		out = append(out, ChildInfo{ID: k.id, PID: k.pid, Gen: k.gen.Num, Slot: k.slot, Started: k.started, Ready: k.ready, Retiring: k.retiring})
	}
	sortChildren(out)
	return out
}

func sortChildren(cs []ChildInfo) {
	slices.SortFunc(cs, func(a, b ChildInfo) int {
		if a.Gen != b.Gen {
			return cmp.Compare(a.Gen, b.Gen)
		}
		return cmp.Compare(a.Slot, b.Slot)
	})
}

// GenInfo is what the supervisor knows of one generation.
type GenInfo struct {
	GenSpec
	Started  time.Time
	Draining bool
	// Crashes counts early child deaths in a row; while it is above 1 new
	// children wait until NextSpawn. LastExit is the last one's status.
	Crashes   int
	LastExit  string
	NextSpawn time.Time
}

// Current returns the serving generation (the newest one that did not
// fail), and false before the first.
func (s *Supervisor) Current() (GenInfo, bool) {
	if s.current == nil {
		return GenInfo{}, false
	}
	return s.info(s.current), true
}

// Generations returns every generation that still has children or serves,
// oldest first.
func (s *Supervisor) Generations() []GenInfo {
	out := make([]GenInfo, 0, len(s.gens))
	for _, g := range s.gens {
		out = append(out, s.info(g))
	}
	return out
}

func (s *Supervisor) info(g *gen) GenInfo {
	return GenInfo{GenSpec: g.GenSpec, Started: g.started, Draining: g.draining, Crashes: g.crashes, LastExit: g.lastExit, NextSpawn: g.nextSpawn}
}

// CanRestart reports whether a restart would start now: the master serves,
// is not stopping, and no restart or upgrade is in progress.
func (s *Supervisor) CanRestart() bool { return s.stop == nil && s.current != nil && s.busy() == "" }
