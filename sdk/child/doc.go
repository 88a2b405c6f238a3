// Package child is the runtime of a phased child: the process that accepts
// and serves connections on sockets its master opened.
//
// The master starts each child with the listening sockets as inherited file
// descriptors (3, 4, ... in the order of the `listen` config key), a pipe on
// which the child reports its life ("ready", "retiring"), and optionally the
// access log. All of it is described by PHASED_CHILD_* environment variables
// (see the Env constants). Current reads them; Runtime.Serve serves an
// http.Handler until the master, or an operator, asks the child to go.
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
//     retiring, stops accepting, lets every accepted connection finish its request, answers
//     the next request on each keep-alive connection with "Connection: close",
//     closes connections that stay idle for a short quiet period, and exits 0.
//     A connection that was accepted but whose request has not been read yet
//     is served, not dropped: that is the difference from calling
//     http.Server.Shutdown alone. The drain is bounded by the drain timeout
//     (the master's graceful_shutdown_timeout); connections still open then
//     are cut and counted in the log.
//   - Immediately, on SIGINT: every connection is closed and the child exits.
//
// If the master dies, the kernel sends the child SIGTERM (Pdeathsig); the
// child notices that its parent changed and drains with a short bound.
package child
