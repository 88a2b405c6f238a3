package master

import (
	"syscall"
	"time"

	"github.com/phasedhq/phased/internal/contract"
)

// handoffBound is how long a retiring child goes on accepting while its
// replacement starts (child-init hooks included). Past it the child drains
// anyway: the listening sockets keep what arrives in their backlog for the
// children that still accept, so nothing is lost, only delayed.
const handoffBound = readyBound

// A child is retired "replacement first" when the master chose to retire it
// (a rolling restart, an MPM's memory retire), or the child asked (an
// operator's SIGUSR1 or SIGTERM to it, max_connections_per_child): its
// replacement is started, and only once the replacement reports ready is the
// old child sent contract.DrainSignal. Until then it goes on accepting, so
// retiring one child never leaves nobody to take the next connection, even
// when it is the only child.
//
// A child that asked to go waits only when no other child of its generation
// accepts: otherwise the others take the next connections (the listening
// socket's backlog holds them for the moment all are busy, as for any busy
// server), and max_connections_per_child stays exact under load, where
// waiting would let the child accept for as long as its replacement takes
// to start.

// retireOnRequest answers a child's retire request (an operator's SIGUSR1 or
// SIGTERM to it, or its max_connections_per_child reached): start its
// replacement, then let it drain. count counts the recycle under its cause
// (not when the child's generation is going anyway).
func (m *Master) retireOnRequest(k *kid, count func()) {
	if k.retiring {
		return
	}
	now := time.Now()
	if k.gen.draining || m.stop != nil {
		m.handOff(k, 0, now) // its generation is going anyway
		return
	}
	k.retiring = true
	count()
	successor := 0
	if !now.Before(k.gen.nextSpawn) { // a crash back-off holds new children back
		successor = m.spawnOne(k.gen)
	}
	if successor == 0 {
		// No slot or no spawn now: it drains at once, and maintain starts
		// its replacement as soon as it can.
		k.gen.respawn++
	}
	others := m.othersAccepting(k)
	m.log.Info("child asked to retire; starting its replacement first", "pid", k.pid, "generation", k.gen.num, "slot", k.slot,
		"replacement", successor, "others_accepting", others)
	if others > 0 {
		successor = 0 // others take the next connections: drain now
	}
	m.handOff(k, successor, now)
}

// othersAccepting counts the ready children of k's generation, other than k,
// that are not retiring: those that take the next connections if k stops
// accepting.
func (m *Master) othersAccepting(k *kid) int {
	n := 0
	for _, o := range m.kids {
		if o != k && o.gen == k.gen && o.ready && !o.retiring {
			n++
		}
	}
	return n
}

// handOff marks k as retiring and tells it to drain once successor (a
// child of the same generation) is ready, or at once when successor is 0.
func (m *Master) handOff(k *kid, successor int, now time.Time) {
	k.retiring = true
	k.successor, k.handoffBy = successor, now.Add(handoffBound)
	m.stepHandoff(k, now)
}

// stepHandoffs moves on every hand-over in progress; it runs after every
// event.
func (m *Master) stepHandoffs(now time.Time) {
	for _, k := range m.kids {
		if k.retiring && !k.handedOff {
			m.stepHandoff(k, now)
		}
	}
}

func (m *Master) stepHandoff(k *kid, now time.Time) {
	if k.handedOff {
		return
	}
	if k.successor != 0 {
		s, alive := m.kids[k.successor]
		switch {
		case alive && s.ready:
			m.log.Info("replacement ready; the retiring child drains", "pid", k.pid, "generation", k.gen.num, "slot", k.slot, "replacement", k.successor)
		case !alive:
			m.log.Warn("the replacement exited before it was ready; the child drains anyway", "pid", k.pid, "replacement", k.successor)
		case now.After(k.handoffBy):
			m.log.Warn("the replacement is not ready in time; the child drains anyway", "pid", k.pid, "replacement", k.successor, "waited", handoffBound)
		default:
			return // still starting
		}
	}
	k.successor, k.handedOff = 0, true
	syscall.Kill(k.pid, contract.DrainSignal)
}
