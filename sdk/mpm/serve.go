package mpm

import (
	"log/slog"

	plugin "github.com/hashicorp/go-plugin"

	"github.com/phasedhq/phased/internal/pluginrpc"
)

// Serve serves impl as an MPM plugin over go-plugin's gRPC transport. It is
// the one call an MPM plugin's main makes:
//
//	func main() { mpm.Serve(&myPolicy{}) }
//
// Serve speaks plugin protocol versions 1, 2 and 3 (the MPM service is the
// same in each) and lets the host pick the newest it also speaks. It returns only
// when the host is done with the plugin, and go-plugin then exits the
// process; run as a program rather than by a phased master, it prints that
// it is a plugin and exits 1.
//
// Serve creates the plugin's logger (see Logger) before go-plugin takes over
// os.Stdout and os.Stderr; the plugin must not write to stdout, which
// belongs to the handshake.
func Serve(impl MPM, opts ...ServeOption) {
	var cfg pluginrpc.ServeConfig
	for _, o := range opts {
		o.apply(&cfg)
	}
	pluginrpc.Serve(pluginrpc.KindMPM, func(int) plugin.Plugin { return &Plugin{Impl: impl} }, cfg)
}

// ServeOption configures Serve.
type ServeOption struct {
	apply func(*pluginrpc.ServeConfig)
}

// WithProtocols serves only the given plugin protocol versions, instead of
// every version this SDK speaks (1, 2 and 3). It exists to test a host against
// a plugin built with an older SDK; a version this SDK does not speak makes
// Serve log an error and return.
func WithProtocols(versions ...int) ServeOption {
	return ServeOption{apply: func(c *pluginrpc.ServeConfig) {
		c.Versions = append([]int{}, versions...)
	}}
}

// Logger returns the plugin process's logger. Its records are written as
// hclog-shaped JSON lines (@level, @message, @timestamp) to the stderr the
// process started with, and the phased master re-logs each in its error
// log at the record's level, tagged with the plugin's name. Levels below
// debug are trace; notice (info+2) is logged as info. The level is info
// unless the PHASED_PLUGIN_LOG_LEVEL environment variable says trace,
// debug, warn or error.
//
// The logger is created on first use, by Logger or Serve, and the same one
// is returned every time; call it from main or later, never before main
// (package initialisation) if the plugin swaps os.Stderr itself.
func Logger() *slog.Logger { return pluginrpc.Logger() }
