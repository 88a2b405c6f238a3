// Package exechook runs phased's exec hooks: startup scripts in any language
// that a configuration hangs on a lifecycle phase.
//
// The contract a script sees: its environment carries PHASED_PHASE,
// PHASED_PASS, PHASED_GENERATION, PHASED_DRY_RUN, PHASED_CONFIG (the path of
// the effective configuration as JSON) and, in a child, PHASED_SLOT; stdin
// is /dev/null; every line it writes to stdout is logged at info and every
// line to stderr at warn, tagged with the hook's name and phase; exit status
// 0 is success, anything else fails the phase with an Error that quotes the
// last lines of stderr. A hook that outlives its timeout is stopped with its
// whole process group (SIGTERM, then SIGKILL), so a script's own children
// do not linger, and a hook dies with the process that started it.
//
// The master runs configure, open-logs, post-config and shutdown hooks
// through Run; children (phased's own, and Go apps built on sdk/child) run
// child-init and child-exit hooks through it too.
package exechook
