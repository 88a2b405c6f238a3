package hook

import (
	"log/slog"

	plugin "github.com/hashicorp/go-plugin"

	"github.com/phasedhq/phased/internal/pluginrpc"
)

// Serve serves impl as a hook plugin over go-plugin's gRPC transport. It is
// the one call a hook plugin's main makes. It speaks plugin protocol
// versions 1, 2 and 3 and lets the host pick the newest it also speaks. It
// returns only when the host is done with the plugin, and go-plugin then
// exits the process; run as a program rather than by a phased master, it
// prints that it is a plugin and exits 1.
//
// Serve creates the plugin's logger (see Logger) before go-plugin takes over
// os.Stdout and os.Stderr; the plugin must not write to stdout, which
// belongs to the handshake.
func Serve(impl Hook, opts ...ServeOption) {
	var cfg pluginrpc.ServeConfig
	for _, o := range opts {
		o.apply(&cfg)
	}
	pluginrpc.Serve(pluginrpc.KindHook, func(v int) plugin.Plugin {
		return &Plugin{Impl: impl, Protocol: v}
	}, cfg)
}

// ServeOption configures Serve.
type ServeOption struct {
	apply func(*pluginrpc.ServeConfig)
}

// WithProtocols serves only the given plugin protocol versions, instead of
// every version this SDK speaks (1, 2 and 3). It exists to test a host against
// a plugin built with an older SDK: WithProtocols(1, 2) reads no settings,
// WithProtocols(1) serves no child events either. A version this SDK does not speak makes Serve log an error and
// return.
func WithProtocols(versions ...int) ServeOption {
	return ServeOption{apply: func(c *pluginrpc.ServeConfig) {
		c.Versions = append([]int{}, versions...)
	}}
}

// Logger returns the plugin process's logger; see sdk/mpm's Logger, which
// returns the same one. Its records reach the master's error log at their
// level, tagged with the plugin's name.
func Logger() *slog.Logger { return pluginrpc.Logger() }
