package sdktest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/phasedhq/phased/sdk/mpm"
	"github.com/phasedhq/phased/sdk/sdktest"
)

// fixedMPM is a plugin author's MPM under test.
type fixedMPM struct{}

func (fixedMPM) Configure(_ context.Context, req *mpm.ConfigureRequest) (*mpm.ConfigureResponse, error) {
	if _, ok := req.Settings["start_servers"].(int); !ok {
		return nil, &mpm.SettingError{Key: "start_servers", Msg: "must be an integer"}
	}
	return &mpm.ConfigureResponse{Model: mpm.Prefork, ThreadsPerChild: 1, ServerLimit: 8}, nil
}

func (fixedMPM) Maintain(context.Context, *mpm.MaintainRequest) (*mpm.MaintainResponse, error) {
	return &mpm.MaintainResponse{}, nil
}

// A plugin author's test talks to the MPM as the master would.
func TestExampleAuthor(t *testing.T) {
	m := sdktest.MPM(t, fixedMPM{})
	_, err := m.Configure(t.Context(), &mpm.ConfigureRequest{Settings: map[string]any{"start_servers": "two"}})
	if se, ok := errors.AsType[*mpm.SettingError](err); !ok || se.Key != "start_servers" {
		t.Fatalf("Configure error = %v, want a SettingError for start_servers", err)
	}
}
