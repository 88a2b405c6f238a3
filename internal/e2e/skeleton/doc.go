// Package skeleton holds the end-to-end tests of phased's serving skeleton:
// the configuration (files, PHASED_ variables, -c flags, -t and -S), start
// and stop by signal and by -k verb, the pid file and the control socket,
// the daemon and `phased status`, static files and the welcome page, and
// what a killed master leaves behind. The tests run the real binary through
// the harness in internal/e2e and skip under go test -short.
package skeleton
