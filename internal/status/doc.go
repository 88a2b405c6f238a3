// Package status is the status module every phased child mounts, whether it
// serves static files or a Go app: mod_status's page (HTML, Apache 2.4's
// ?auto text byte for byte, ?json) and Prometheus metrics. Both are read
// from shared memory, the generation's scoreboard and the master's counters,
// through two small interfaces (Scoreboard, Counters), so whichever child a
// request reaches answers for the whole server, and only to the networks
// status.allow names.
package status
