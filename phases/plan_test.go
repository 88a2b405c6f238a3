package phases

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/exechook"
)

func cfgWith(hooks ...Hook) []Hook { return hooks }

func stepNames(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Name)
	}
	return out
}

func TestNewPlanOrdersEachPhase(t *testing.T) {
	c := cfgWith(
		Hook{Name: "warm", Phase: "post-config", Exec: []string{"/bin/true"}, Order: "middle", After: []string{"migrate"}},
		Hook{Name: "migrate", Phase: "post-config", Exec: []string{"/bin/true"}, Order: "last"},
		Hook{Name: "check", Phase: "configure", Exec: []string{"/bin/true"}, Order: "5"},
		Hook{Name: "pool", Phase: "child-init", Exec: []string{"/bin/true"}, Order: "middle"},
	)
	p, err := NewPlan(".", c, Step{Name: "builtin", Phase: Configure, Order: ReallyFirst, Func: func(context.Context, *HookContext) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if got := stepNames(p.Steps(PostConfig)); !slices.Equal(got, []string{"migrate", "warm"}) {
		t.Fatalf("post-config order %v", got)
	}
	if got := stepNames(p.Steps(Configure)); !slices.Equal(got, []string{"builtin", "check"}) {
		t.Fatalf("configure order %v", got)
	}
	want := "configure:   builtin (really-first) -> check (5)\n"
	if d := p.Describe(); !strings.HasPrefix(d, want) || !strings.Contains(d, "shutdown:    (none)") {
		t.Fatalf("Describe:\n%s", d)
	}
}

func TestNewPlanErrorsNameTheHooks(t *testing.T) {
	c := cfgWith(
		Hook{Name: "a", Phase: "post-config", Exec: []string{"x"}, Order: "soon"},
		Hook{Name: "b", Phase: "post-config", Exec: []string{"x"}, Order: "middle", After: []string{"c"}},
		Hook{Name: "c", Phase: "post-config", Exec: []string{"x"}, Order: "middle", After: []string{"b"}},
		Hook{Name: "d", Phase: "shutdown", Exec: []string{"x"}, Order: "middle", Before: []string{"b"}},
	)
	_, err := NewPlan(".", c)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`hooks[0].order ("a")`, `"soon"`, `hooks "b", "c" form a cycle`, `no hook named "b" in phase shutdown`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	var oe *OrderError
	if !errors.As(err, &oe) {
		t.Error("errors.As(*OrderError) failed")
	}
}

func TestRunGoHooksInOrderWithInfo(t *testing.T) {
	var got []string
	mk := func(name string, order int) Step {
		return Step{Name: name, Phase: PostConfig, Order: order, Func: func(_ context.Context, hc *HookContext) error {
			if hc.Pass != 2 || hc.Generation != 1 || hc.Phase != PostConfig || !hc.DryRun {
				t.Errorf("%s saw %+v", name, hc.Info)
			}
			got = append(got, name)
			return nil
		}}
	}
	p, err := NewPlan(".", cfgWith(), mk("late", Last), mk("early", First))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), Info{Phase: PostConfig, Pass: 2, Generation: 1, DryRun: true, Slot: -1}, slog.Default()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"early", "late"}) {
		t.Fatalf("ran %v", got)
	}
}

func TestRunStopsAtFailureAndTimeout(t *testing.T) {
	ran := false
	p, err := NewPlan(".", cfgWith(),
		Step{Name: "slow", Phase: Shutdown, Order: First, Timeout: 50 * time.Millisecond, Func: func(ctx context.Context, _ *HookContext) error {
			<-ctx.Done()
			time.Sleep(10 * time.Millisecond)
			return nil
		}},
		Step{Name: "after", Phase: Shutdown, Order: Last, Func: func(context.Context, *HookContext) error { ran = true; return nil }},
	)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(context.Background(), Info{Phase: Shutdown, Slot: -1}, slog.Default())
	if err == nil || err.Error() != `hook "slow" (shutdown): timed out after 50ms` || ran {
		t.Fatalf("Run = %v, later hook ran: %v", err, ran)
	}
}

func TestRunExecHookGetsEnvironment(t *testing.T) {
	c := cfgWith(Hook{Name: "env", Phase: "open-logs", Order: "middle", Exec: []string{"/bin/sh", "-c", `echo "$PHASED_PHASE/$PHASED_PASS/$PHASED_GENERATION/$PHASED_DRY_RUN/$PHASED_CONFIG/${PHASED_SLOT:-none}"; exit 7`}})
	p, err := NewPlan(".", c)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	err = p.Run(context.Background(), Info{Phase: OpenLogs, Pass: 3, Generation: 2, Slot: -1, ConfigPath: "/x.json"}, log)
	var ee *exechook.Error
	if !errors.As(err, &ee) || ee.ExitCode != 7 || ee.Hook != "env" {
		t.Fatalf("Run = %v", err)
	}
	if !strings.Contains(buf.String(), "open-logs/3/2/0//x.json/none") {
		t.Fatalf("hook output: %s", buf.String())
	}
}

func TestInfoEnvInChild(t *testing.T) {
	env := Info{Phase: ChildInit, Pass: 2, Generation: 1, Slot: 3, ConfigPath: "c"}.Env()
	if !slices.Contains(env, "PHASED_SLOT=3") || !slices.Contains(env, "PHASED_PHASE=child-init") {
		t.Fatalf("%v", env)
	}
	if !ChildInit.InChild() || PostConfig.InChild() {
		t.Fatal("InChild")
	}
}
