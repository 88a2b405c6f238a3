package supervisor

import (
	"log/slog"
	"slices"
	"syscall"
	"time"

	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// maintain starts the children serving generations owe: the first
// start_servers, and replacements of children that crashed or recycled
// themselves, as fast as the crash back-off allows. How many children a
// generation has beyond that is the MPM's decision (tickPolicy).
func (s *Supervisor) maintain() {
	if s.stop != nil {
		return
	}
	for _, g := range s.gens {
		for !g.draining && g.respawn > 0 {
			if s.spawnOne(g) == 0 {
				break
			}
			g.respawn--
		}
	}
}

// spawnOne asks for a child of g in its lowest free slot and returns its
// id; 0 when no slot is free, or while g's crash back-off holds new
// children back (holding). Every new child comes through here: the first
// start_servers, replacements, successors and the MPM's.
func (s *Supervisor) spawnOne(g *gen) ChildID {
	if s.holding(g) {
		return 0
	}
	slot := s.freeSlot(g)
	if slot < 0 {
		return 0
	}
	k := &child{id: s.nextID, gen: g, slot: slot, started: s.now}
	s.nextID++
	s.kids = append(s.kids, k)
	s.emit(Spawn{Child: k.id, Gen: g.Num, Slot: slot})
	return k.id
}

// holding reports whether g's crash back-off holds new children back now.
func (s *Supervisor) holding(g *gen) bool { return s.now.Before(g.nextSpawn) }

// freeSlot returns the lowest process slot of g no child holds, or -1.
func (s *Supervisor) freeSlot(g *gen) int {
	used := make(map[int]bool)
	for _, k := range s.kids {
		if k.gen == g {
			used[k.slot] = true
		}
	}
	for slot := range g.ServerLimit {
		if !used[slot] {
			return slot
		}
	}
	return -1
}

// spawnFailed forgets a child that never started, and backs off as after a
// crash; maintain starts it again when the back-off allows.
func (s *Supervisor) spawnFailed(e SpawnFailed) {
	k := s.kid(e.Child)
	if k == nil {
		return
	}
	s.removeKid(k)
	s.log(slog.LevelError, "cannot start a child", "generation", k.gen.Num, "slot", k.slot, "err", e.Err)
	if !k.gen.draining && s.stop == nil && !k.retiring {
		k.gen.respawn++
	}
	s.crashed(k.gen, e.Err.Error())
	s.reapGenerations()
	s.maintain()
}

// maxExits is how many distinct reasons a generation's early deaths keep.
const maxExits = 3

// crashed counts an early death of one of g's children; from the second in
// a row on, new children wait an exponential back-off.
func (s *Supervisor) crashed(g *gen, why string) {
	g.crashes++
	g.lastExit = why
	if len(g.exits) < maxExits && !slices.Contains(g.exits, why) {
		g.exits = append(g.exits, why)
	}
	if g.crashes == 1 {
		return
	}
	d := min(s.t.FirstBackoff<<min(g.crashes-2, 10), s.t.MaxBackoff)
	g.nextSpawn = s.now.Add(d)
	s.log(slog.LevelWarn, "children keep dying early; backing off", "generation", g.Num, "crashes", g.crashes, "retry_in", d.String())
}

func (s *Supervisor) childSaid(e ChildSaid) {
	k := s.kid(e.Child)
	if k == nil {
		return
	}
	switch e.Event {
	case contract.EventReady:
		k.ready = true
	case contract.EventRetireRequest:
		s.retireOnRequest(k, Count{SelfRetire: true})
	case contract.EventRetireMaxConnections:
		s.retireOnRequest(k, Count{Counter: scoreboard.RecycledMaxConnections, N: 1})
	case contract.EventClosed:
		k.closed = true
		s.cutIfClosed(k.gen)
	case contract.EventRetiring:
		k.handedOff = true // it drains already, whoever asked
		if !k.retiring {
			k.retiring = true
			if !k.gen.draining && s.stop == nil {
				s.count(Count{SelfRetire: true})
				k.gen.respawn++
				s.log(slog.LevelInfo, "child retiring; starting its replacement", "pid", k.pid, "generation", k.gen.Num, "slot", k.slot)
				s.maintain()
			}
		}
	}
}

func (s *Supervisor) childExited(e ChildExited) {
	k := s.kid(e.Child)
	if k == nil {
		return
	}
	s.removeKid(k)
	s.cutIfClosed(k.gen)
	up := s.now.Sub(k.started)
	attrs := []any{"pid", k.pid, "generation", k.gen.Num, "slot", k.slot, "status", e.Status, "uptime", up.Round(1e6).String()}
	expected := k.retiring || k.gen.draining || s.stop != nil
	if e.LastRequest != "" && !expected {
		attrs = append(attrs, "last_request", e.LastRequest)
	}
	why := e.Status
	if e.Reason != "" {
		attrs = append(attrs, "reason", e.Reason)
		why += ": " + e.Reason
	}
	if expected {
		s.count(Count{Counter: scoreboard.ExitedNormally, N: 1})
		s.log(slog.LevelInfo, "child exited", attrs...)
	} else {
		s.count(Count{Counter: e.Counter, N: 1})
		// Abnormal exits are logged at notice whatever the level, as
		// Apache does.
		s.log(notice, "child exited unexpectedly; replacing it", attrs...)
		k.gen.respawn++
		if up < s.t.EarlyDeath || !k.ready {
			s.crashed(k.gen, why)
		} else {
			// A child that served ends the streak, and its back-off.
			k.gen.crashes, k.gen.nextSpawn = 0, time.Time{}
		}
	}
	s.reapGenerations()
	s.maintain()
}

// A child is retired "replacement first" when the master chose to retire
// it (a rolling restart, an MPM's retire), or the child asked (an
// operator's SIGUSR1 or SIGTERM to it, max_connections_per_child): its
// replacement is started, and only once the replacement reports ready is
// the old child sent DrainSignal. Until then it goes on accepting, so
// retiring one child never leaves nobody to take the next connection, even
// when it is the only child.
//
// A child that asked to go waits only when no other child of its generation
// accepts: otherwise the others take the next connections (the listening
// socket's backlog holds them for the moment all are busy, as for any busy
// server), and max_connections_per_child stays exact under load, where
// waiting would let the child accept for as long as its replacement takes
// to start.

// retireOnRequest answers a child's retire request: start its replacement,
// then let it drain. cnt counts the recycle under its cause (not when the
// child's generation is going anyway).
func (s *Supervisor) retireOnRequest(k *child, cnt Count) {
	if k.retiring {
		return
	}
	if k.gen.draining || s.stop != nil {
		s.handOff(k, 0) // its generation is going anyway
		return
	}
	k.retiring = true
	s.count(cnt)
	successor := s.spawnOne(k.gen) // 0 in a crash back-off
	if successor == 0 {
		// No slot or no spawn now: it drains at once, and maintain starts
		// its replacement as soon as it can.
		k.gen.respawn++
	}
	others := s.othersAccepting(k)
	s.log(slog.LevelInfo, "child asked to retire; starting its replacement first", "pid", k.pid, "generation", k.gen.Num, "slot", k.slot,
		"replacement", s.pidOf(successor), "others_accepting", others)
	if others > 0 {
		successor = 0 // others take the next connections: drain now
	}
	s.handOff(k, successor)
}

// othersAccepting counts the ready children of k's generation, other than
// k, that are not retiring: those that take the next connections if k
// stops accepting.
func (s *Supervisor) othersAccepting(k *child) int {
	n := 0
	for _, o := range s.kids {
		if o != k && o.gen == k.gen && o.ready && !o.retiring {
			n++
		}
	}
	return n
}

// handOff marks k as retiring and tells it to drain once successor (a
// child of the same generation) is ready, or at once when successor is 0.
func (s *Supervisor) handOff(k *child, successor ChildID) {
	k.retiring = true
	k.successor, k.handoffBy = successor, s.now.Add(s.t.HandoffBound)
	s.stepHandoff(k)
}

// stepHandoffs moves on every hand-over in progress.
func (s *Supervisor) stepHandoffs() {
	for _, k := range s.kids {
		if k.retiring && !k.handedOff {
			s.stepHandoff(k)
		}
	}
}

func (s *Supervisor) stepHandoff(k *child) {
	if k.handedOff {
		return
	}
	if k.successor != 0 {
		succ := s.kid(k.successor)
		if succ != nil && succ.pid != 0 {
			k.successorPID = succ.pid
		}
		switch {
		case succ != nil && succ.ready:
			s.log(slog.LevelInfo, "replacement ready; the retiring child drains", "pid", k.pid, "generation", k.gen.Num, "slot", k.slot, "replacement", succ.pid)
		case succ == nil:
			s.log(slog.LevelWarn, "the replacement exited before it was ready; the child drains anyway", "pid", k.pid, "replacement", k.successorPID)
		case s.now.After(k.handoffBy):
			s.log(slog.LevelWarn, "the replacement is not ready in time; the child drains anyway", "pid", k.pid, "replacement", s.pidOf(k.successor), "waited", s.t.HandoffBound.String())
		default:
			return // still starting
		}
	}
	k.successor, k.successorPID, k.handedOff = 0, 0, true
	s.emit(Signal{Child: k.id, Sig: contract.DrainSignal})
}

// kill sends SIGKILL to k: an MPM's Kill action.
func (s *Supervisor) kill(k *child) { s.emit(Signal{Child: k.id, Sig: syscall.SIGKILL}) }

// pidOf is id's pid once the executor said it, else id itself, which the
// executor writes as the pid (the child was spawned in the same batch).
func (s *Supervisor) pidOf(id ChildID) any {
	if k := s.kid(id); k != nil && k.pid != 0 {
		return k.pid
	}
	if id == 0 {
		return 0
	}
	return id
}
