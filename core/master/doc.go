// Package master is phased's control process: it owns the listening sockets,
// the pid file, the logs and the control socket, and keeps a pool of children
// that serve.
//
// Run starts a master and returns when it stops. Everything that changes the
// master's state — a child exiting, a child reporting "ready" or "retiring",
// a signal, a control-socket command, the one-second maintenance tick — is an
// event handled by one goroutine, so the supervisor needs no locks and its
// decisions happen in a clear order.
//
// Generations: every successful configuration pass starts a generation of
// children. A graceful restart reads the configuration again; when it fails
// the old generation keeps serving and the error goes back to whoever asked.
// When it succeeds the new generation is spawned at once, and the old one is
// told to drain only when the new one reports ready (or after a bound), so
// the shared sockets always have somebody accepting. A draining generation
// gets graceful_shutdown_timeout, then SIGINT (stop now), then SIGKILL.
//
// Children die with the master (Pdeathsig), run in their own process group
// (a Ctrl-C on the master's terminal reaches the master only), and a child
// that exits unexpectedly is logged at notice with its exit status or signal
// and replaced, with an exponential back-off when children keep dying early.
package master
