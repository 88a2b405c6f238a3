package phases

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/phasedhq/phased/internal/exechook"
	"github.com/phasedhq/phased/internal/phase"
)

// Phase is a lifecycle phase (internal/phase holds phased's one
// vocabulary of phases; sdk/hook and the child runtime share it).
type Phase = phase.Phase

// The phases, in the order a master and its children meet them.
const (
	Configure  = phase.Configure
	OpenLogs   = phase.OpenLogs
	PostConfig = phase.PostConfig
	ChildInit  = phase.ChildInit
	ChildExit  = phase.ChildExit
	Shutdown   = phase.Shutdown
)

// All lists every phase in lifecycle order.
var All = phase.All()

// Info is what every hook knows of the moment it runs in; Info.Env is
// what an exec hook gets as PHASED_* variables.
type Info = phase.Info

// Hook is one entry of the `hooks:` configuration, as the configuration
// layer validated it (core/config's Hook, without the engine depending on
// the configuration package).
type Hook struct {
	// Name identifies the hook in logs, errors and before/after lists.
	Name string
	// Phase is the phase's name, as written.
	Phase string
	// Exec is the argv of an exec hook.
	Exec []string
	// Plugin is the path of a hook plugin.
	Plugin string
	// Order is the position as written (see ParseOrder).
	Order string
	// Before and After name hooks of the same phase.
	Before, After []string
	// Timeout bounds one run; 0 means none.
	Timeout time.Duration
}

// HookContext is what a Go hook receives.
type HookContext struct {
	Info
	// Log is the error log, tagged with the hook's name and phase.
	Log *slog.Logger
}

// Func is a hook written in Go (built into phased or, through the plugins
// host, a hook plugin's phase).
type Func func(ctx context.Context, hc *HookContext) error

// Step is one hook, resolved.
type Step struct {
	// Name is the hook's name.
	Name string
	// Phase is the phase it runs in.
	Phase Phase
	// Order is its position (see ParseOrder).
	Order int
	// Timeout bounds one run; 0 means none.
	Timeout time.Duration
	// Exec is the argv of an exec hook.
	Exec []string
	// Func is a Go hook.
	Func Func
	// Plugin is the path of a hook plugin, run through the Plan's
	// PluginRunner. Exactly one of Exec, Func and Plugin is set.
	Plugin string
	// Index is the hook's position in the config's hooks list; -1 for hooks
	// that do not come from the config.
	Index int
}

func (s Step) kind() string {
	if s.Func != nil {
		return "go"
	}
	if s.Plugin != "" {
		return "plugin " + s.Plugin
	}
	return "exec " + strings.Join(s.Exec, " ")
}

// Plan is the hooks of every phase in the order they run.
type Plan struct {
	steps   map[Phase][]Step
	dir     string
	plugins PluginRunner
}

// PluginRunner runs one phase of a plugin hook. The master provides it: it
// owns the plugin processes, which it launches anew for every pass.
type PluginRunner func(ctx context.Context, s Step, info Info) error

// SetPluginRunner makes r run the plan's plugin hooks.
func (p *Plan) SetPluginRunner(r PluginRunner) { p.plugins = r }

// Plugins returns the plan's plugin hooks, across all phases, in phase
// order.
func (p *Plan) Plugins() []Step {
	var out []Step
	for _, ph := range All {
		for _, s := range p.steps[ph] {
			if s.Plugin != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// NewPlan resolves the configuration's hooks, plus extra Go hooks, into a
// Plan; exec hooks run in dir. Errors name the hooks at fault
// (hooks[i].order, unknown names in before/after, cycles); they are joined
// so a user sees all of them at once.
func NewPlan(dir string, hooks []Hook, extra ...Step) (*Plan, error) {
	var errs []error
	byPhase := map[Phase][]Step{}
	ordered := map[Phase][]Ordered{}
	add := func(s Step, before, after []string) {
		byPhase[s.Phase] = append(byPhase[s.Phase], s)
		ordered[s.Phase] = append(ordered[s.Phase], Ordered{Name: s.Name, Order: s.Order, Before: before, After: after})
	}
	for i, h := range hooks {
		ph, err := phase.Parse(h.Phase)
		if err != nil {
			errs = append(errs, fmt.Errorf("hooks[%d] (%q): %w", i, h.Name, err))
			continue
		}
		pos, err := ParseOrder(h.Order)
		if err != nil {
			errs = append(errs, fmt.Errorf("hooks[%d].order (%q): %w", i, h.Name, err))
			continue
		}
		if h.Plugin != "" && ph.InChild() {
			errs = append(errs, fmt.Errorf("hooks[%d] (%q): a plugin hook runs in the master; %s runs in children (use exec, or the Go SDK's child hooks)", i, h.Name, h.Phase))
			continue
		}
		add(Step{Name: h.Name, Phase: ph, Order: pos, Timeout: h.Timeout, Exec: h.Exec, Plugin: h.Plugin, Index: i}, h.Before, h.After)
	}
	for _, s := range extra {
		s.Index = -1
		add(s, nil, nil)
	}
	p := &Plan{steps: map[Phase][]Step{}, dir: dir}
	for _, ph := range All {
		idx, err := Sort(string(ph), ordered[ph])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, i := range idx {
			p.steps[ph] = append(p.steps[ph], byPhase[ph][i])
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("hooks: %w", errors.Join(errs...))
	}
	return p, nil
}

// Steps returns the hooks of phase ph in the order they run.
func (p *Plan) Steps(ph Phase) []Step { return p.steps[ph] }

// Describe returns the resolved order of every phase, one line each, for
// `phased -S`.
func (p *Plan) Describe() string {
	var b strings.Builder
	for _, ph := range All {
		fmt.Fprintf(&b, "%-12s", string(ph)+":")
		steps := p.steps[ph]
		if len(steps) == 0 {
			b.WriteString(" (none)")
		}
		for i, s := range steps {
			if i > 0 {
				b.WriteString(" ->")
			}
			fmt.Fprintf(&b, " %s (%s)", s.Name, OrderName(s.Order))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Run runs the hooks of info.Phase in order, stopping at the first failure.
// The error names the hook and the phase. log receives each hook's output.
func (p *Plan) Run(ctx context.Context, info Info, log *slog.Logger) error {
	for _, s := range p.steps[info.Phase] {
		if err := p.run(ctx, s, info, log); err != nil {
			return err
		}
	}
	return nil
}

func (p *Plan) run(ctx context.Context, s Step, info Info, log *slog.Logger) error {
	hlog := log.With("hook", s.Name, "phase", string(info.Phase))
	start := time.Now()
	hlog.Debug("hook starting", "kind", s.kind(), "pass", info.Pass, "generation", info.Generation)
	if s.Func != nil {
		if s.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.Timeout)
			defer cancel()
		}
		errc := make(chan error, 1)
		go func() { errc <- s.Func(ctx, &HookContext{Info: info, Log: hlog}) }()
		select {
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("hook %q (%s): %w", s.Name, info.Phase, err)
			}
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("hook %q (%s): timed out after %s", s.Name, info.Phase, s.Timeout)
			}
			return fmt.Errorf("hook %q (%s): %w", s.Name, info.Phase, ctx.Err())
		}
	} else if s.Plugin != "" {
		if p.plugins == nil {
			return fmt.Errorf("hook %q (%s): no plugin host", s.Name, info.Phase)
		}
		if s.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.Timeout)
			defer cancel()
		}
		if err := p.plugins(ctx, s, info); err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("hook %q (%s): timed out after %s: %w", s.Name, info.Phase, s.Timeout, err)
			}
			return fmt.Errorf("hook %q (%s): %w", s.Name, info.Phase, err)
		}
	} else {
		err := exechook.Run(ctx, exechook.Spec{
			Hook: s.Name, Phase: string(info.Phase), Argv: s.Exec, Dir: p.dir,
			Env: append(hookEnviron(), info.Env()...), Timeout: s.Timeout, Log: log,
		})
		if err != nil {
			return err
		}
	}
	hlog.Debug("hook done", "took", time.Since(start).Round(time.Microsecond).String())
	return nil
}

// hookEnviron is the master's environment without phased's own variables,
// which would otherwise reach a hook that runs phased itself (`phased -t`),
// and without systemd's notify socket, which is the master's alone.
func hookEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PHASED_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			env = append(env, kv)
		}
	}
	return env
}
