// Package apps holds the end-to-end tests of apps served by phased. Go apps
// through sdk/child (app.command): testdata/app_hello's children in the
// scoreboard and the access log, child-init hooks in app children, and
// examples/app-pgpool's pool per child against a real PostgreSQL (never a
// connection in the master, recycles, a database down or lost). Apps in any
// language (app.type: http), with testdata/httpapp, a node server, as each
// child's app server: what the child's proxy forwards and how (headers,
// bodies, trailers, 100-continue, 413, streams, upgrades), slow clients
// that never hold the app, one request at a time under prefork and
// threads_per_child under worker, the app's start, stop, crash and memory
// with its child, bad app settings on a graceful restart, and the app in
// the status. The tests run the real binary through the harness in
// internal/e2e and skip under go test -short.
package apps
