package host

import (
	"reflect"
	"testing"

	"github.com/phasedhq/phased/internal/pluginrpc"
	"github.com/phasedhq/phased/sdk/hook"
	"github.com/phasedhq/phased/sdk/mpm"
)

func TestHostPluginSets(t *testing.T) {
	sets := PluginSets()
	if len(sets) != 3 {
		t.Fatalf("versions %v, want 1, 2 and 3", reflect.ValueOf(sets).MapKeys())
	}
	for _, v := range Versions() {
		set := sets[v]
		if _, ok := set[KindMPM].(*mpm.Plugin); !ok {
			t.Errorf("version %d: mpm is %T", v, set[KindMPM])
		}
		h, ok := set[KindHook].(*hook.Plugin)
		if !ok || h.Protocol != v {
			t.Errorf("version %d: hook is %#v, want a *hook.Plugin for protocol %d", v, set[KindHook], v)
		}
	}
	// Each call is fresh, so a host may add to its sets.
	sets[1]["extra"] = nil
	if _, ok := PluginSets()[1]["extra"]; ok {
		t.Error("PluginSets returned shared sets")
	}
	if h := Handshake; h.MagicCookieKey != "PHASED_PLUGIN" || h.MagicCookieValue == "" || h.ProtocolVersion != 1 {
		t.Errorf("Handshake = %+v", h)
	}
}

// TestConstants keeps the public names in step with the ones the plugin
// side serves under.
func TestConstants(t *testing.T) {
	if KindMPM != pluginrpc.KindMPM || KindHook != pluginrpc.KindHook {
		t.Errorf("kinds %q %q, plugin side %q %q", KindMPM, KindHook, pluginrpc.KindMPM, pluginrpc.KindHook)
	}
	if ProtocolV1 != pluginrpc.ProtocolV1 || ProtocolV2 != pluginrpc.ProtocolV2 || ProtocolV3 != pluginrpc.ProtocolV3 {
		t.Errorf("protocols %d %d %d, plugin side %d %d %d", ProtocolV1, ProtocolV2, ProtocolV3, pluginrpc.ProtocolV1, pluginrpc.ProtocolV2, pluginrpc.ProtocolV3)
	}
	if !reflect.DeepEqual(Versions(), []int{1, 2, 3}) {
		t.Errorf("Versions() = %v", Versions())
	}
}
