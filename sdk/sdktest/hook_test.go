package sdktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/phasedhq/phased/sdk/hook"
	"github.com/phasedhq/phased/sdk/sdktest"
)

// fullHook implements every phase and child events, recording each call.
type fullHook struct {
	mu        sync.Mutex
	calls     []string
	requests  []*hook.PhaseRequest
	events    []*hook.ChildEventRequest
	configErr []hook.ConfigError
	fail      map[hook.Phase]error
}

var (
	_ hook.Hook            = (*fullHook)(nil)
	_ hook.Configurer      = (*fullHook)(nil)
	_ hook.LogOpener       = (*fullHook)(nil)
	_ hook.PostConfigurer  = (*fullHook)(nil)
	_ hook.ShutdownHandler = (*fullHook)(nil)
	_ hook.ChildWatcher    = (*fullHook)(nil)
)

func (h *fullHook) Describe(context.Context, *hook.DescribeRequest) (*hook.DescribeResponse, error) {
	return hook.Implemented(h), nil
}

func (h *fullHook) record(req *hook.PhaseRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, string(req.Phase))
	h.requests = append(h.requests, req)
	return h.fail[req.Phase]
}

func (h *fullHook) Configure(_ context.Context, req *hook.PhaseRequest) (*hook.ConfigureResponse, error) {
	if err := h.record(req); err != nil {
		return nil, err
	}
	return &hook.ConfigureResponse{Errors: h.configErr}, nil
}

func (h *fullHook) OpenLogs(_ context.Context, req *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	return &hook.PhaseResponse{}, h.record(req)
}

func (h *fullHook) PostConfig(_ context.Context, req *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	return &hook.PhaseResponse{}, h.record(req)
}

func (h *fullHook) Shutdown(_ context.Context, req *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	return &hook.PhaseResponse{}, h.record(req)
}

func (h *fullHook) ChildSpawned(_ context.Context, req *hook.ChildEventRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, req)
	return nil
}

func (h *fullHook) ChildExited(_ context.Context, req *hook.ChildEventRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, req)
	if req.Status != "exit status 0" {
		return errors.New("unexpected exit")
	}
	return nil
}

// postConfigOnly implements one phase and describes itself by hand.
type postConfigOnly struct{ describe *hook.DescribeResponse }

func (p *postConfigOnly) Describe(context.Context, *hook.DescribeRequest) (*hook.DescribeResponse, error) {
	return p.describe, nil
}

func (p *postConfigOnly) PostConfig(context.Context, *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	return &hook.PhaseResponse{}, nil
}

func TestHookDescribe(t *testing.T) {
	tests := []struct {
		name     string
		impl     hook.Hook
		protocol int
		want     *hook.DescribeResponse
		wantErr  bool
	}{
		{"every phase", &fullHook{}, 2, &hook.DescribeResponse{Phases: hook.Phases(), ChildEvents: true}, false},
		{"protocol 1 has no child events", &fullHook{}, 1, &hook.DescribeResponse{Phases: hook.Phases()}, false},
		{"one phase", &postConfigOnly{describe: &hook.DescribeResponse{Phases: []hook.Phase{hook.PhasePostConfig}}}, 2,
			&hook.DescribeResponse{Phases: []hook.Phase{hook.PhasePostConfig}}, false},
		{"a phase it does not implement", &postConfigOnly{describe: &hook.DescribeResponse{Phases: []hook.Phase{hook.PhaseOpenLogs}}}, 2, nil, true},
		{"child events without ChildWatcher", &postConfigOnly{describe: &hook.DescribeResponse{ChildEvents: true}}, 2, nil, true},
		{"nil response", &postConfigOnly{}, 2, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sdktest.HookProtocol(t, tt.impl, tt.protocol)
			got, err := c.Describe(t.Context(), &hook.DescribeRequest{})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Describe = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Describe: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Describe = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHookRunPhases(t *testing.T) {
	impl := &fullHook{}
	c := sdktest.Hook(t, impl)
	cfg := json.RawMessage(`{"listen":["127.0.0.1:8080"]}`)
	var want []*hook.PhaseRequest
	for pass := 1; pass <= 2; pass++ {
		for _, ph := range []hook.Phase{hook.PhaseConfigure, hook.PhaseOpenLogs, hook.PhasePostConfig} {
			req := &hook.PhaseRequest{Phase: ph, Pass: pass, Generation: pass, DryRun: pass == 1, Slot: -1, ConfigJSON: cfg}
			want = append(want, req)
			if _, err := c.RunPhase(t.Context(), req); err != nil {
				t.Fatalf("RunPhase(%s, pass %d): %v", ph, pass, err)
			}
		}
	}
	req := &hook.PhaseRequest{Phase: hook.PhaseShutdown, Pass: 2, Generation: 2, Slot: 3}
	want = append(want, req)
	if _, err := c.RunPhase(t.Context(), req); err != nil {
		t.Fatalf("RunPhase(shutdown): %v", err)
	}
	if !reflect.DeepEqual(impl.requests, want) {
		t.Errorf("plugin got %+v, want %+v", impl.requests, want)
	}
	if n := slices.Index(impl.calls, "shutdown"); n != len(impl.calls)-1 {
		t.Errorf("calls %v: shutdown not last", impl.calls)
	}
}

func TestHookConfigureErrors(t *testing.T) {
	keyErrs := []hook.ConfigError{
		{Key: "hooks.warmup.url", Message: "must be an http URL"},
		{Key: "hooks.warmup.timeout", Message: "must be positive"},
	}
	tests := []struct {
		name string
		impl *fullHook
	}{
		{"in the response", &fullHook{configErr: keyErrs}},
		{"as the error", &fullHook{fail: map[hook.Phase]error{hook.PhaseConfigure: hook.ConfigErrors(keyErrs)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sdktest.Hook(t, tt.impl)
			_, err := c.RunPhase(t.Context(), &hook.PhaseRequest{Phase: hook.PhaseConfigure, Pass: 1})
			got, ok := errors.AsType[hook.ConfigErrors](err)
			if !ok {
				t.Fatalf("RunPhase error = %v (%T), want ConfigErrors", err, err)
			}
			if !reflect.DeepEqual([]hook.ConfigError(got), keyErrs) {
				t.Errorf("ConfigErrors = %+v, want %+v", got, keyErrs)
			}
			want := "configuration: hooks.warmup.url: must be an http URL; hooks.warmup.timeout: must be positive"
			if err.Error() != want {
				t.Errorf("message %q, want %q", err, want)
			}
		})
	}
}

func TestHookPhaseFailures(t *testing.T) {
	impl := &fullHook{fail: map[hook.Phase]error{hook.PhasePostConfig: errors.New("migration 42 failed")}}
	c := sdktest.Hook(t, impl)
	_, err := c.RunPhase(t.Context(), &hook.PhaseRequest{Phase: hook.PhasePostConfig})
	if err == nil || err.Error() != "migration 42 failed" {
		t.Errorf("post-config error = %v, want the plugin's message", err)
	}
	if _, ok := errors.AsType[hook.ConfigErrors](err); ok {
		t.Errorf("post-config error %v is ConfigErrors", err)
	}

	one := sdktest.Hook(t, &postConfigOnly{describe: &hook.DescribeResponse{}})
	_, err = one.RunPhase(t.Context(), &hook.PhaseRequest{Phase: hook.PhaseOpenLogs})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("unimplemented phase: error %v, want ErrUnsupported", err)
	}
	_, err = one.RunPhase(t.Context(), &hook.PhaseRequest{Phase: "child-init"})
	if err == nil || errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("unknown phase: error %v, want an invalid-argument error", err)
	}
}

func TestHookChildEvents(t *testing.T) {
	impl := &fullHook{}
	c := sdktest.Hook(t, impl)
	spawned := &hook.ChildEventRequest{Kind: hook.ChildSpawned, PID: 100, Slot: 2, Generation: 3}
	exited := &hook.ChildEventRequest{Kind: hook.ChildExited, PID: 100, Slot: 2, Generation: 3, Status: "exit status 0"}
	killed := &hook.ChildEventRequest{Kind: hook.ChildExited, PID: 101, Slot: 4, Generation: 3, Status: "signal: killed"}
	for _, ev := range []*hook.ChildEventRequest{spawned, exited} {
		if err := c.ChildEvent(t.Context(), ev); err != nil {
			t.Fatalf("ChildEvent(%+v): %v", ev, err)
		}
	}
	if err := c.ChildEvent(t.Context(), killed); err == nil || err.Error() != "unexpected exit" {
		t.Errorf("ChildEvent(killed) = %v, want the plugin's error", err)
	}
	want := []*hook.ChildEventRequest{spawned, exited, killed}
	if !reflect.DeepEqual(impl.events, want) {
		t.Errorf("plugin got %+v, want %+v", impl.events, want)
	}
	if err := c.ChildEvent(t.Context(), &hook.ChildEventRequest{Kind: "reborn"}); err == nil {
		t.Error("ChildEvent with an unknown kind succeeded")
	}

	// A plugin that is no ChildWatcher, and any plugin under protocol 1.
	for name, c := range map[string]hook.Client{
		"no ChildWatcher": sdktest.Hook(t, &postConfigOnly{describe: &hook.DescribeResponse{}}),
		"protocol 1":      sdktest.HookProtocol(t, &fullHook{}, 1),
	} {
		if err := c.ChildEvent(t.Context(), spawned); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: ChildEvent error %v, want ErrUnsupported", name, err)
		}
	}
}

// settingsHook reads one setting, n, an int, in Describe and in its
// configure phase, and remembers what it was given.
type settingsHook struct {
	mu       sync.Mutex
	describe map[string]any
	phase    map[string]any
}

func (h *settingsHook) Describe(_ context.Context, req *hook.DescribeRequest) (*hook.DescribeResponse, error) {
	h.mu.Lock()
	h.describe = req.Settings
	h.mu.Unlock()
	for k, v := range req.Settings {
		if _, ok := v.(int); k != "n" || !ok {
			return nil, &hook.SettingError{Key: k, Msg: "the one setting is n, an integer"}
		}
	}
	return &hook.DescribeResponse{Phases: []hook.Phase{hook.PhaseConfigure}, Name: "counter"}, nil
}

func (h *settingsHook) Configure(_ context.Context, req *hook.PhaseRequest) (*hook.ConfigureResponse, error) {
	h.mu.Lock()
	h.phase = req.Settings
	h.mu.Unlock()
	if n, _ := req.Settings["n"].(int); n > 10 {
		return nil, fmt.Errorf("configure: %w", &hook.SettingError{Key: "n", Msg: "at most 10"})
	}
	return &hook.ConfigureResponse{}, nil
}

// TestHookSettings: under protocol 3 a hook entry's settings reach
// Describe and every phase as YAML decoded them, and a SettingError comes
// back matchable with errors.As; under 2 no settings travel.
func TestHookSettings(t *testing.T) {
	h := &settingsHook{}
	c := sdktest.Hook(t, h)
	settings := map[string]any{"n": 3}
	d, err := c.Describe(t.Context(), &hook.DescribeRequest{Settings: settings})
	if err != nil || d.Name != "counter" || !reflect.DeepEqual(h.describe, settings) {
		t.Fatalf("Describe = %+v, %v; plugin got %v", d, err, h.describe)
	}
	_, err = c.Describe(t.Context(), &hook.DescribeRequest{Settings: map[string]any{"m": 1}})
	if se, ok := errors.AsType[*hook.SettingError](err); !ok || se.Key != "m" {
		t.Fatalf("Describe with a bad setting: %v, want a SettingError on m", err)
	}
	if _, err := c.RunPhase(t.Context(), &hook.PhaseRequest{Phase: hook.PhaseConfigure, Settings: settings}); err != nil || !reflect.DeepEqual(h.phase, settings) {
		t.Fatalf("RunPhase: %v; plugin got %v", err, h.phase)
	}
	_, err = c.RunPhase(t.Context(), &hook.PhaseRequest{Phase: hook.PhaseConfigure, Settings: map[string]any{"n": 11}})
	if se, ok := errors.AsType[*hook.SettingError](err); !ok || se.Key != "n" || se.Msg != "at most 10" {
		t.Fatalf("RunPhase with n 11: %v, want a SettingError on n", err)
	}

	old := &settingsHook{}
	c2 := sdktest.HookProtocol(t, old, 2)
	if _, err := c2.Describe(t.Context(), &hook.DescribeRequest{Settings: settings}); err != nil || old.describe != nil {
		t.Fatalf("protocol 2: Describe: %v; plugin got settings %v", err, old.describe)
	}
}
