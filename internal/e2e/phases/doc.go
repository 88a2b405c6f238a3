// Package phases holds the end-to-end tests of phased's life cycle: the
// configuration passes of the double start (and double_start: false), the
// phases from configure to shutdown as exec hooks see them, hook order,
// timeouts and failures on start and on a graceful restart, and the
// examples/startup-scripts example, against PostgreSQL too. The tests run
// the real binary through the harness in internal/e2e and skip under go
// test -short.
package phases
