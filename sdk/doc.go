// Package sdk is the root of what plugin and app authors import, and nothing
// more:
//
//   - sdk/mpm: write a process model (an MPM plugin): how many children the
//     master keeps, when to spawn and retire them, how one child serves.
//   - sdk/hook: write a hook plugin that runs at the master's lifecycle
//     phases and hears of children starting and exiting.
//   - sdk/child: make a Go program a phased child (an http.Handler served on
//     the master's sockets, with per-child init and exit hooks).
//   - sdk/sdktest: test an MPM or hook plugin in process, without a master.
//
// Everything else (the scoreboard, the access log, the master-child
// contract, the child runtime) is phased's own implementation under
// internal/, free to change between releases. The exported API of the
// packages above is held against api.txt by a test in this folder, so a
// change to it is deliberate and shows in review. This package itself has
// no API.
package sdk
