package supervisor

import (
	"syscall"
	"time"

	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/sdk/mpm"
)

// ChildID names a child for the lifetime of a Supervisor.
type ChildID int

// RequestID names a control command awaiting its reply; 0 is a command
// nobody waits for (a signal).
type RequestID int

// Event is something that happened, for Handle.
type Event interface{ event() }

// GenSpec is a generation as a configuration pass made it.
type GenSpec struct {
	// Num is the generation's number.
	Num int
	// StartServers is how many ready children make the generation
	// serving (0: ready at once, an on-demand MPM).
	StartServers int
	// ServerLimit is the number of process slots.
	ServerLimit int
	// ThreadsPerChild is the number of worker slots per child.
	ThreadsPerChild int
	// DrainTimeout bounds the generation's graceful drain
	// (graceful_shutdown_timeout).
	DrainTimeout time.Duration
	// DrainDelay is how long a graceful stop keeps the generation serving
	// while its readiness probe says 503, before it drains
	// (health.drain_delay).
	DrainDelay time.Duration
	// StartTimeout is how much longer than Timings.ReadyBound the
	// generation may take to become ready: a child that owns an app server
	// waits up to its app.start_timeout for it to answer.
	StartTimeout time.Duration
	// StopTimeout is how much longer than Timings.StopKillBound the
	// generation's children may take to exit once told to stop
	// (StopSignal) before they get SIGKILL: a child that owns an app
	// server stops it first, and waits up to its app.stop_timeout.
	StopTimeout time.Duration
	// MPM is mpm.name; Plugin and PluginPID name its plugin process, for
	// the log.
	MPM       string
	Plugin    string
	PluginPID int
}

// Started: the first generation's configuration passes succeeded (the
// executor committed them). Handover is set on a binary upgrade's new
// master: once the generation serves, it takes over from the old master.
type Started struct {
	Gen      GenSpec
	Handover bool
}

// Tick is the executor's clock: sent a few times a second.
type Tick struct {
	// Queued: connections wait in a listener's accept queue at this beat
	// for children whose connection holds a slot (prefork, worker). The
	// MPM's maintenance then runs as soon as UrgentTick has passed since
	// the last, not a Tick after it: whether those connections need more
	// children is its call, and clients that wait for a child should not
	// also wait for the clock (keep-alive clients beyond the children
	// waited up to a second more for the tick that spawned theirs).
	Queued bool
}

// Spawned: the child Spawn asked for runs as PID.
type Spawned struct {
	Child ChildID
	PID   int
}

// SpawnFailed: the child Spawn asked for could not be started.
type SpawnFailed struct {
	Child ChildID
	Err   error
}

// ChildSaid: a child wrote an event line.
type ChildSaid struct {
	Child ChildID
	Event contract.Event
}

// ChildExited: a child's process ended.
type ChildExited struct {
	Child ChildID
	// Status describes how ("exit status 1", "killed by signal killed").
	Status string
	// Counter is the counter an unexpected exit of this kind adds to
	// (scoreboard.ExitCounter).
	Counter scoreboard.Counter
	// LastRequest is the request line its busiest slot was serving.
	LastRequest string
	// Reason is why the child said it failed before it exited (its
	// child-init's error), or "".
	Reason string
}

// The commands an operator gives, by the control socket or a signal.
const (
	CmdGraceful     = "graceful"
	CmdRestart      = "restart"
	CmdRecycle      = "recycle"
	CmdUpgrade      = "upgrade"
	CmdGracefulStop = "graceful-stop"
	CmdStop         = "stop"
)

// Command is an operator's command; Req is 0 for a signal.
type Command struct {
	Req RequestID
	Cmd string
	// Signal, when set, is the signal that gave the command (logged).
	Signal syscall.Signal
}

// PassDone is the outcome of RunPass: the new generation, or why not.
type PassDone struct {
	Req  RequestID
	Hard bool
	Gen  GenSpec
	Err  error
}

// Maintained is an MPM's answer to Maintain, or why there is none (Err,
// which says when the call timed out).
type Maintained struct {
	Gen   int
	Epoch int
	Resp  *mpm.MaintainResponse
	Err   error
}

// MPMExited: the executor saw generation Gen's MPM plugin process gone.
type MPMExited struct{ Gen int }

// Relaunched is the outcome of RelaunchMPM: on success, the new plugin
// (its name and pid) and its limits.
type Relaunched struct {
	Gen             int
	Plugin          string
	PluginPID       int
	ServerLimit     int
	ThreadsPerChild int
	Err             error
}

// UpgradeReported is a binary upgrade's outcome: nil when the new master
// (PID) serves and waits for HandOver. Started reports whether the new
// master ran at all.
type UpgradeReported struct {
	Started bool
	PID     int
	Err     error
}

// TookOver: a binary upgrade's new master took the pid file and the
// control socket from the old one.
type TookOver struct{}

// TakeOverFailed: a binary upgrade's new master could not take over the
// pid file or the control socket; it stops.
type TakeOverFailed struct{ Err error }

func (Started) event()         {}
func (Tick) event()            {}
func (Spawned) event()         {}
func (SpawnFailed) event()     {}
func (ChildSaid) event()       {}
func (ChildExited) event()     {}
func (Command) event()         {}
func (PassDone) event()        {}
func (Maintained) event()      {}
func (MPMExited) event()       {}
func (Relaunched) event()      {}
func (UpgradeReported) event() {}
func (TookOver) event()        {}
func (TakeOverFailed) event()  {}
