package plugin_test

import (
	"reflect"
	"testing"

	"github.com/phasedhq/phased/sdk/hook"
	"github.com/phasedhq/phased/sdk/internal/pluginrpc"
	"github.com/phasedhq/phased/sdk/mpm"
	sdkplugin "github.com/phasedhq/phased/sdk/plugin"
)

func TestHostPluginSets(t *testing.T) {
	sets := sdkplugin.HostPluginSets()
	if len(sets) != 2 {
		t.Fatalf("versions %v, want 1 and 2", reflect.ValueOf(sets).MapKeys())
	}
	for _, v := range sdkplugin.Versions() {
		set := sets[v]
		if _, ok := set[sdkplugin.KindMPM].(*mpm.Plugin); !ok {
			t.Errorf("version %d: mpm is %T", v, set[sdkplugin.KindMPM])
		}
		h, ok := set[sdkplugin.KindHook].(*hook.Plugin)
		if !ok || h.Protocol != v {
			t.Errorf("version %d: hook is %#v, want a *hook.Plugin for protocol %d", v, set[sdkplugin.KindHook], v)
		}
	}
	// Each call is fresh, so a host may add to its sets.
	sets[1]["extra"] = nil
	if _, ok := sdkplugin.HostPluginSets()[1]["extra"]; ok {
		t.Error("HostPluginSets returned shared sets")
	}
	if h := sdkplugin.Handshake; h.MagicCookieKey != "PHASED_PLUGIN" || h.MagicCookieValue == "" || h.ProtocolVersion != 1 {
		t.Errorf("Handshake = %+v", h)
	}
}

// TestConstants keeps the public names in step with the ones the plugin
// side serves under.
func TestConstants(t *testing.T) {
	if sdkplugin.KindMPM != pluginrpc.KindMPM || sdkplugin.KindHook != pluginrpc.KindHook {
		t.Errorf("kinds %q %q, plugin side %q %q", sdkplugin.KindMPM, sdkplugin.KindHook, pluginrpc.KindMPM, pluginrpc.KindHook)
	}
	if sdkplugin.ProtocolV1 != pluginrpc.ProtocolV1 || sdkplugin.ProtocolV2 != pluginrpc.ProtocolV2 {
		t.Errorf("protocols %d %d, plugin side %d %d", sdkplugin.ProtocolV1, sdkplugin.ProtocolV2, pluginrpc.ProtocolV1, pluginrpc.ProtocolV2)
	}
	if !reflect.DeepEqual(sdkplugin.Versions(), []int{1, 2}) {
		t.Errorf("Versions() = %v", sdkplugin.Versions())
	}
}
