package hook_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/phasedhq/phased/sdk/hook"
)

type describeOnly struct{}

func (describeOnly) Describe(context.Context, *hook.DescribeRequest) (*hook.DescribeResponse, error) {
	return &hook.DescribeResponse{}, nil
}

type shutdownAndLogs struct{ describeOnly }

func (shutdownAndLogs) Shutdown(context.Context, *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	return nil, nil
}

func (shutdownAndLogs) OpenLogs(context.Context, *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	return nil, nil
}

type watcher struct{ describeOnly }

func (watcher) ChildSpawned(context.Context, *hook.ChildEventRequest) error { return nil }
func (watcher) ChildExited(context.Context, *hook.ChildEventRequest) error  { return nil }

var (
	_ hook.LogOpener       = shutdownAndLogs{}
	_ hook.ShutdownHandler = shutdownAndLogs{}
	_ hook.ChildWatcher    = watcher{}
)

func TestImplemented(t *testing.T) {
	tests := []struct {
		name string
		impl any
		want *hook.DescribeResponse
	}{
		{"nothing", describeOnly{}, &hook.DescribeResponse{}},
		{"in pass order", shutdownAndLogs{}, &hook.DescribeResponse{Phases: []hook.Phase{hook.PhaseOpenLogs, hook.PhaseShutdown}}},
		{"child events", watcher{}, &hook.DescribeResponse{ChildEvents: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hook.Implemented(tt.impl); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Implemented = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	errs := hook.ConfigErrors{{Key: "a.b", Message: "is required"}, {Key: "c", Message: "must be positive"}}
	err := fmt.Errorf("hook warmup: %w", errs)
	if got, want := err.Error(), "hook warmup: configuration: a.b: is required; c: must be positive"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	got, ok := errors.AsType[hook.ConfigErrors](err)
	if !ok || !reflect.DeepEqual(got, errs) {
		t.Errorf("errors.As = %v, %v", got, ok)
	}
}
