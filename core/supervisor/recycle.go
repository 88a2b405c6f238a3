package supervisor

import (
	"fmt"
	"log/slog"

	"github.com/phasedhq/phased/internal/scoreboard"
)

// recycling is a rolling restart of the current generation (`phased -k
// recycle`): one child at a time, its replacement is started and must be
// ready before the child is told to drain. No configuration is read.
type recycling struct {
	gen    *gen
	queue  []ChildID // children still to retire, in slot order
	target ChildID   // the child being handed off to its replacement; 0 = none
	alone  bool      // target had no replacement: wait until it has exited
	done   int
	req    RequestID
}

func (s *Supervisor) startRecycle(req RequestID) {
	if s.recycle != nil {
		s.reply(req, false, "a recycle is already in progress")
		return
	}
	if s.pending != nil || s.upgrade != nil {
		s.reply(req, false, "a restart or binary upgrade is in progress")
		return
	}
	r := &recycling{gen: s.current, req: req}
	for _, c := range s.Children() {
		if c.Gen == s.current.Num && !c.Retiring {
			r.queue = append(r.queue, c.ID)
		}
	}
	s.recycle = r
	s.log(slog.LevelInfo, "recycling the generation's children one at a time", "generation", r.gen.Num, "children", len(r.queue))
}

// stepRecycle moves on a rolling restart. Each child in turn is handed off
// to its replacement; the next starts once the previous one was told to
// drain, or has exited when no replacement could start (no free slot, a
// crash back-off).
func (s *Supervisor) stepRecycle() {
	r := s.recycle
	if r == nil {
		return
	}
	if s.stop != nil || r.gen.draining {
		s.recycle = nil
		s.reply(r.req, false, "recycle interrupted: the generation is being replaced or phased is stopping")
		return
	}
	for {
		if r.target != 0 {
			if k := s.kid(r.target); k != nil && (!k.handedOff || r.alone) {
				return // its replacement is not ready yet, or it must go first
			}
			r.target = 0
		}
		if len(r.queue) == 0 {
			s.recycle = nil
			s.log(slog.LevelInfo, "recycle done", "generation", r.gen.Num, "children", r.done)
			s.reply(r.req, true, fmt.Sprintf("%d children of generation %d recycled", r.done, r.gen.Num))
			return
		}
		id := r.queue[0]
		r.queue = r.queue[1:]
		k := s.kid(id)
		if k == nil || k.retiring {
			continue
		}
		successor := s.spawnOne(r.gen) // 0 in a crash back-off
		if successor == 0 {
			r.gen.respawn++ // maintain starts it once the slot is free
		}
		r.target, r.alone, r.done = id, successor == 0, r.done+1
		s.count(Count{Counter: scoreboard.RecycledCommand, N: 1})
		s.log(slog.LevelInfo, "recycling a child", "pid", k.pid, "generation", r.gen.Num, "slot", k.slot, "replacement", s.pidOf(successor))
		s.handOff(k, successor)
	}
}
