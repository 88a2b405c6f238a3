// Package status holds the end-to-end tests of what phased shows of itself:
// the status page (HTML rendered in Chromium, ?json, ?auto against Apache's
// own output in testdata/apache-status), /metrics, the access log formats,
// and systemd's notify protocol and socket activation. The tests run the
// real binary through the harness in internal/e2e and skip under go test
// -short.
package status
