// Package prefork is phased's built-in prefork MPM: Apache 2.4's prefork MPM
// policy over phased's prefork child model, where each child serves one
// connection at a time.
//
// # Settings
//
// The `mpm:` section takes Apache's directives in snake_case, with Apache's
// defaults:
//
//	start_servers        5     children a generation starts with
//	min_spare_servers    5     spawn below this many idle children
//	max_spare_servers    10    retire above this many idle children
//	server_limit         256   most children (ServerLimit)
//	max_request_workers  256   most children serving; alias max_clients
//	max_connections_per_child 0  recycle a child after that many (0: never)
//
// and phased's own: keep_start_servers (false), max_connections_per_child_jitter
// (0), max_memory_per_child (0; bytes or "512M") and accept_mutex ("epoll",
// "flock" or "none"). With many children on one shared socket, waking every
// child for every connection ("none") wastes the CPUs; "epoll" (the
// default) has the kernel wake one waiting child without a lock, so a child
// that is stopped or wedged holds nobody up, as Apache on Linux accepts
// on a single listener without its AcceptMutex. "flock" is Apache's
// AcceptMutex flock: children take turns holding a lock, and a holder that
// stops stops every sibling from accepting (the master logs it).
//
// Configure applies prefork_check_config's clamps, and prefork_run's, each
// with a note worded as Apache's warning: max_request_workers is capped by
// server_limit and is the ServerLimit Configure returns, start_servers is
// capped by it, and max_spare_servers is raised to min_spare_servers + 1.
//
// # Maintenance
//
// Maintain is prefork's perform_idle_server_maintenance: a child is idle when
// it is ready with its slot idle, or still starting. Above max_spare_servers
// one idle child a tick is retired (the highest slot); below
// min_spare_servers children are spawned at the spawn rate, 1 doubling to 32,
// held for ten spawning ticks after a restart, with an info log when 8 or
// more are spawned. Connections waiting in the listeners' accept queues
// (the master's sample) count against the idle children: each needs one,
// since a keep-alive connection holds its child. When any wait, the tick
// spawns at once what brings the idle children back to min_spare_servers,
// bounded by the free slots, rather than the spawn rate: Apache's doubling
// took six ticks to add 50 children while their clients waited. With no free slot the server has reached
// max_request_workers, which phased logs at warn every time (Apache once).
// keep_start_servers, max_memory_per_child and the first tick's start of
// start_servers are as in the worker MPM.
package prefork
