// Package acceptmutex lets children that share one listening socket accept
// without a thundering herd, so that a new connection wakes one child
// instead of all of them: either without a lock, the kernel waking one
// waiting child (ListenWakeOne, what a prefork child does by default), or
// through Apache's AcceptMutex, children taking turns holding a lock
// (Listen).
//
// # The herd
//
// A phased master opens each listening socket once and every child
// inherits it. A Go child that serves it with net.FileListener hands the
// socket to the runtime's netpoller, which registers it with epoll in
// edge-triggered mode and without EPOLLEXCLUSIVE. The kernel then wakes
// every child's netpoller for every new connection; one child's accept
// wins, and the others either get EAGAIN (a prototype measured about 3.4
// failed accepts per connection with 4 children) or, when epoll re-checks
// the socket before returning, go back to sleep inside the kernel. Either
// way every child is scheduled for every connection, and the waste grows
// with the number of children: it is the thundering herd that
// Apache's prefork MPM avoids with its AcceptMutex directive (flock, fcntl,
// sysvsem or pthread), and the reason a prefork with many children needs
// an accept strategy at all.
//
// # The mutex
//
// Listen does what Apache's flock method does. Each child opens the lock
// file itself (flock belongs to an open file description: a descriptor
// inherited from the master would be one lock shared by all children, and
// would exclude nobody), keeps its own duplicate of the socket out of the
// netpoller, and accepts in a loop:
//
//	flock(LOCK_EX)
//	poll(socket, POLLIN, 100 ms) until readable
//	accept4
//	flock(LOCK_UN)
//
// Only the lock holder sleeps on the socket, so a connection wakes one
// process, and that process gets it. The holder lets the lock go as soon as
// it has accepted, so a child busy serving never holds it; it keeps the lock
// across poll timeouts, because on Linux a flock waiter that is woken and
// loses the lock again wakes every waiter queued behind it (a herd of its
// own, every 100 ms, in every idle child). The timeout only bounds how long
// a closed Listener takes to notice. The accepted descriptor becomes an
// ordinary net.Conn (net.FileConn), served by the netpoller like any other
// connection: only accept is serialised. The socket is non-blocking, so an
// accept that loses a race anyway (to a process that accepts without the
// lock) returns EAGAIN instead of blocking; Stats counts those as Failed.
//
// A Listener is a net.Listener: give it to http.Serve or to a prefork
// loop that accepts one connection at a time. Close makes a blocked Accept
// return net.ErrClosed within the poll timeout (at once if it is waiting
// for the lock) and lets the lock go at once, so the other children carry
// on without it; a graceful retirement closes the Listener first and then
// drains.
//
// # What it buys, measured
//
// bench/herd serves 32 prefork children (one connection at a time each)
// with 32 clients on a 2-CPU machine. On Linux 6.x the woken epoll waiters
// re-check readiness before returning, so most of the herd never reaches
// user space: without the mutex a connection costs only 0.1 to 0.3 failed
// accepts, but about 30 scheduler runs across the children. The mutex
// makes failed accepts 0. What it saves beyond that depends on the
// children's GOMAXPROCS: every lock handoff puts a Go runtime into a long
// blocking syscall (flock, then poll), and with more than one P the runtime
// keeps the P and polls in sysmon for up to 10 ms each time. With
// GOMAXPROCS=1 (right for a prefork child, which serves one connection at a
// time) the mutex served 1.6 to 2.3 times the requests per second of the
// netpoller, at less than half the CPU per connection and about 4 runs per
// connection instead of 29; with the default GOMAXPROCS it was level with
// the netpoller. Use it for prefork children with GOMAXPROCS=1; threaded
// children (worker, event) with a few processes gain nothing from it.
package acceptmutex
