// Package event is phased's built-in event MPM: Apache 2.4's event MPM
// policy over phased's event child model, where each child has
// threads_per_child request slots, taken only while a request is handled:
// connections reading a header or idle between keep-alive requests wait in
// the netpoller without holding one, up to worker_connections a child (a
// top-level key, nginx's; see internal/childrt).
//
// The settings and their defaults are the worker MPM's (see package
// plugins/mpm/worker), plus async_request_worker_factor (2), which is read
// and validated as Apache's AsyncRequestWorkerFactor (a positive number), so
// that an Apache configuration carries over; the connections a child holds
// are bounded by worker_connections instead.
// thread_limit may go up to 100000, as in Apache's event MPM.
//
// Maintenance follows event's perform_idle_server_maintenance, which differs
// from worker's in three ways. server_limit is the size of the scoreboard,
// and the ServerLimit Configure returns: the slots beyond
// max_request_workers / threads_per_child hold children that are still
// draining. Reaching max_request_workers is decided by the active children's
// threads, before free slots are looked at. And above max_spare_threads no
// child is retired while others are still draining unless the scoreboard has
// room for a graceful restart; spawning stops at the active limit.
//
// As in the worker MPM, phased logs reaching max_request_workers every time,
// and adds keep_start_servers, max_memory_per_child and the first tick's
// start of start_servers.
package event
