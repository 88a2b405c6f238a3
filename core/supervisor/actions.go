package supervisor

import (
	"log/slog"
	"syscall"

	"github.com/phasedhq/phased/internal/scoreboard"
)

// Action is something the executor must do, in the order Handle returns
// them.
type Action interface{ action() }

// Spawn starts a child of generation Gen in Slot. The executor answers
// with Spawned or SpawnFailed before it handles anything else.
type Spawn struct {
	Child ChildID
	Gen   int
	Slot  int
}

// Signal sends Sig to a child.
type Signal struct {
	Child ChildID
	Sig   syscall.Signal
}

// Reply answers a control command (none when Req is 0).
type Reply struct {
	Req     RequestID
	OK      bool
	Message string
	Err     string
}

// Notify tells systemd (sd_notify) States; WithStatus adds the STATUS=
// line naming the serving generation.
type Notify struct {
	States     []string
	WithStatus bool
}

// Log writes a record to the error log. A ChildID among the attribute
// values is written as the child's pid.
type Log struct {
	Level slog.Level
	Msg   string
	Attrs []any
}

// Count adds N to a master counter; SelfRetire counts a child that
// retires on its own (scoreboard.Counters.CountSelfRetire) instead.
type Count struct {
	Counter    scoreboard.Counter
	N          uint64
	SelfRetire bool
}

// RunPass runs a configuration pass for a restart; the executor answers
// with PassDone.
type RunPass struct {
	Req  RequestID
	Hard bool
}

// Maintain asks generation Gen's MPM what to do, beside the event loop;
// the executor answers with Maintained. Ticks is the number of ticks since
// the generation began (the MPM's TicksSinceRestart).
type Maintain struct {
	Gen   int
	Epoch int
	Ticks int
}

// KillMPM kills generation Gen's MPM plugin, beside the event loop.
type KillMPM struct{ Gen int }

// RelaunchMPM launches generation Gen's MPM plugin again, beside the
// event loop; the executor answers with Relaunched.
type RelaunchMPM struct{ Gen int }

// CommitListeners closes the listeners that the pass which made
// generation Gen no longer wants: the generation serves.
type CommitListeners struct{ Gen int }

// Rollback undoes the pass that made generation Gen, which never became
// ready: the listeners as they were, and generation Back's configuration
// the master's again.
type Rollback struct {
	Gen  int
	Back int
}

// GenerationDone releases what generation Gen held (its scoreboard, its
// effective configuration, its hook plugins): it has no child left.
type GenerationDone struct{ Gen int }

// Ready reports the first start's outcome to whoever started the master:
// nil when the first generation serves.
type Ready struct{ Err error }

// TakeOver is a binary upgrade's new master taking the pid file and the
// control socket from the old one; the executor answers with TookOver or
// TakeOverFailed.
type TakeOver struct{}

// StartUpgrade starts a binary upgrade's new master; the executor answers
// with UpgradeReported.
type StartUpgrade struct{}

// AbortUpgrade ends a failed upgrade's new master.
type AbortUpgrade struct{}

// HandOver lets go of the pid file and the control socket and sends the
// new master its go-ahead.
type HandOver struct{}

// Stopping tells every generation's children, and those of any generation
// still to come, that the master is stopping: their readiness probe
// answers 503 from now on (scoreboard.Board.SetStopping).
type Stopping struct{}

// ReleaseListeners lets go of the master's copies of the listening
// sockets: the master stops, and no child will be started again. Once the
// draining children have closed theirs too, the kernel refuses new
// connections (a balancer or client fails over at once) instead of
// queueing them for nobody and resetting them when the master exits.
type ReleaseListeners struct{}

func (Spawn) action()            {}
func (Stopping) action()         {}
func (ReleaseListeners) action() {}
func (Signal) action()           {}
func (Reply) action()            {}
func (Notify) action()           {}
func (Log) action()              {}
func (Count) action()            {}
func (RunPass) action()          {}
func (Maintain) action()         {}
func (KillMPM) action()          {}
func (RelaunchMPM) action()      {}
func (CommitListeners) action()  {}
func (Rollback) action()         {}
func (GenerationDone) action()   {}
func (Ready) action()            {}
func (TakeOver) action()         {}
func (StartUpgrade) action()     {}
func (AbortUpgrade) action()     {}
func (HandOver) action()         {}
