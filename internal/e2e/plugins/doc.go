// Package plugins holds the end-to-end tests of phased's plugins: hook
// plugins relaunched every pass, ordered with exec hooks, timing out or
// dying mid-phase; MPM plugins that crash, hang in Maintain or fail at
// start; the third-party examples (examples/mpm-ondemand,
// examples/hook-warmup); and a plugin's clean environment. Its faulty
// plugins are in testdata. The tests run the real binary through the harness
// in internal/e2e and skip under go test -short.
package plugins
