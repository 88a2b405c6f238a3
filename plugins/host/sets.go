package host

import (
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/phasedhq/phased/internal/pluginrpc"
	"github.com/phasedhq/phased/sdk/hook"
	"github.com/phasedhq/phased/sdk/mpm"
)

// Handshake is the handshake every phased plugin and host share: the magic
// cookie PHASED_PLUGIN and go-plugin's legacy protocol version 1. Treat it
// as a constant; the plugin side reads its own copy.
var Handshake goplugin.HandshakeConfig = pluginrpc.Handshake()

// The plugin kinds, the names a host dispenses.
const (
	// KindMPM dispenses an mpm.MPM.
	KindMPM = "mpm"
	// KindHook dispenses a hook.Client.
	KindHook = "hook"
)

// The plugin protocol versions.
const (
	// ProtocolV1 is the MPM service and the hook service without child
	// events.
	ProtocolV1 = 1
	// ProtocolV2 adds the hook service's child events.
	ProtocolV2 = 2
	// ProtocolV3 adds the hook entry's settings (hook service) and the
	// plugins' names for themselves.
	ProtocolV3 = 3
)

// Versions returns the plugin protocol versions this SDK speaks, oldest
// first: 1, 2 and 3.
func Versions() []int { return pluginrpc.Versions() }

// PluginSets returns a host's go-plugin VersionedPlugins: for each
// protocol version, the plugins of kind "mpm" and "hook". Each call returns
// new sets, so a host may add its own kinds to them.
func PluginSets() map[int]goplugin.PluginSet {
	sets := make(map[int]goplugin.PluginSet)
	for _, v := range pluginrpc.Versions() {
		sets[v] = goplugin.PluginSet{
			KindMPM:  &mpm.Plugin{},
			KindHook: &hook.Plugin{Protocol: v},
		}
	}
	return sets
}
