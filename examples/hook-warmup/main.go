// Command hook-warmup is a phased hook plugin that warms a cache once the
// configuration is final: at post-config it reads every file under
// document_root (pulling it into the page cache) and writes an index of
// them, one line per file: its SHA-256, its size and its path.
//
// It checks its configuration at the configure phase (document_root must be
// an existing directory), only counts the files on pass 1, the rehearsal of
// the double start, and logs the children the master spawns and reaps
// (plugin protocol 2). Its one setting, index, moves the index file (plugin
// protocol 3). Build it and hang it on post-config:
//
//	go build -o bin/hook-warmup ./examples/hook-warmup
//
//	hooks: [{name: warmup, plugin: ./bin/hook-warmup, phase: post-config, timeout: 30s, settings: {index: var/warmup.index}}]
//
// It is a separate process that the phased master starts and speaks to over
// go-plugin's gRPC; run by hand, it says so and exits 1. It imports only the
// standard library and phased's sdk/.
package main

import "github.com/phasedhq/phased/sdk/hook"

func main() {
	hook.Serve(New())
}
