//go:build linux

package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phasedhq/phased/sdk/hook"
	"github.com/phasedhq/phased/sdk/mpm"
)

// The test binary plays every plugin: re-executed with pluginModeEnv set, it
// serves the plugin of that name instead of running tests (go-plugin's own
// helperProcess pattern).
const pluginModeEnv = "PHASED_SDK_TEST_PLUGIN"

// servePlugin serves one test plugin; it returns when the host is done.
func servePlugin(mode string) {
	switch mode {
	case "mpm":
		mpm.Serve(testMPM{})
	case "hook":
		hook.Serve(testHook{})
	case "hook-v2": // a hook plugin built with an SDK that knew protocols 1 and 2
		hook.Serve(testHook{}, hook.WithProtocols(1, 2))
	case "hook-v1": // a hook plugin built with an SDK that knew only protocol 1
		hook.Serve(testHook{}, hook.WithProtocols(1))
	case "v4": // a plugin from a future SDK that speaks only protocol 4
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig:  Handshake,
			VersionedPlugins: map[int]goplugin.PluginSet{4: {KindMPM: &mpm.Plugin{Impl: testMPM{}}}},
			GRPCServer:       goplugin.DefaultGRPCServer,
		})
	default:
		fmt.Fprintf(os.Stderr, "unknown plugin mode %q\n", mode)
		os.Exit(2)
	}
}

// crashGeneration makes testMPM's Maintain exit the process.
const crashGeneration = 99

type testMPM struct{}

func (testMPM) Configure(_ context.Context, req *mpm.ConfigureRequest) (*mpm.ConfigureResponse, error) {
	n, ok := req.Settings["threads_per_child"].(int)
	if !ok || n < 1 {
		return nil, &mpm.SettingError{Key: "threads_per_child", Msg: "must be a positive integer"}
	}
	mpm.Logger().Warn("configured", "threads_per_child", n)
	return &mpm.ConfigureResponse{Model: mpm.Worker, ThreadsPerChild: n, ServerLimit: 4, StartServers: 1, MaxRequestWorkers: 4 * n}, nil
}

func (testMPM) Maintain(_ context.Context, req *mpm.MaintainRequest) (*mpm.MaintainResponse, error) {
	if req.Generation == crashGeneration {
		os.Exit(3)
	}
	return &mpm.MaintainResponse{Actions: []mpm.Action{{Kind: mpm.Spawn, Count: len(req.Children) + 1}}}, nil
}

type testHook struct{}

func (h testHook) Describe(context.Context, *hook.DescribeRequest) (*hook.DescribeResponse, error) {
	return hook.Implemented(h), nil
}

func (testHook) Configure(_ context.Context, req *hook.PhaseRequest) (*hook.ConfigureResponse, error) {
	if string(req.ConfigJSON) != `{"ok":true}` {
		return &hook.ConfigureResponse{Errors: []hook.ConfigError{{Key: "ok", Message: "must be true"}}}, nil
	}
	return &hook.ConfigureResponse{}, nil
}

func (testHook) ChildSpawned(context.Context, *hook.ChildEventRequest) error { return nil }
func (testHook) ChildExited(context.Context, *hook.ChildEventRequest) error  { return nil }

// newClient returns a host's client for the test binary playing mode; it is
// killed by t.Cleanup, and its log is printed if the test fails.
func newClient(tb testing.TB, mode string) (*goplugin.Client, *syncBuffer) {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	// A race-enabled binary sleeps a second at exit unless told not to.
	// With go-plugin's default runner the plugin makes its socket in its
	// TMPDIR, not in UnixSocketConfig.TempDir: a plugin a test kills
	// leaves it there.
	dir := tb.TempDir()
	cmd.Env = append(os.Environ(), pluginModeEnv+"="+mode, "GORACE=atexit_sleep_ms=0", "TMPDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logs := &syncBuffer{}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: PluginSets(),
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env has the host's, and ours must win
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		UnixSocketConfig: &goplugin.UnixSocketConfig{TempDir: dir},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Trace, JSONFormat: true}),
	})
	tb.Cleanup(func() {
		client.Kill()
		if tb.Failed() {
			tb.Logf("host log:\n%s", logs)
		}
	})
	return client, logs
}

func dispense[T any](tb testing.TB, client *goplugin.Client, kind string) T {
	tb.Helper()
	rpc, err := client.Client()
	if err != nil {
		tb.Fatalf("starting plugin: %v", err)
	}
	raw, err := rpc.Dispense(kind)
	if err != nil {
		tb.Fatalf("dispensing %s: %v", kind, err)
	}
	v, ok := raw.(T)
	if !ok {
		tb.Fatalf("%s dispensed %T", kind, raw)
	}
	return v
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("process-level test; skipped with -short")
	}
}

func TestProcessMPM(t *testing.T) {
	skipShort(t)
	start := time.Now()
	client, logs := newClient(t, "mpm")
	m := dispense[mpm.MPM](t, client, KindMPM)
	resp, err := m.Maintain(t.Context(), &mpm.MaintainRequest{Generation: 1})
	if err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	t.Logf("plugin launch to first RPC: %v", time.Since(start))
	if v := client.NegotiatedVersion(); v != ProtocolV3 {
		t.Errorf("negotiated protocol %d, want 3", v)
	}
	if len(resp.Actions) != 1 || resp.Actions[0] != (mpm.Action{Kind: mpm.Spawn, Count: 1}) {
		t.Errorf("Maintain = %+v", resp)
	}

	_, err = m.Configure(t.Context(), &mpm.ConfigureRequest{Settings: map[string]any{"threads_per_child": 0}})
	if se, ok := errors.AsType[*mpm.SettingError](err); !ok || se.Key != "threads_per_child" {
		t.Errorf("Configure(0) error = %v, want a SettingError for threads_per_child", err)
	}
	cr, err := m.Configure(t.Context(), &mpm.ConfigureRequest{Settings: map[string]any{"threads_per_child": 25}})
	if err != nil || cr.ThreadsPerChild != 25 || cr.MaxRequestWorkers != 100 {
		t.Fatalf("Configure(25) = %+v, %v", cr, err)
	}

	// The plugin's mpm.Logger record reaches the host's logger at its level.
	want := regexp.MustCompile(`"@level":"warn".*"@message":"configured"|"@message":"configured".*"@level":"warn"`)
	deadline := time.Now().Add(5 * time.Second)
	for !want.MatchString(logs.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's warn record never reached the host log:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if line := matchingLine(logs.String(), want); !strings.Contains(line, `"threads_per_child":25`) {
		t.Errorf("host log line %s lacks the record's attribute", line)
	}
}

func matchingLine(s string, re *regexp.Regexp) string {
	for line := range strings.Lines(s) {
		if re.MatchString(line) {
			return line
		}
	}
	return ""
}

func TestProcessMPMCrash(t *testing.T) {
	skipShort(t)
	client, _ := newClient(t, "mpm")
	m := dispense[mpm.MPM](t, client, KindMPM)
	_, err := m.Maintain(t.Context(), &mpm.MaintainRequest{Generation: crashGeneration})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Maintain on a crashing plugin: error %v (code %v), want Unavailable", err, status.Code(err))
	}
}

func TestProcessHookVersions(t *testing.T) {
	skipShort(t)
	tests := []struct {
		mode         string
		wantProtocol int
	}{
		{"hook", 3},
		{"hook-v2", 2},
		{"hook-v1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			client, _ := newClient(t, tt.mode)
			h := dispense[hook.Client](t, client, KindHook)
			if v := client.NegotiatedVersion(); v != tt.wantProtocol {
				t.Errorf("negotiated protocol %d, want %d", v, tt.wantProtocol)
			}
			d, err := h.Describe(t.Context(), &hook.DescribeRequest{})
			if err != nil {
				t.Fatalf("Describe: %v", err)
			}
			if want := tt.wantProtocol >= 2; d.ChildEvents != want || len(d.Phases) != 1 || d.Phases[0] != hook.PhaseConfigure {
				t.Errorf("Describe = %+v, want configure and child events %v", d, want)
			}
			if _, err := h.RunPhase(t.Context(), &hook.PhaseRequest{Phase: hook.PhaseConfigure, Pass: 1, ConfigJSON: []byte(`{"ok":true}`)}); err != nil {
				t.Errorf("RunPhase(configure): %v", err)
			}
			_, err = h.RunPhase(t.Context(), &hook.PhaseRequest{Phase: hook.PhaseConfigure, Pass: 1, ConfigJSON: []byte(`{}`)})
			if ces, ok := errors.AsType[hook.ConfigErrors](err); !ok || len(ces) != 1 || ces[0].Key != "ok" {
				t.Errorf("RunPhase(bad configure) error = %v, want ConfigErrors naming ok", err)
			}
			err = h.ChildEvent(t.Context(), &hook.ChildEventRequest{Kind: hook.ChildSpawned, PID: 7, Slot: 1, Generation: 1})
			if tt.wantProtocol >= 2 && err != nil {
				t.Errorf("ChildEvent: %v", err)
			}
			if tt.wantProtocol < 2 && !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("ChildEvent under protocol 1: error %v, want ErrUnsupported", err)
			}
		})
	}
}

func TestProcessIncompatibleVersion(t *testing.T) {
	skipShort(t)
	client, _ := newClient(t, "v4")
	_, err := client.Client()
	if err == nil {
		t.Fatal("a plugin speaking only protocol 4 started")
	}
	// go-plugin's message names the plugin's version and the host's.
	re := regexp.MustCompile(`Plugin version: 4, Client versions: \[[123 ]+\]`)
	if !re.MatchString(err.Error()) {
		t.Errorf("error %q does not name versions 4 and [1 2 3]", err)
	}
}

// BenchmarkLaunchToFirstRPC starts a plugin process and makes one Maintain
// call, as a master does after a (re)start. Stopping the plugin is not
// timed.
func BenchmarkLaunchToFirstRPC(b *testing.B) {
	for b.Loop() {
		client, _ := newClient(b, "mpm")
		m := dispense[mpm.MPM](b, client, KindMPM)
		if _, err := m.Maintain(context.Background(), &mpm.MaintainRequest{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		client.Kill()
		b.StartTimer()
	}
}

// BenchmarkMaintainProcess is one Maintain round trip to a plugin process
// with a 16-child snapshot: the once-a-second tick's cost.
func BenchmarkMaintainProcess(b *testing.B) {
	client, _ := newClient(b, "mpm")
	m := dispense[mpm.MPM](b, client, KindMPM)
	req := &mpm.MaintainRequest{Now: time.Now(), Generation: 1, Listeners: []mpm.Listener{{Addr: "127.0.0.1:8080"}}}
	for i := range 16 {
		req.Children = append(req.Children, mpm.Child{Slot: i, PID: 1000 + i, State: mpm.ChildReady, IdleSlots: 20, BusySlots: 5, Started: time.Now()})
	}
	for b.Loop() {
		if _, err := m.Maintain(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
