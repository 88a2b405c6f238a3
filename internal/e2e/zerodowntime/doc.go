// Package zerodowntime holds the end-to-end tests of phased's operations
// that must lose no request: graceful restarts under load (and a bad
// configuration on one), graceful stop, the rolling recycle, a child retired
// by a signal, bounded drains, the binary upgrade and reopening the logs.
// The tests run the real binary through the harness in internal/e2e and
// skip under go test -short.
package zerodowntime
