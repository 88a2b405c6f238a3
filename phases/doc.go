// Package phases is phased's lifecycle engine: the phases a master and its
// children walk through, the hooks that run in each, and their order.
//
// The story, from Apache httpd's own life cycle: a master runs a configuration pass —
// configure, open-logs, post-config — and then restarts itself once before it
// serves, so that every start proves a graceful restart will work. Pass 1
// binds the listeners and opens the logs in the foreground, where an error
// still reaches the terminal; it is torn down (logs closed, plugins stopped;
// the listeners are kept) and pass 2 runs before any child starts. Every
// graceful restart is one more pass, with the next generation number.
// `phased -t` runs the configure phase only, as a dry run.
//
// Children have phases of their own: child-init runs in each new child
// before it accepts a connection (open a database pool here, as Unicorn's
// after_fork), child-exit in each retiring child after its last request.
// Master-side hooks never run when a child is recycled. shutdown runs once in
// the master when it stops.
//
// A Plan is the resolved form of the `hooks:` configuration: per phase, the
// hooks in the order they run. Order follows Apache's APR_HOOK_* positions
// (really-first, first, middle, last, really-last, or any integer) refined
// by before/after lists, ties kept in config order; an unknown name or a
// cycle is an error naming the hooks (Sort). Every hook sees an Info: the
// phase, the pass, the generation, whether this is a dry run and, in a
// child, its slot. Exec hooks get the same as PHASED_* environment variables.
package phases
