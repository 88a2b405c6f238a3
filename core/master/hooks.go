package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/phases"
	"github.com/phasedhq/phased/plugins/host"
	"github.com/phasedhq/phased/sdk/hook"
)

// childEventBound is how long a hook plugin may take over a child
// notification.
const childEventBound = 2 * time.Second

// hookProc is one hook plugin process.
type hookProc struct {
	name     string
	index    int // its entry in the configuration's hooks list
	plugin   *host.Plugin
	client   hook.Client
	desc     *hook.DescribeResponse
	settings map[string]any // its entry's settings
}

// hookPlugins are the hook plugin processes of one pass; its generation keeps
// them for child notifications and the shutdown phase.
type hookPlugins struct {
	procs map[string]*hookProc
}

// launchHooks starts every plugin hook of plan, hands each its entry's
// settings (hooks, the configuration's list) and checks that it implements
// the phase its entry names, and makes plan run them.
func (l *launcher) launchHooks(ctx context.Context, plan *phases.Plan, hooks []config.Hook) (*hookPlugins, error) {
	hp := &hookPlugins{procs: map[string]*hookProc{}}
	for _, s := range plan.Plugins() {
		var settings map[string]any
		if s.Index >= 0 && s.Index < len(hooks) {
			settings = hooks[s.Index].Settings
		}
		p, err := host.Launch(l.options("hook "+s.Name, host.KindHook, []string{s.Plugin}))
		if err != nil {
			hp.kill()
			return nil, fmt.Errorf("hooks[%d].plugin: hook %q: %w", s.Index, s.Name, err)
		}
		proc := &hookProc{name: s.Name, index: s.Index, plugin: p, settings: settings}
		hp.procs[s.Name] = proc
		if len(settings) > 0 && p.Protocol() < host.ProtocolV3 {
			hp.kill()
			return nil, fmt.Errorf("hooks[%d].settings: plugin %s speaks plugin protocol %d, which carries no settings (it needs 3: rebuild it with the current SDK)",
				s.Index, s.Plugin, p.Protocol())
		}
		if proc.client, err = p.Hook(); err == nil {
			dctx, cancel := context.WithTimeout(ctx, describeBound)
			proc.desc, err = proc.client.Describe(dctx, &hook.DescribeRequest{Protocol: p.Protocol(), Settings: settings})
			cancel()
			if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
				err = fmt.Errorf("plugin %s: Describe did not answer within %s: %w", s.Plugin, describeBound, err)
			}
			err = proc.settingError(err)
		}
		if err == nil && !slices.Contains(proc.desc.Phases, hook.Phase(s.Phase)) {
			err = fmt.Errorf("plugin %s does not implement the %s phase (it implements %v)", s.Plugin, s.Phase, proc.desc.Phases)
		}
		if err != nil {
			hp.kill()
			return nil, fmt.Errorf("hooks[%d]: hook %q: %w", s.Index, s.Name, err)
		}
	}
	plan.SetPluginRunner(hp.run)
	return hp, nil
}

func (hp *hookPlugins) run(ctx context.Context, s phases.Step, info phases.Info) error {
	proc, ok := hp.procs[s.Name]
	if !ok {
		return errors.New("plugin not running")
	}
	cfgJSON, err := os.ReadFile(info.ConfigPath)
	if err != nil {
		return fmt.Errorf("reading the effective configuration: %w", err)
	}
	_, err = proc.client.RunPhase(ctx, &hook.PhaseRequest{
		Phase: hook.Phase(info.Phase), Pass: info.Pass, Generation: info.Generation,
		DryRun: info.DryRun, Slot: -1, ConfigJSON: cfgJSON, Settings: proc.settings,
	})
	if err != nil && exitedSoon(proc.plugin, err) {
		return fmt.Errorf("plugin %s exited during the phase: %w", s.Plugin, err)
	}
	return proc.settingError(err)
}

// settingError names the key of a plugin's error about one of its
// settings as the configuration does: hooks[i].settings.KEY.
func (proc *hookProc) settingError(err error) error {
	if se, ok := errors.AsType[*hook.SettingError](err); ok {
		return &hookSettingError{index: proc.index, err: se}
	}
	return err
}

// hookSettingError is a hook plugin's SettingError, named by its entry.
type hookSettingError struct {
	index int
	err   *hook.SettingError
}

func (e *hookSettingError) Error() string {
	return fmt.Sprintf("hooks[%d].settings.%s: %s", e.index, e.err.Key, e.err.Msg)
}

func (e *hookSettingError) Unwrap() error { return e.err }

// exitedSoon reports whether p's process ended: a dead plugin's RPC fails
// as Unavailable a moment before go-plugin reaps it.
func exitedSoon(p *host.Plugin, err error) bool {
	if status.Code(err) != codes.Unavailable {
		return p.Exited()
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if p.Exited() {
			return true
		}
	}
	return false
}

// notify tells the plugins that asked for them (protocol 2) that a child was
// spawned or exited. It does not wait for them.
func (hp *hookPlugins) notify(ev hook.ChildEventRequest, log *slog.Logger) {
	if hp == nil {
		return
	}
	for _, proc := range hp.procs {
		if !proc.desc.ChildEvents || proc.plugin.Exited() {
			continue
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), childEventBound)
			defer cancel()
			if err := proc.client.ChildEvent(ctx, &ev); err != nil {
				log.Warn("hook plugin did not take a child notification", "hook", proc.name, "event", string(ev.Kind), "err", err)
			}
		}()
	}
}

func (hp *hookPlugins) kill() {
	if hp == nil {
		return
	}
	for _, proc := range hp.procs {
		proc.plugin.Kill()
	}
}

// logSwitch is a slog.Handler that writes to whatever the master's error
// log is now. Plugins start before a pass opens its logs and outlive the
// pass; their records follow the master to each new log.
type logSwitch struct {
	cur    *atomic.Pointer[slog.Handler]
	attrs  []slog.Attr
	groups []string
}

func newLogSwitch(h slog.Handler) *logSwitch {
	p := &atomic.Pointer[slog.Handler]{}
	p.Store(&h)
	return &logSwitch{cur: p}
}

func (s *logSwitch) set(h slog.Handler) { s.cur.Store(&h) }

func (s *logSwitch) handler() slog.Handler {
	h := *s.cur.Load()
	for _, g := range s.groups {
		h = h.WithGroup(g)
	}
	if len(s.attrs) > 0 {
		h = h.WithAttrs(s.attrs)
	}
	return h
}

func (s *logSwitch) Enabled(ctx context.Context, l slog.Level) bool {
	return (*s.cur.Load()).Enabled(ctx, l)
}

func (s *logSwitch) Handle(ctx context.Context, r slog.Record) error {
	return s.handler().Handle(ctx, r)
}

func (s *logSwitch) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *s
	c.attrs = append(slices.Clone(s.attrs), attrs...)
	return &c
}

func (s *logSwitch) WithGroup(name string) slog.Handler {
	c := *s
	c.groups = append(slices.Clone(s.groups), name)
	return &c
}
