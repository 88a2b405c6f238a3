// Package supervisor is the master's decision-making, as a pure state
// machine: state, plus an event, plus the time, in; actions out. It never
// makes a syscall, reads a clock or starts a goroutine; the master
// (core/master) is the executor that turns its actions into processes,
// signals, replies and log lines, and turns what happens (a child exiting, a
// signal, a control command, the tick) back into events. So every rule of
// supervision is unit-tested with a fake clock, in microseconds, and the
// end-to-end tests prove the executor.
//
// The story. Every successful configuration pass starts a generation of
// children (Started for the first, PassDone for each restart). A graceful
// restart spawns the new generation at once; the old one is told to drain
// only when the new one has start_servers children ready (or, with at least
// one ready, after ReadyBound), so the shared sockets always have somebody
// accepting. If the new generation never becomes ready, it is drained
// instead and the old one keeps serving (Rollback). A draining generation
// gets its drain timeout, then StopSignal, then SIGKILL. A hard restart or
// stop first has every child of the generation stop accepting and say so
// (or CloseBound pass), and only then cuts them all at once, so that no
// client whose request was cut reconnects to a sibling that is about to be
// cut too.
//
// Children are retired "replacement first": when the master retires one (a
// rolling restart, an MPM's retire) or the child asks (an operator's
// signal to it, max_connections_per_child), its replacement is spawned and
// the child is told to drain (contract.DrainSignal) only once the
// replacement is ready or HandoffBound passed. A child that exits unasked
// is replaced; children that keep dying young are replaced with an
// exponential back-off, and a new generation whose children keep dying
// before any is ready aborts its restart.
//
// The MPM is asked once a Tick what to do (Maintain), beside the event
// loop; its answer comes back as an event. A plugin that fails
// MPMFailsToKill times in a row is killed and relaunched with back-off,
// while the children keep serving.
//
// Children are named by ChildID, which the supervisor hands out when it
// asks for a spawn; the executor maps them to pids (and a ChildID in a Log
// action's attributes to the child's pid).
package supervisor
