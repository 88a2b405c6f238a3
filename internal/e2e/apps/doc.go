// Package apps holds the end-to-end tests of Go apps served by phased
// through sdk/child (app.command): testdata/app_hello's children in the
// scoreboard and the access log, child-init hooks in app children, and
// examples/app-pgpool's pool per child against a real PostgreSQL (never a
// connection in the master, recycles, a database down or lost). The tests
// run the real binary through the harness in internal/e2e and skip under go
// test -short.
package apps
