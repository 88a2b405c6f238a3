// Package master is phased's control process: it owns the listening sockets,
// the pid file, the logs, the control socket and the plugin processes, and
// keeps a pool of children that serve.
//
// Run starts a master and returns when it stops. The master decides nothing
// itself: its supervisor (core/supervisor), a pure state machine, does.
// Everything that happens — a child exiting, a child reporting "ready" or
// "retiring", a signal, a control-socket command, the clock — becomes one
// of the supervisor's events, handled by one goroutine, and the master
// carries out the actions that come back: it spawns children with their
// contract (internal/contract), signals them, runs configuration passes,
// asks the MPM plugin, replies on the control socket, writes the log and
// tells systemd. Slow work (a Maintain call, a plugin relaunch) runs beside
// the loop and comes back as an event.
//
// Children die with the master (Pdeathsig) and run in their own process
// group (a Ctrl-C on the master's terminal reaches the master only).
package master
