package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/phasedhq/phased/sdk/hook"
	"github.com/phasedhq/phased/sdk/sdktest"
)

// logBuffer collects the plugin's log lines (JSON, one a line); the
// plugin's calls run on the gRPC server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the log records with the given message.
func (b *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// newWarmup returns the plugin with its log in a buffer.
func newWarmup() (*Warmup, *logBuffer) {
	logs := &logBuffer{}
	return &Warmup{log: slog.New(slog.NewJSONHandler(logs, nil))}, logs
}

// newSite makes server_root/public with three files (one in a folder) and
// returns server_root and the effective configuration as the master sends
// it (document_root absolute).
func newSite(t *testing.T) (string, json.RawMessage) {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{"public/index.html": "<h1>hi</h1>\n", "public/app.css": "body{}\n", "public/img/logo.svg": "<svg/>\n"}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, configJSON(t, root, filepath.Join(root, "public"))
}

func configJSON(t *testing.T, serverRoot, documentRoot string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(map[string]any{"server_root": serverRoot, "document_root": documentRoot, "listen": []string{"127.0.0.1:8080"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func phase(p hook.Phase, pass int, cfg json.RawMessage) *hook.PhaseRequest {
	return &hook.PhaseRequest{Phase: p, Pass: pass, Generation: pass, Slot: -1, ConfigJSON: cfg}
}

func TestDescribe(t *testing.T) {
	for _, tt := range []struct {
		protocol    int
		childEvents bool
		logged      int // "protocol 1" notes
	}{
		{protocol: 3, childEvents: true},
		{protocol: 2, childEvents: true},
		{protocol: 1, childEvents: false, logged: 1},
	} {
		w, logs := newWarmup()
		c := sdktest.HookProtocol(t, w, tt.protocol)
		got, err := c.Describe(t.Context(), &hook.DescribeRequest{})
		if err != nil {
			t.Fatalf("protocol %d: Describe: %v", tt.protocol, err)
		}
		want := &hook.DescribeResponse{Phases: []hook.Phase{hook.PhaseConfigure, hook.PhasePostConfig}, ChildEvents: tt.childEvents, Name: "warmup"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("protocol %d: Describe = %+v, want %+v", tt.protocol, got, want)
		}
		if n := len(logs.records(t, "the master speaks plugin protocol 1: children will not be logged")); n != tt.logged {
			t.Errorf("protocol %d: logged the protocol 1 note %d times, want %d", tt.protocol, n, tt.logged)
		}
	}
}

func TestConfigure(t *testing.T) {
	root, good := newSite(t)
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     json.RawMessage
		wantMsg string // "" for success; else part of the ConfigError on document_root
	}{
		{name: "an existing directory", cfg: good},
		{name: "relative to server_root", cfg: configJSON(t, root, "public")},
		{name: "missing", cfg: configJSON(t, root, filepath.Join(root, "nowhere")), wantMsg: "does not exist"},
		{name: "a file", cfg: configJSON(t, root, filepath.Join(root, "file")), wantMsg: "is not a directory"},
		{name: "unset", cfg: json.RawMessage(`{"server_root": "/srv"}`), wantMsg: "must be set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := newWarmup()
			_, err := sdktest.Hook(t, w).RunPhase(t.Context(), phase(hook.PhaseConfigure, 1, tt.cfg))
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("configure: %v", err)
				}
				return
			}
			ces, ok := errors.AsType[hook.ConfigErrors](err)
			if !ok || len(ces) != 1 || ces[0].Key != "document_root" || !strings.Contains(ces[0].Message, tt.wantMsg) {
				t.Fatalf("configure error = %v, want one ConfigError on document_root saying %q", err, tt.wantMsg)
			}
		})
	}
}

// Configuration that is not JSON fails the phase, but is no ConfigError:
// no key is at fault.
func TestConfigureBadJSON(t *testing.T) {
	w, _ := newWarmup()
	_, err := sdktest.Hook(t, w).RunPhase(t.Context(), phase(hook.PhaseConfigure, 1, json.RawMessage(`{`)))
	if err == nil {
		t.Fatal("configure accepted a configuration that is not JSON")
	}
	if _, ok := errors.AsType[hook.ConfigErrors](err); ok {
		t.Errorf("configure error = %v, want no ConfigErrors", err)
	}
}

// Pass 1 counts; pass 2 reads every file and writes the index; a graceful
// restart's pass rewrites it.
func TestPostConfigPasses(t *testing.T) {
	root, cfg := newSite(t)
	w, logs := newWarmup()
	c := sdktest.Hook(t, w)
	index := filepath.Join(root, "warmup.index")

	if _, err := c.RunPhase(t.Context(), phase(hook.PhasePostConfig, 1, cfg)); err != nil {
		t.Fatalf("post-config pass 1: %v", err)
	}
	if _, err := os.Stat(index); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after pass 1, stat %s: %v; want no index yet", index, err)
	}
	counted := logs.records(t, "warm-up counted files; it indexes them on pass 2")
	if len(counted) != 1 || counted[0]["files"] != 3.0 || counted[0]["pass"] != 1.0 {
		t.Fatalf("pass 1 logged %v, want one count of 3 files", counted)
	}

	for pass := 2; pass <= 3; pass++ {
		if _, err := c.RunPhase(t.Context(), phase(hook.PhasePostConfig, pass, cfg)); err != nil {
			t.Fatalf("post-config pass %d: %v", pass, err)
		}
	}
	b, err := os.ReadFile(index)
	if err != nil {
		t.Fatalf("after pass 2: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var paths []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || len(f[0]) != 64 {
			t.Fatalf("index line %q, want \"sha256 size path\"", l)
		}
		paths = append(paths, f[2])
	}
	if wantPaths := []string{"app.css", "img/logo.svg", "index.html"}; !reflect.DeepEqual(paths, wantPaths) {
		t.Errorf("index paths = %v, want %v", paths, wantPaths)
	}
	// sha256sum of "body{}\n"
	if want := "2708d73bf31c36cdfa1aa466551ed101017280fa546caba4473cfef6e92a93b5 7 app.css"; lines[0] != want {
		t.Errorf("index line %q, want %q", lines[0], want)
	}
	indexed := logs.records(t, "warm-up indexed files")
	if len(indexed) != 2 || indexed[0]["files"] != 3.0 || indexed[0]["index"] != index || indexed[1]["pass"] != 3.0 {
		t.Errorf("passes 2 and 3 logged %v, want two records of 3 files into %s", indexed, index)
	}
	leftovers, _ := filepath.Glob(filepath.Join(root, ".warmup.index.*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

// A dry run (`phased -t`) writes nothing, whatever the pass.
func TestPostConfigDryRun(t *testing.T) {
	root, cfg := newSite(t)
	w, _ := newWarmup()
	req := phase(hook.PhasePostConfig, 2, cfg)
	req.DryRun = true
	if _, err := sdktest.Hook(t, w).RunPhase(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "warmup.index")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run wrote the index (stat: %v)", err)
	}
}

// The index setting moves the index; a relative path is taken from
// server_root, and an index inside document_root does not index itself.
func TestPostConfigIndexSetting(t *testing.T) {
	for _, tt := range []struct{ index, want string }{
		{index: "var/site.index", want: "var/site.index"},
		{index: "public/warmup.index", want: "public/warmup.index"},
	} {
		root, cfg := newSite(t)
		if err := os.MkdirAll(filepath.Join(root, "var"), 0o755); err != nil {
			t.Fatal(err)
		}
		w, _ := newWarmup()
		c := sdktest.Hook(t, w)
		for pass := 2; pass <= 3; pass++ { // the second run finds the index in place
			req := phase(hook.PhasePostConfig, pass, cfg)
			req.Settings = map[string]any{SettingIndex: tt.index}
			if _, err := c.RunPhase(t.Context(), req); err != nil {
				t.Fatalf("index %s: %v", tt.index, err)
			}
		}
		b, err := os.ReadFile(filepath.Join(root, tt.want))
		if err != nil {
			t.Fatalf("index %s: %v", tt.index, err)
		}
		if n := strings.Count(string(b), "\n"); n != 3 {
			t.Errorf("index %s: index has %d lines, want 3:\n%s", tt.index, n, b)
		}
	}
}

// Describe rejects a setting it does not know, or an index that is no
// path, with a SettingError naming the key, as the master sees it.
func TestDescribeChecksSettings(t *testing.T) {
	w, _ := newWarmup()
	c := sdktest.Hook(t, w)
	for _, tt := range []struct {
		settings map[string]any
		key      string
	}{
		{map[string]any{"indx": "x"}, "indx"},
		{map[string]any{SettingIndex: 3}, SettingIndex},
		{map[string]any{SettingIndex: ""}, SettingIndex},
	} {
		_, err := c.Describe(t.Context(), &hook.DescribeRequest{Settings: tt.settings})
		if se, ok := errors.AsType[*hook.SettingError](err); !ok || se.Key != tt.key {
			t.Errorf("Describe(%v) = %v, want a SettingError on %s", tt.settings, err, tt.key)
		}
	}
	resp, err := c.Describe(t.Context(), &hook.DescribeRequest{Settings: map[string]any{SettingIndex: "var/x.index"}})
	if err != nil || resp.Name != "warmup" {
		t.Fatalf("Describe with a good index = %+v, %v", resp, err)
	}
}

// document_root may vanish between configure and post-config, or the
// plugin may be hung on post-config only: post-config checks it too.
func TestPostConfigMissingRoot(t *testing.T) {
	root := t.TempDir()
	w, _ := newWarmup()
	_, err := sdktest.Hook(t, w).RunPhase(t.Context(), phase(hook.PhasePostConfig, 2, configJSON(t, root, filepath.Join(root, "gone"))))
	if ces, ok := errors.AsType[hook.ConfigErrors](err); !ok || ces[0].Key != "document_root" {
		t.Fatalf("post-config error = %v, want a ConfigError on document_root", err)
	}
}

// The hook bound ends the walk: the phase fails with the context's error.
func TestPostConfigCanceled(t *testing.T) {
	_, cfg := newSite(t)
	w, _ := newWarmup()
	c := sdktest.Hook(t, w)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.RunPhase(ctx, phase(hook.PhasePostConfig, 2, cfg)); !errors.Is(err, context.Canceled) {
		t.Errorf("post-config with a canceled context: %v, want context.Canceled", err)
	}
}

// Phases the plugin does not implement are refused.
func TestUnimplementedPhases(t *testing.T) {
	_, cfg := newSite(t)
	w, _ := newWarmup()
	c := sdktest.Hook(t, w)
	for _, p := range []hook.Phase{hook.PhaseOpenLogs, hook.PhaseShutdown} {
		if _, err := c.RunPhase(t.Context(), phase(p, 2, cfg)); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: %v, want errors.ErrUnsupported", p, err)
		}
	}
}

func TestChildEvents(t *testing.T) {
	spawned := &hook.ChildEventRequest{Kind: hook.ChildSpawned, PID: 4242, Slot: 3, Generation: 2}
	exited := &hook.ChildEventRequest{Kind: hook.ChildExited, PID: 4242, Slot: 3, Generation: 2, Status: "exit status 0"}

	t.Run("protocol 2", func(t *testing.T) {
		w, logs := newWarmup()
		c := sdktest.Hook(t, w)
		for _, ev := range []*hook.ChildEventRequest{spawned, exited} {
			if err := c.ChildEvent(t.Context(), ev); err != nil {
				t.Fatalf("ChildEvent(%s): %v", ev.Kind, err)
			}
		}
		s := logs.records(t, "child spawned")
		if len(s) != 1 || s[0]["pid"] != 4242.0 || s[0]["slot"] != 3.0 || s[0]["generation"] != 2.0 {
			t.Errorf("spawned logged %v", s)
		}
		e := logs.records(t, "child exited")
		if len(e) != 1 || e[0]["status"] != "exit status 0" {
			t.Errorf("exited logged %v", e)
		}
	})

	t.Run("protocol 1", func(t *testing.T) {
		w, logs := newWarmup()
		c := sdktest.HookProtocol(t, w, 1)
		for _, ev := range []*hook.ChildEventRequest{spawned, exited} {
			if err := c.ChildEvent(t.Context(), ev); !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("ChildEvent(%s) under protocol 1: %v, want errors.ErrUnsupported", ev.Kind, err)
			}
		}
		if n := len(logs.records(t, "child spawned")) + len(logs.records(t, "child exited")); n != 0 {
			t.Errorf("logged %d child events under protocol 1, want none", n)
		}
	})
}
