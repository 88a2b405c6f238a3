// Command mpm-ondemand is a phased MPM plugin that sizes the pool as PHP-FPM's
// `pm = ondemand` does: no child at rest, a child spawned when connections
// wait or every child is busy, up to max_children, and a child retired once
// it has stayed idle longer than process_idle_timeout.
//
// Build it and point mpm.name at the binary:
//
//	go build -o bin/mpm-ondemand ./examples/mpm-ondemand
//
//	mpm: {name: ./bin/mpm-ondemand, max_children: 8, process_idle_timeout: 30s}
//
// It is a separate process that the phased master starts and speaks to over
// go-plugin's gRPC; run by hand, it says so and exits 1. It imports only the
// standard library and phased's sdk/.
package main

import "github.com/phasedhq/phased/sdk/mpm"

func main() {
	mpm.Serve(New())
}
