package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/phasedhq/phased/internal/procfs"
	"github.com/phasedhq/phased/plugins/mpm/worker"
	"github.com/phasedhq/phased/sdk/mpm"
)

// The test binary plays every plugin, good and misbehaving, chosen by this
// variable (go-plugin's own helper-process pattern).
const scenarioEnv = "PHASED_HOST_TEST_SCENARIO"

func TestMain(m *testing.M) {
	if s := os.Getenv(scenarioEnv); s != "" {
		os.Exit(playPlugin(s))
	}
	if mode := os.Getenv(pluginModeEnv); mode != "" {
		servePlugin(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// badMPM is the worker MPM with a Maintain that misbehaves on demand.
type badMPM struct {
	mpm.MPM
	maintain func()
}

func (b badMPM) Maintain(ctx context.Context, req *mpm.MaintainRequest) (*mpm.MaintainResponse, error) {
	b.maintain()
	return b.MPM.Maintain(ctx, req)
}

func playPlugin(scenario string) int {
	switch scenario {
	case "ok":
		mpm.Logger().Warn("plugin says hello", "answer", 42)
		mpm.Serve(worker.New())
	case "protocol-4":
		// A plugin from a future SDK that speaks only protocol 4.
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig:  Handshake,
			VersionedPlugins: map[int]goplugin.PluginSet{4: {"mpm": &mpm.Plugin{Impl: worker.New()}}},
			GRPCServer:       goplugin.DefaultGRPCServer,
		})
	case "protocol-1":
		mpm.Serve(worker.New(), mpm.WithProtocols(1))
	case "bad-cookie":
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig: goplugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "SOMEONE_ELSES_PLUGIN", MagicCookieValue: "x"},
			Plugins:         goplugin.PluginSet{"mpm": &mpm.Plugin{Impl: worker.New()}},
			GRPCServer:      goplugin.DefaultGRPCServer,
		})
	case "hang-at-handshake":
		time.Sleep(time.Minute)
	case "panic-mid-rpc":
		mpm.Serve(badMPM{MPM: worker.New(), maintain: func() { panic("the plugin's own bug") }})
	case "crash-mid-rpc":
		mpm.Serve(badMPM{MPM: worker.New(), maintain: func() { os.Exit(3) }})
	case "maintain-hangs":
		mpm.Serve(badMPM{MPM: worker.New(), maintain: func() { time.Sleep(time.Minute) }})
	case "stdout-garbage":
		fmt.Println("hello from a plugin that prints to stdout")
		mpm.Serve(worker.New())
	}
	return 0
}

// syncBuffer collects log output from go-plugin's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func launch(t *testing.T, scenario string, timeout time.Duration) (*Plugin, *syncBuffer, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("plugin processes: skipped with -short")
	}
	var logs syncBuffer
	dir := t.TempDir()
	env := append(minimalEnv(), scenarioEnv+"="+scenario, "GORACE=atexit_sleep_ms=0")
	p, err := Launch(Options{
		Name: "test " + scenario, Kind: KindMPM, Argv: []string{os.Args[0]}, Env: env,
		Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Level: slog.LevelInfo,
		SocketDir: dir, StartTimeout: timeout,
	})
	if p != nil {
		t.Cleanup(p.Kill)
	}
	return p, &logs, err
}

func TestLaunchAndRelayLogs(t *testing.T) {
	p, logs, err := launch(t, "ok", 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Protocol() != 3 {
		t.Fatalf("negotiated protocol %d, want 3", p.Protocol())
	}
	m, err := p.MPM()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := m.Configure(context.Background(), &mpm.ConfigureRequest{Settings: map[string]any{"threads_per_child": 5}})
	if err != nil || resp.ThreadsPerChild != 5 || resp.Model != mpm.Worker {
		t.Fatalf("Configure = %+v, %v", resp, err)
	}
	if _, err := m.Configure(context.Background(), &mpm.ConfigureRequest{Settings: map[string]any{"bogus": 1}}); err == nil {
		t.Fatal("bogus key accepted")
	} else if se := (*mpm.SettingError)(nil); !errors.As(err, &se) || se.Key != "bogus" {
		t.Fatalf("Configure error %v is not a SettingError for bogus", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `"msg":"plugin says hello"`) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin's record not relayed:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{`"level":"WARN"`, `"plugin":"test ok"`, `"answer":42`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("relayed record lacks %s:\n%s", want, logs)
		}
	}
	pid := p.PID()
	p.Kill()
	if !p.Exited() || pid == 0 {
		t.Fatalf("after Kill: exited %v pid %d", p.Exited(), pid)
	}
}

func TestMisbehavingPlugins(t *testing.T) {
	for _, tt := range []struct {
		scenario string
		timeout  time.Duration
		want     []string
	}{
		{"protocol-4", 0, []string{"test protocol-4", "incompatible protocol version", "Plugin version: 4", "[1 2 3]"}},
		{"bad-cookie", 0, []string{"test bad-cookie", "not a phased plugin"}},
		{"hang-at-handshake", 500 * time.Millisecond, []string{"test hang-at-handshake", "did not complete the handshake in time"}},
		{"stdout-garbage", 0, []string{"test stdout-garbage"}},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			start := time.Now()
			_, _, err := launch(t, tt.scenario, tt.timeout)
			if err == nil {
				t.Fatal("launched")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

func TestOlderPluginWorks(t *testing.T) {
	p, _, err := launch(t, "protocol-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Protocol() != 1 {
		t.Fatalf("negotiated %d, want 1", p.Protocol())
	}
	m, _ := p.MPM()
	if _, err := m.Configure(context.Background(), &mpm.ConfigureRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestCrashMidRPC(t *testing.T) {
	p, _, err := launch(t, "crash-mid-rpc", 0)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := p.MPM()
	_, err = m.Maintain(context.Background(), &mpm.MaintainRequest{Generation: 1})
	if err == nil {
		t.Fatal("Maintain on a crashing plugin succeeded")
	}
	deadline := time.Now().Add(3 * time.Second)
	for !p.Exited() {
		if time.Now().After(deadline) {
			t.Fatal("crashed plugin not seen as exited")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMaintainTimeout(t *testing.T) {
	p, _, err := launch(t, "maintain-hangs", 0)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := p.MPM()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = m.Maintain(ctx, &mpm.MaintainRequest{Generation: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Maintain = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the timeout took %s", d)
	}
	// Only the call hangs, not the process: it stops gracefully at once.
	start = time.Now()
	p.Kill()
	if d := time.Since(start); d >= stopBound || !p.Exited() {
		t.Errorf("Kill took %s (exited %v): the graceful stop did not work", d, p.Exited())
	}
}

// TestKillWedgedPlugin: a plugin that cannot answer at all (here a stopped
// process) is killed within a bound; go-plugin's own Kill would wait for
// its answer forever, and the master's event loop with it.
func TestKillWedgedPlugin(t *testing.T) {
	p, logs, err := launch(t, "ok", 0)
	if err != nil {
		t.Fatal(err)
	}
	pid := p.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// A stop signal is delivered asynchronously: until every thread has
	// stopped, the plugin may still answer Kill's shutdown (it did, once
	// in about 50 runs, and exited in 3 ms).
	for deadline := time.Now().Add(5 * time.Second); !procfs.Stopped(pid); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d not stopped 5 s after SIGSTOP", pid)
		}
	}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		p.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL) // let the test end
		<-done
		t.Fatal("Kill of a stopped plugin did not return")
	}
	if d := time.Since(start); d < stopBound || d > stopBound+2*time.Second {
		t.Errorf("Kill took %s, want about %s", d, stopBound)
	}
	if !p.Exited() {
		t.Error("Exited is false after Kill")
	}
	if !strings.Contains(logs.String(), "plugin did not stop in time; killing it") || !strings.Contains(logs.String(), fmt.Sprintf(`"pid":%d`, pid)) {
		t.Errorf("the forced kill is not logged with the pid:\n%s", logs)
	}
}

// TestSocketInSocketDir: the plugin makes its socket in a folder of its own
// under SocketDir, never in its temporary directory, and Kill removes the
// folder: a master that empties SocketDir at start leaves nothing behind.
func TestSocketInSocketDir(t *testing.T) {
	if testing.Short() {
		t.Skip("plugin processes: skipped with -short")
	}
	sockets, tmp := t.TempDir(), t.TempDir()
	env := append(minimalEnv(), scenarioEnv+"=ok", "GORACE=atexit_sleep_ms=0", "TMPDIR="+tmp)
	p, err := Launch(Options{Name: "test ok", Kind: KindMPM, Argv: []string{os.Args[0]}, Env: env,
		Log: slog.New(slog.DiscardHandler), SocketDir: sockets})
	if err != nil {
		t.Fatal(err)
	}
	found, _ := filepath.Glob(filepath.Join(sockets, "*", "plugin*"))
	if len(found) != 1 {
		t.Errorf("sockets under SocketDir: %v, want one", found)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("the plugin made %v in its TMPDIR", left)
	}
	p.Kill()
	if left, _ := os.ReadDir(sockets); len(left) > 0 {
		t.Errorf("Kill left %v in SocketDir", left)
	}
}

// records returns the JSON records in logs whose msg is msg.
func records(t *testing.T, logs *syncBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// TestPanicIsOneRecord: a plugin's panic reaches the log as one error
// record holding the whole trace, not one record per line.
func TestPanicIsOneRecord(t *testing.T) {
	p, logs, err := launch(t, "panic-mid-rpc", 0)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := p.MPM()
	if _, err := m.Maintain(context.Background(), &mpm.MaintainRequest{Generation: 1}); err == nil {
		t.Fatal("Maintain on a panicking plugin succeeded")
	}
	for deadline := time.Now().Add(5 * time.Second); len(records(t, logs, MsgPanicked)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q record:\n%s", MsgPanicked, logs)
		}
	}
	time.Sleep(2 * panicQuiet) // any stray line of the trace would be logged by now
	recs := records(t, logs, MsgPanicked)
	if len(recs) != 1 {
		t.Fatalf("%d panic records, want 1:\n%s", len(recs), logs)
	}
	r := recs[0]
	trace, _ := r["trace"].(string)
	if r["level"] != "ERROR" || r["panic"] != "panic: the plugin's own bug" || r["plugin"] != "test panic-mid-rpc" ||
		!strings.Contains(trace, "goroutine ") || strings.Count(trace, "\n") < 5 {
		t.Fatalf("panic record: %v", r)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "goroutine ") && !strings.Contains(line, MsgPanicked) {
			t.Fatalf("a line of the trace logged on its own: %s", line)
		}
	}
}

// TestStoppingIsNoNews: a plugin that phased stops, or that never
// started, leaves nothing above debug about its exit.
func TestStoppingIsNoNews(t *testing.T) {
	p, logs, err := launch(t, "ok", 0)
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	time.Sleep(100 * time.Millisecond)
	// The relay runs at info: a debug record is not written at all.
	if recs := records(t, logs, msgProcessExited); len(recs) != 0 {
		t.Fatalf("exit of a stopped plugin logged at info: %v", recs)
	}
	_, logs, err = launch(t, "bad-cookie", 0)
	if err == nil {
		t.Fatal("a plugin with someone else's cookie started")
	}
	for _, msg := range []string{msgNotGraceful, msgProcessExited} {
		for _, r := range records(t, logs, msg) {
			if r["level"] != "DEBUG" {
				t.Fatalf("%q of a plugin that never started at %v:\n%s", msg, r["level"], logs)
			}
		}
	}
}
