package phases

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPluginStepsOrderedWithExecHooks: plugin hooks take their place among
// the exec hooks of a phase by order, before and after, and Run calls the
// PluginRunner at that place.
func TestPluginStepsOrderedWithExecHooks(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "trace")
	mark := func(name string) []string {
		return []string{"/bin/sh", "-c", fmt.Sprintf("echo exec %s >> %s", name, trace)}
	}
	c := cfgWith(
		Hook{Name: "late", Phase: "post-config", Exec: mark("late"), Order: "last", Before: []string{"warmup"}},
		Hook{Name: "warmup", Phase: "post-config", Plugin: "./bin/hook-warmup", Order: "middle"},
		Hook{Name: "early", Phase: "post-config", Exec: mark("early"), Order: "first"},
		Hook{Name: "follower", Phase: "post-config", Exec: mark("follower"), Order: "really-first", After: []string{"warmup"}},
		Hook{Name: "check", Phase: "configure", Plugin: "./bin/check", Order: "middle"},
		Hook{Name: "bye", Phase: "shutdown", Plugin: "./bin/hook-warmup", Order: "middle"},
	)
	p, err := NewPlan(".", c)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"early", "late", "warmup", "follower"}
	if got := stepNames(p.Steps(PostConfig)); !slices.Equal(got, want) {
		t.Fatalf("post-config order %v, want %v", got, want)
	}
	if !strings.Contains(p.Describe(), "post-config: early (first) -> late (last) -> warmup (middle) -> follower (really-first)") {
		t.Fatalf("Describe:\n%s", p.Describe())
	}
	if got := stepNames(p.Plugins()); !slices.Equal(got, []string{"check", "warmup", "bye"}) {
		t.Fatalf("Plugins() = %v, want the plugin hooks in phase order", got)
	}

	p.SetPluginRunner(func(_ context.Context, s Step, info Info) error {
		if s.Plugin != "./bin/hook-warmup" || info.Pass != 2 || info.Phase != PostConfig {
			t.Errorf("runner called with %+v, %+v", s, info)
		}
		f, err := os.OpenFile(trace, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintf(f, "plugin %s\n", s.Name)
		return err
	})
	if err := p.Run(context.Background(), Info{Phase: PostConfig, Pass: 2, Generation: 1, Slot: -1}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSpace(string(b)), "\n"); !slices.Equal(got, []string{"exec early", "exec late", "plugin warmup", "exec follower"}) {
		t.Fatalf("ran %q", got)
	}
}

// TestPluginStepFailures: a plugin hook that fails, outruns its timeout or
// has no host stops the phase with an error naming the hook and the phase,
// and later hooks do not run.
func TestPluginStepFailures(t *testing.T) {
	boom := errors.New("boom")
	for _, tt := range []struct {
		name    string
		timeout time.Duration
		runner  PluginRunner
		want    string
		is      error
	}{
		{"fails", 0, func(context.Context, Step, Info) error { return boom }, `hook "plug" (post-config): boom`, boom},
		{"outruns its timeout", 50 * time.Millisecond, func(ctx context.Context, _ Step, _ Info) error {
			<-ctx.Done() // as a gRPC call whose deadline passed
			return ctx.Err()
		}, `hook "plug" (post-config): timed out after 50ms: context deadline exceeded`, context.DeadlineExceeded},
		{"no host", 0, nil, `hook "plug" (post-config): no plugin host`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ran := false
			p, err := NewPlan(".", cfgWith(Hook{Name: "plug", Phase: "post-config", Plugin: "./bin/x", Order: "first", Timeout: tt.timeout}),
				Step{Name: "after", Phase: PostConfig, Order: Last, Func: func(context.Context, *HookContext) error { ran = true; return nil }})
			if err != nil {
				t.Fatal(err)
			}
			p.SetPluginRunner(tt.runner)
			start := time.Now()
			err = p.Run(context.Background(), Info{Phase: PostConfig, Slot: -1}, slog.New(slog.DiscardHandler))
			if err == nil || err.Error() != tt.want || (tt.is != nil && !errors.Is(err, tt.is)) || ran {
				t.Fatalf("Run = %v (later hook ran: %v), want %q", err, ran, tt.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
}

// TestPluginHookInChildPhaseIsAnError: plugin hooks run in the master, so a
// plugin: entry at child-init or child-exit is a config error naming it.
func TestPluginHookInChildPhaseIsAnError(t *testing.T) {
	_, err := NewPlan(".", cfgWith(Hook{Name: "pool", Phase: "child-init", Plugin: "./bin/x", Order: "middle"}))
	if err == nil || !strings.Contains(err.Error(), `hooks[0] ("pool"): a plugin hook runs in the master; child-init runs in children`) {
		t.Fatalf("NewPlan = %v", err)
	}
}
