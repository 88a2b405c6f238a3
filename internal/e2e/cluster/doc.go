// Package cluster holds the end-to-end tests of phased among machines:
// the health endpoints a load balancer or Kubernetes probes (liveness,
// readiness, the drain delay of a graceful stop, the allow list), the
// client's real address through the PROXY protocol and trusted proxies'
// headers, the container packaging (Dockerfile, Kubernetes manifests,
// systemd unit) checked against the configuration they run, and a rolling
// deploy of three instances behind a real HAProxy under load. The tests
// run the real binary through the harness in internal/e2e and skip under
// go test -short.
package cluster
