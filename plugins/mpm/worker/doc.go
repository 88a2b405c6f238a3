// Package worker is phased's built-in worker MPM: Apache 2.4's worker MPM
// policy over phased's worker child model, where each child serves up to
// threads_per_child connections and accepts only while a slot is idle.
//
// # Settings
//
// The `mpm:` section takes Apache's directives in snake_case, with Apache's
// defaults:
//
//	start_servers        3     children a generation starts with
//	server_limit         16    most children (ServerLimit)
//	thread_limit         64    most threads_per_child (ThreadLimit)
//	threads_per_child    25    slots per child
//	min_spare_threads    75    spawn below this many idle slots
//	max_spare_threads    250   retire above this many idle slots
//	max_request_workers  400   most slots serving at once; alias max_clients
//	max_connections_per_child 0  recycle a child after that many (0: never)
//
// and phased's own:
//
//	keep_start_servers   false never retire below start_servers children,
//	                           and replace lost ones (HWSKeepStartServers)
//	max_connections_per_child_jitter 0  up to that many more, per child
//	max_memory_per_child 0     retire a child above it: bytes or "512M"
//	accept_mutex         none  epoll, flock or none (see the prefork MPM)
//
// Configure applies worker_check_config's clamps, and those Apache applies
// when it starts running, each with a note worded as Apache's warning:
// threads_per_child is capped by thread_limit, max_request_workers is at
// least threads_per_child and is rounded down to a multiple of it, the number
// of children is max_request_workers / threads_per_child capped by
// server_limit (this is the ServerLimit Configure returns), start_servers is
// capped by it, and max_spare_threads is raised to min_spare_threads +
// threads_per_child + 1. An unknown key, a wrong type or a value out of range
// is a *mpm.SettingError naming the key.
//
// # Maintenance
//
// Maintain is perform_idle_server_maintenance, once a second, over the
// current generation. Idle slots are counted over the children that are not
// retiring (a starting child counts as all idle, as in Apache). Above
// max_spare_threads one child a tick is retired: the highest slot with no
// busy thread. Below min_spare_threads children are spawned at the spawn
// rate: 1, doubled after each tick that spawned, up to 32, back to 1 after a
// tick that did not need to; for the first ten spawning ticks of a new
// generation the rate is held instead of doubled. Spawning 8 or more children
// at once is logged at info.
//
// Where phased goes beyond Apache: reaching max_request_workers is logged at
// warn every tick it happens, not once per lifetime; keep_start_servers
// (Hitachi HTTP Server's HWSKeepStartServers); a child over
// max_memory_per_child is retired, at most one a tick, with its replacement
// spawned first; the first tick of a generation starts whatever the
// master has not yet started of start_servers; and connections waiting in
// the listeners' accept queues count against the idle slots, the children
// they need spawned at once, not at the spawn rate. A retiring child holds its
// slot until it exits, as each generation has its own scoreboard.
package worker
