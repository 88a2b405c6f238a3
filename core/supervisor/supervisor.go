package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/phasedhq/phased/internal/loglevel"
)

// Timings are the supervisor's bounds.
type Timings struct {
	// Tick is the MPM's maintenance interval (Apache's: a second).
	Tick time.Duration
	// UrgentTick is the shortest interval between two maintenance ticks
	// when connections wait in an accept queue (Tick.Queued).
	UrgentTick time.Duration
	// ReadyBound is how long a new generation may take to become ready,
	// to which it adds its GenSpec.StartTimeout.
	ReadyBound time.Duration
	// StopKillBound is the time between StopSignal and SIGKILL, to which
	// a generation adds its GenSpec.StopTimeout.
	StopKillBound time.Duration
	// CloseBound is how long a hard stop waits for children to stop
	// accepting before it cuts them.
	CloseBound time.Duration
	// DrainGrace is how much longer than a generation's drain timeout the
	// master waits before it sends StopSignal. Each child bounds its own
	// drain by the same timeout, from when DrainSignal reaches it, cuts
	// what is left and says how much; the master's bound is for a child
	// that does not, and must not beat the others to it.
	DrainGrace time.Duration
	// EarlyDeath is the age under which a child that dies counts as a
	// crash.
	EarlyDeath time.Duration
	// FirstBackoff and MaxBackoff bound the crash back-off.
	FirstBackoff, MaxBackoff time.Duration
	// CrashesToAbort is how many crashes of a new generation, none of its
	// children ready, abort its restart.
	CrashesToAbort int
	// HandoffBound is how long a retiring child goes on accepting while
	// its replacement starts.
	HandoffBound time.Duration
	// MPMFailsToKill is how many failed maintenance calls in a row get
	// the MPM plugin killed and relaunched.
	MPMFailsToKill int
}

// DefaultTimings are the master's.
func DefaultTimings() Timings {
	return Timings{
		Tick:           time.Second,
		UrgentTick:     250 * time.Millisecond,
		ReadyBound:     10 * time.Second,
		StopKillBound:  5 * time.Second,
		CloseBound:     time.Second,
		DrainGrace:     time.Second,
		EarlyDeath:     5 * time.Second,
		FirstBackoff:   250 * time.Millisecond,
		MaxBackoff:     30 * time.Second,
		CrashesToAbort: 3,
		HandoffBound:   10 * time.Second,
		MPMFailsToKill: 3,
	}
}

// Supervisor is the master's state. Its zero value is not usable; call New.
type Supervisor struct {
	t       Timings
	now     time.Time
	out     []Action
	gens    []*gen
	current *gen
	kids    []*child // in ChildID order
	nextID  ChildID
	pending *restart
	// announcing: a restart done, announced once the old generations
	// accept no more (announce).
	announcing *announcing
	stop       *stopping
	leaving    *leaving // a graceful stop's drain delay, before stop
	// announced: the children and systemd were told the master stops.
	announced bool
	recycle   *recycling
	upgrade   *upgrading
	upgraded  bool // a new master took over: drain and exit, no shutdown phase
	startErr  error
	lastTick  time.Time
	// takingOver is the first generation of a binary upgrade's new
	// master, serving, while it takes over from the old master.
	takingOver *gen
}

type gen struct {
	GenSpec
	started time.Time
	ticks   int // maintenance ticks since the generation began
	respawn int // children to start as soon as back-off allows
	// The MPM plugin: its epoch (one more per relaunch), consecutive failed
	// ticks, whether it is known to be down, relaunch attempts and when to
	// try again, whether a call or a relaunch is in flight.
	epoch      int
	mpmFails   int
	mpmDown    bool
	mpmExited  bool
	mpmBusy    bool
	relaunches int
	mpmRetry   time.Time
	draining   bool
	deadline   time.Time
	stage      int // 0 asked to drain, 1 told to stop now, 2 killed
	// cutting: the generation is to stop at once, and waits until every
	// child has stopped accepting (or until cutBy) before cutting.
	cutting   bool
	cutBy     time.Time
	crashes   int
	nextSpawn time.Time
	lastExit  string
	// exits are the distinct reasons its children died early, the first
	// few, for the error of a generation that never became ready: its
	// children may fail in different ways (one app unhealthy, another
	// too slow to start), and the last alone may hide the one to fix.
	exits []string
}

type child struct {
	id       ChildID
	pid      int
	gen      *gen
	slot     int
	started  time.Time
	ready    bool
	retiring bool
	closed   bool // it said it stopped accepting
	// successor is the replacement this retiring child waits for before it
	// is told to drain (0 = none); handoffBy bounds the wait, and
	// handedOff says the child was told to drain.
	successor    ChildID
	successorPID int // the successor's pid, once known
	handoffBy    time.Time
	handedOff    bool
}

type restart struct {
	gen      *gen
	old      []*gen
	hard     bool
	deadline time.Time
	req      RequestID
	first    bool
	handover bool
}

type stopping struct {
	graceful bool
	replies  []RequestID
}

// leaving is a graceful stop during its drain delay: readiness says 503
// while everything serves as before, until at; then the stop begins, and
// replies wait for its end.
type leaving struct {
	at      time.Time
	replies []RequestID
}

type upgrading struct{ req RequestID }

// New returns a supervisor with timings t, before its first generation.
func New(t Timings) *Supervisor { return &Supervisor{t: t, nextID: 1} }

// Handle moves the state on by ev at now and returns what to do, in order.
func (s *Supervisor) Handle(now time.Time, ev Event) []Action {
	s.now, s.out = now, nil
	switch e := ev.(type) {
	case Started:
		s.started(e)
	case Tick:
		s.tick(e.Queued)
	case Spawned:
		if k := s.kid(e.Child); k != nil {
			k.pid = e.PID
		}
	case SpawnFailed:
		s.spawnFailed(e)
	case ChildSaid:
		s.childSaid(e)
	case ChildExited:
		s.childExited(e)
	case Command:
		s.command(e)
	case PassDone:
		s.passDone(e)
	case Maintained:
		s.maintained(e)
	case MPMExited:
		if g := s.gen(e.Gen); g != nil {
			g.mpmExited = true
		}
	case Relaunched:
		s.relaunched(e)
	case UpgradeReported:
		s.upgradeReported(e)
	case TookOver:
		if g := s.takingOver; g != nil {
			s.takingOver = nil
			s.serving(g)
		}
	case TakeOverFailed:
		s.takingOver = nil
		s.fail(fmt.Errorf("binary upgrade: %w", e.Err))
	}
	s.settle()
	return s.out
}

// settle runs after every event: hand-overs, the rolling restart and a
// pending restart move on.
func (s *Supervisor) settle() {
	s.stepHandoffs()
	s.stepRecycle()
	s.checkPending()
	s.announce(false)
}

// Done reports whether the master has stopped (stopping, and no child
// left), and the start error when the first generation never served.
func (s *Supervisor) Done() (bool, error) {
	return s.stop != nil && len(s.kids) == 0, s.startErr
}

// Upgraded reports whether a new master took over: this one drains and
// exits without the shutdown phase.
func (s *Supervisor) Upgraded() bool { return s.upgraded }

// Stopping reports whether the master is stopping, its drain delay
// included.
func (s *Supervisor) Stopping() bool { return s.stop != nil || s.leaving != nil }

// Busy reports why a restart, recycle or upgrade cannot start now, or "".
func (s *Supervisor) busy() string {
	switch {
	case s.pending != nil && s.pending.first:
		return "phased is still starting; try again when it serves"
	case s.pending != nil:
		return fmt.Sprintf("a restart to generation %d is still in progress", s.pending.gen.Num)
	case s.upgrade != nil:
		return "a binary upgrade is in progress; the new master will take the restart"
	case s.leaving != nil:
		return errStopping.Error()
	}
	return ""
}

func (s *Supervisor) emit(a Action) { s.out = append(s.out, a) }

func (s *Supervisor) log(level slog.Level, msg string, attrs ...any) {
	s.emit(Log{Level: level, Msg: msg, Attrs: attrs})
}

func (s *Supervisor) count(c Count) { s.emit(c) }

func (s *Supervisor) reply(req RequestID, ok bool, msg string) {
	if req == 0 {
		return
	}
	if ok {
		s.emit(Reply{Req: req, OK: true, Message: msg})
	} else {
		s.emit(Reply{Req: req, Err: msg})
	}
}

func (s *Supervisor) gen(num int) *gen {
	for _, g := range s.gens {
		if g.Num == num {
			return g
		}
	}
	return nil
}

func (s *Supervisor) kid(id ChildID) *child {
	i, ok := slices.BinarySearchFunc(s.kids, id, func(k *child, id ChildID) int { return int(k.id - id) })
	if !ok {
		return nil
	}
	return s.kids[i]
}

func (s *Supervisor) removeKid(k *child) {
	s.kids = slices.DeleteFunc(s.kids, func(o *child) bool { return o == k })
}

// fail ends a start that cannot succeed: the master stops with err.
func (s *Supervisor) fail(err error) {
	if s.startErr == nil {
		s.startErr = err
		s.emit(Ready{Err: err})
	}
	s.beginStop(false, 0)
}

// notice is the log level every notice record uses.
const notice = loglevel.Notice

var errStopping = errors.New("phased is stopping")
