package main

import (
	"errors"
	"testing"

	"github.com/phasedhq/phased/sdk/mpm"
	"github.com/phasedhq/phased/sdk/sdktest"
)

func TestFixedPool(t *testing.T) {
	m := sdktest.MPM(t, &fixed{}) // the master's gRPC path, in-process

	cfg, err := m.Configure(t.Context(), &mpm.ConfigureRequest{Settings: map[string]any{"children": 3}})
	if err != nil || cfg.StartServers != 3 {
		t.Fatalf("Configure = %+v, %v; want 3 start servers", cfg, err)
	}

	one := []mpm.Child{{Slot: 0, PID: 100, State: mpm.ChildReady, IdleSlots: 1}}
	resp, err := m.Maintain(t.Context(), &mpm.MaintainRequest{Children: one})
	if err != nil || len(resp.Actions) != 1 || resp.Actions[0].Count != 2 {
		t.Fatalf("Maintain = %+v, %v; want one spawn of 2", resp, err)
	}

	_, err = m.Configure(t.Context(), &mpm.ConfigureRequest{Settings: map[string]any{"childs": 3}})
	if se, ok := errors.AsType[*mpm.SettingError](err); !ok || se.Key != "childs" {
		t.Fatalf("Configure error = %v, want a SettingError naming childs", err)
	}
}
