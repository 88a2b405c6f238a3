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

	"github.com/phasedhq/phased/phases"
	"github.com/phasedhq/phased/plugins/host"
	"github.com/phasedhq/phased/sdk/hook"
)

// childEventBound is how long a hook plugin may take over a child
// notification.
const childEventBound = 2 * time.Second

// hookProc is one hook plugin process.
type hookProc struct {
	name   string
	plugin *host.Plugin
	client hook.Client
	desc   *hook.DescribeResponse
}

// hookPlugins are the hook plugin processes of one pass; its generation keeps
// them for child notifications and the shutdown phase.
type hookPlugins struct {
	procs map[string]*hookProc
}

// launchHooks starts every plugin hook of plan, checks that each implements
// the phase its entry names, and makes plan run them.
func (l *launcher) launchHooks(ctx context.Context, plan *phases.Plan) (*hookPlugins, error) {
	hp := &hookPlugins{procs: map[string]*hookProc{}}
	for _, s := range plan.Plugins() {
		p, err := host.Launch(l.options("hook "+s.Name, host.KindHook, []string{s.Plugin}))
		if err != nil {
			hp.kill()
			return nil, fmt.Errorf("hooks[%d].plugin: hook %q: %w", s.Index, s.Name, err)
		}
		proc := &hookProc{name: s.Name, plugin: p}
		hp.procs[s.Name] = proc
		if proc.client, err = p.Hook(); err == nil {
			dctx, cancel := context.WithTimeout(ctx, describeBound)
			proc.desc, err = proc.client.Describe(dctx, &hook.DescribeRequest{Protocol: p.Protocol()})
			cancel()
			if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
				err = fmt.Errorf("plugin %s: Describe did not answer within %s: %w", s.Plugin, describeBound, err)
			}
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
		DryRun: info.DryRun, Slot: -1, ConfigJSON: cfgJSON,
	})
	if err != nil && exitedSoon(proc.plugin, err) {
		return fmt.Errorf("plugin %s exited during the phase: %w", s.Plugin, err)
	}
	return err
}

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
