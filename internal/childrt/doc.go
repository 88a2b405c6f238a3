// Package childrt is the runtime of a phased child: the process that accepts
// and serves connections on sockets its master opened. phased's own child
// (static files) and Go apps made with sdk/child both run on it.
//
// The master starts each child with a contract (internal/contract): the
// listening sockets, the scoreboard, the counters, a pipe on which the child
// reports its life ("ready", "retiring"), the access log, all by name, and
// the settings. Current reads it; Runtime.Serve serves an http.Handler until
// the master, or an operator, asks the child to go. The status page and the
// metrics are mounted by the runtime itself, so every child answers them.
//
// A child leaves in one of two ways:
//
//   - Gracefully, on DrainSignal (SIGWINCH), which the master sends. An
//     operator's SIGUSR1 or SIGTERM to one child is a request: the child
//     tells the master and goes on accepting; the master starts its
//     replacement and sends DrainSignal once the replacement is ready, so a
//     child retired by hand never leaves a moment with fewer children
//     accepting. (Without a master, for example in development, SIGUSR1 and
//     SIGTERM drain at once.) Draining, the child tells the master it is
//     retiring, stops accepting, lets every accepted connection finish its
//     request, answers the next request on each keep-alive connection with
//     "Connection: close", closes connections that stay idle for a short
//     quiet period, and exits 0. A connection that was accepted but whose
//     request has not been read yet is served, not dropped: that is the
//     difference from calling http.Server.Shutdown alone. The drain is
//     bounded by the drain timeout (the master's graceful_shutdown_timeout);
//     connections still open then are cut and counted in the log.
//   - Immediately, on SIGINT: every connection is closed and the child exits.
//
// If the master dies, the kernel sends the child SIGTERM (Pdeathsig); the
// child notices that its parent changed and drains with a short bound.
package childrt
