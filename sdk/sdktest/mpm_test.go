package sdktest_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phasedhq/phased/sdk/mpm"
	"github.com/phasedhq/phased/sdk/sdktest"
)

// echoMPM records what it was given and answers what it was told to.
type echoMPM struct {
	gotSettings map[string]any
	gotMaintain *mpm.MaintainRequest
	configure   *mpm.ConfigureResponse
	maintain    *mpm.MaintainResponse
	err         error
	block       bool
}

var _ mpm.MPM = (*echoMPM)(nil)

func (e *echoMPM) Configure(_ context.Context, req *mpm.ConfigureRequest) (*mpm.ConfigureResponse, error) {
	e.gotSettings = req.Settings
	return e.configure, e.err
}

func (e *echoMPM) Maintain(ctx context.Context, req *mpm.MaintainRequest) (*mpm.MaintainResponse, error) {
	if e.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	e.gotMaintain = req
	return e.maintain, e.err
}

func TestMPMConfigureRoundTrip(t *testing.T) {
	want := &mpm.ConfigureResponse{
		Model:                        mpm.Worker,
		ThreadsPerChild:              25,
		ServerLimit:                  16,
		StartServers:                 3,
		MaxRequestWorkers:            400,
		MaxConnectionsPerChild:       1000,
		MaxConnectionsPerChildJitter: 100,
		MaxMemoryPerChild:            512 << 20,
		AcceptMutex:                  "flock",
		Notes:                        []string{"max_request_workers raised to a multiple of threads_per_child"},
	}
	impl := &echoMPM{configure: want}
	m := sdktest.MPM(t, impl)
	settings := map[string]any{
		"start_servers":   2,
		"ratio":           0.5,
		"accept_mutex":    "flock",
		"keep":            true,
		"nothing":         nil,
		"timeout":         1500 * time.Millisecond,
		"listen":          []string{"a", "b"},
		"nested":          map[string]any{"n": int64(7), "l": []any{1, "x"}},
		"big":             uint32(1 << 31),
		"named":           mpm.Prefork,
		"max_connections": int8(-1),
	}
	got, err := m.Configure(t.Context(), &mpm.ConfigureRequest{Settings: settings})
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Configure = %+v, want %+v", got, want)
	}
	wantSettings := map[string]any{
		"start_servers":   2,
		"ratio":           0.5,
		"accept_mutex":    "flock",
		"keep":            true,
		"nothing":         nil,
		"timeout":         "1.5s",
		"listen":          []any{"a", "b"},
		"nested":          map[string]any{"n": 7, "l": []any{1, "x"}},
		"big":             1 << 31,
		"named":           "prefork",
		"max_connections": -1,
	}
	if !reflect.DeepEqual(impl.gotSettings, wantSettings) {
		t.Errorf("plugin got settings %#v, want %#v", impl.gotSettings, wantSettings)
	}
}

func TestMPMConfigureErrors(t *testing.T) {
	se := &mpm.SettingError{Key: "threads_per_child", Msg: "must be at least 1"}
	tests := []struct {
		name    string
		err     error
		wantMsg string
		setting *mpm.SettingError // nil: no SettingError expected
	}{
		{"setting error", se, "mpm.threads_per_child: must be at least 1", se},
		{"wrapped setting error", fmt.Errorf("worker: %w", se), "worker: mpm.threads_per_child: must be at least 1", se},
		{"plain error", errors.New("no good"), "no good", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sdktest.MPM(t, &echoMPM{err: tt.err})
			_, err := m.Configure(t.Context(), &mpm.ConfigureRequest{})
			if err == nil {
				t.Fatal("Configure succeeded")
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("error %q, want %q", err, tt.wantMsg)
			}
			got, ok := errors.AsType[*mpm.SettingError](err)
			if tt.setting == nil {
				if ok {
					t.Errorf("errors.As found %+v, want no SettingError", got)
				}
				return
			}
			if !ok {
				t.Fatalf("errors.As found no *SettingError in %T %v", err, err)
			}
			if *got != *tt.setting {
				t.Errorf("SettingError = %+v, want %+v", got, tt.setting)
			}
		})
	}
}

func TestMPMConfigureUnsupportedSetting(t *testing.T) {
	m := sdktest.MPM(t, &echoMPM{configure: &mpm.ConfigureResponse{}})
	_, err := m.Configure(t.Context(), &mpm.ConfigureRequest{Settings: map[string]any{"ch": make(chan int)}})
	se, ok := errors.AsType[*mpm.SettingError](err)
	if !ok || se.Key != "ch" {
		t.Fatalf("Configure error = %v, want a SettingError for key ch", err)
	}
}

func TestMPMMaintainRoundTrip(t *testing.T) {
	now := time.Unix(1_700_000_000, 123456789)
	req := &mpm.MaintainRequest{
		Now:               now,
		Generation:        3,
		TicksSinceRestart: 17,
		Children: []mpm.Child{
			{Slot: 0, PID: 4242, State: mpm.ChildReady, IdleSlots: 20, BusySlots: 5, Connections: 1 << 40, MemoryBytes: 64 << 20, Started: now.Add(-time.Minute)},
			{Slot: 1, PID: 4243, State: mpm.ChildStarting},
		},
		Listeners: []mpm.Listener{{Addr: "127.0.0.1:8080", QueueDepth: 4}},
	}
	want := &mpm.MaintainResponse{
		Actions: []mpm.Action{
			{Kind: mpm.Spawn, Count: 2, Reason: "idle below min_spare_threads"},
			{Kind: mpm.Retire, Slot: 1, Reason: "max_connections_per_child"},
			{Kind: mpm.Kill, Slot: 2},
		},
		Logs: []mpm.Log{
			{Level: mpm.LevelInfo, Message: "spawning", Attrs: map[string]string{"spawning": "8"}},
			{Level: mpm.LevelWarn, Message: "server reached max_request_workers"},
		},
		ReachedMax: true,
	}
	impl := &echoMPM{maintain: want}
	m := sdktest.MPM(t, impl)
	got, err := m.Maintain(t.Context(), req)
	if err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Maintain = %+v, want %+v", got, want)
	}
	g := impl.gotMaintain
	if !g.Now.Equal(now) || !g.Children[0].Started.Equal(now.Add(-time.Minute)) || !g.Children[1].Started.IsZero() {
		t.Errorf("times: now %v started %v, %v", g.Now, g.Children[0].Started, g.Children[1].Started)
	}
	// Times compare with Equal (the wire drops the location and the
	// monotonic reading); everything else is exact.
	g.Now, req.Now = time.Time{}, time.Time{}
	for i := range g.Children {
		g.Children[i].Started, req.Children[i].Started = time.Time{}, time.Time{}
	}
	if !reflect.DeepEqual(g, req) {
		t.Errorf("plugin got %+v, want %+v", g, req)
	}
}

func TestMPMMaintainEmpty(t *testing.T) {
	impl := &echoMPM{maintain: &mpm.MaintainResponse{}}
	got, err := sdktest.MPM(t, impl).Maintain(t.Context(), &mpm.MaintainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &mpm.MaintainResponse{}) || !reflect.DeepEqual(impl.gotMaintain, &mpm.MaintainRequest{}) {
		t.Errorf("got %+v, plugin got %+v; want zero values", got, impl.gotMaintain)
	}
}

func TestMPMMaintainError(t *testing.T) {
	m := sdktest.MPM(t, &echoMPM{err: errors.New("scoreboard is inconsistent")})
	if _, err := m.Maintain(t.Context(), &mpm.MaintainRequest{}); err == nil || err.Error() != "scoreboard is inconsistent" {
		t.Errorf("Maintain error = %v, want the plugin's message", err)
	}
	m = sdktest.MPM(t, &echoMPM{})
	if _, err := m.Maintain(t.Context(), &mpm.MaintainRequest{}); err == nil {
		t.Error("Maintain with a nil response and no error succeeded")
	}
}

func TestMPMMaintainDeadline(t *testing.T) {
	m := sdktest.MPM(t, &echoMPM{block: true})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := m.Maintain(ctx, &mpm.MaintainRequest{})
	// Either the host's deadline fired first (a gRPC status) or the
	// plugin's did (its error message); both match the context error.
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Maintain error = %v, want one matching context.DeadlineExceeded", err)
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.DeadlineExceeded {
		t.Errorf("Maintain status = %v, want DeadlineExceeded", st.Code())
	}
}
