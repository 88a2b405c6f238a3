package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/core/logging"
	"github.com/phasedhq/phased/core/privdrop"
	"github.com/phasedhq/phased/core/supervisor"
	"github.com/phasedhq/phased/internal/procfs"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/plugins/host"
	mpmevent "github.com/phasedhq/phased/plugins/mpm/event"
	"github.com/phasedhq/phased/plugins/mpm/prefork"
	"github.com/phasedhq/phased/plugins/mpm/worker"
	"github.com/phasedhq/phased/sdk/mpm"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maintainBound is how long one Maintain call may take.
const maintainBound = time.Second

// PluginArg is the argument that starts the phased binary as a plugin:
// `phased --internal-plugin mpm worker` serves the built-in worker MPM over
// the same go-plugin gRPC path as a third-party MPM, so that path is always
// exercised.
const PluginArg = "--internal-plugin"

// BuiltinMPM returns the built-in MPM called name, or nil.
func BuiltinMPM(name string) mpm.MPM {
	switch name {
	case "prefork":
		return prefork.New()
	case "worker":
		return worker.New()
	case "event":
		return mpmevent.New()
	}
	return nil
}

// launcher starts plugin processes for a master (or for `phased -t`).
type launcher struct {
	exe       string
	log       *slog.Logger
	level     slog.Level
	socketDir string
	dir       string // plugins' working directory: server_root
	who       *privdrop.Identity
}

func (l *launcher) options(name, kind string, argv []string) host.Options {
	o := host.Options{Name: name, Kind: kind, Argv: argv, Dir: l.dir, Log: l.log, Level: l.level, SocketDir: l.socketDir}
	if l.who != nil {
		o.Credential = l.who.Credential()
	}
	return o
}

// launchMPM starts the MPM plugin mpm.name names: phased itself in plugin
// mode for a built-in, or the binary at that path.
func (l *launcher) launchMPM(cfg *config.Config) (*host.Plugin, mpm.MPM, error) {
	name := cfg.MPM.Name
	argv := []string{l.exe, PluginArg, "mpm", name}
	if strings.Contains(name, "/") {
		argv = []string{name}
	} else if BuiltinMPM(name) == nil {
		return nil, nil, fmt.Errorf("mpm.name: unknown MPM %q (prefork, worker, event, or the path of a plugin)", name)
	}
	p, err := host.Launch(l.options("mpm "+MPMName(name, nil), host.KindMPM, argv))
	if err != nil {
		return nil, nil, fmt.Errorf("mpm.name: %w", err)
	}
	policy, err := p.MPM()
	if err != nil {
		p.Kill()
		return nil, nil, err
	}
	return p, policy, nil
}

// describeBound bounds a plugin's Configure (an MPM) or Describe (a hook
// plugin): a plugin that starts and then does not answer fails the pass,
// and `phased -t`, instead of holding it.
const describeBound = 10 * time.Second

// configureMPM launches the MPM of cfg and has it read its settings.
func (l *launcher) configureMPM(ctx context.Context, cfg *config.Config) (*host.Plugin, mpm.MPM, *mpm.ConfigureResponse, error) {
	p, policy, err := l.launchMPM(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, describeBound)
	resp, err := policy.Configure(cctx, &mpm.ConfigureRequest{Settings: cfg.MPM.Settings})
	cancel()
	if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
		err = fmt.Errorf("its Configure did not answer within %s: %w", describeBound, err)
	}
	if err == nil && (resp.ServerLimit < 1 || resp.ThreadsPerChild < 1 || resp.StartServers < 0) {
		err = fmt.Errorf("nonsensical limits (server_limit %d, threads_per_child %d, start_servers %d)",
			resp.ServerLimit, resp.ThreadsPerChild, resp.StartServers)
	}
	if err != nil {
		p.Kill()
		return nil, nil, nil, fmt.Errorf("%s MPM: %w", cfg.MPM.Name, err)
	}
	return p, policy, resp, nil
}

// CheckMPM launches the MPM of cfg and has it validate its settings, for
// `phased -t`; nothing is left running.
func CheckMPM(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "phased-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	level, _ := logging.ParseLevel(cfg.ErrorLog.Level)
	l := &launcher{exe: exe, log: log, level: level, socketDir: dir, dir: cfg.ServerRoot}
	p, _, resp, err := l.configureMPM(ctx, cfg)
	if err != nil {
		return err
	}
	p.Kill()
	for _, n := range resp.Notes {
		log.Warn(n, "mpm", MPMName(cfg.MPM.Name, resp))
	}
	return nil
}

// maintain asks generation a.Gen's MPM what to do, beside the event loop,
// bounded by maintainBound: a plugin that hangs delays no signal, child
// event or control command. The answer comes back as an event.
func (m *Master) maintain(a supervisor.Maintain) {
	g := m.gens[a.Gen]
	if g == nil {
		return
	}
	req := m.snapshot(g, time.Now(), a.Ticks)
	policy := g.policy
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), maintainBound)
		resp, err := policy.Maintain(ctx, req)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("did not answer within %s: %w", maintainBound, err)
		}
		m.events <- event{kind: evMaintained, gen: a.Gen, epoch: a.Epoch, resp: resp, err: err}
	}()
}

// relaunch launches generation num's MPM plugin again, beside the event
// loop; relaunched carries the outcome.
func (m *Master) relaunch(num int) {
	g := m.gens[num]
	if g == nil {
		return
	}
	launch, cfg := g.launch, g.cfg
	go func() {
		p, policy, resp, err := launch.configureMPM(context.Background(), cfg)
		m.events <- event{kind: evRelaunched, gen: num, plugin: p, policy: policy, limits: resp, err: err}
	}()
}

// relaunched takes a relaunched plugin into its generation and tells the
// supervisor.
func (m *Master) relaunched(ev event) {
	g := m.gens[ev.gen]
	if g == nil {
		if ev.plugin != nil {
			go ev.plugin.Kill() // the generation is gone
		}
		return
	}
	r := supervisor.Relaunched{Gen: ev.gen, Err: ev.err}
	if ev.err == nil {
		g.plugin, g.policy = ev.plugin, ev.policy
		r.Plugin, r.PluginPID = ev.plugin.Name(), ev.plugin.PID()
		r.ServerLimit, r.ThreadsPerChild = ev.limits.ServerLimit, ev.limits.ThreadsPerChild
	}
	m.handle(r)
}

// snapshot is what g's MPM is told: its children as the supervisor knows
// them, their slots as the scoreboard shows them, the listeners' queues.
func (m *Master) snapshot(g *generation, now time.Time, ticks int) *mpm.MaintainRequest {
	req := &mpm.MaintainRequest{Now: now, Generation: g.num, TicksSinceRestart: ticks, Listeners: m.queues, Recent: m.recentAt}
	snap := g.board.Snapshot()
	for _, k := range m.sv.Children() {
		if k.Gen != g.num {
			continue
		}
		c := mpm.Child{Slot: k.Slot, PID: k.PID, State: mpm.ChildStarting, Started: k.Started}
		if g.limits.MaxMemoryPerChild > 0 && k.PID != 0 {
			// Reading PSS walks the child's page tables: only when asked.
			c.MemoryBytes = procfs.TreeMemory(k.PID) // with its app server, if it owns one
		}
		switch {
		case k.Retiring:
			c.State = mpm.ChildRetiring
		case k.Ready:
			c.State = mpm.ChildReady
		}
		if k.Slot < len(snap.Workers) {
			// A child at its connection limit accepts nothing: its idle
			// workers are no spare capacity (Apache's not_accepting).
			full := k.Slot < len(snap.Procs) && snap.Procs[k.Slot].Full
			for _, w := range snap.Workers[k.Slot][:g.limits.ThreadsPerChild] {
				switch w.State {
				case scoreboard.Idle:
					if !full {
						c.IdleSlots++
					}
				case scoreboard.Dead, scoreboard.Starting:
				default:
					c.BusySlots++
				}
			}
		}
		if k.Slot < len(snap.Procs) && snap.Procs[k.Slot].PID == k.PID {
			c.Connections = snap.Procs[k.Slot].Accepted
		}
		c.RecentConnections = m.recent[k.PID]
		req.Children = append(req.Children, c)
	}
	return req
}

// sampleAccepted records every child's accepted count, for the next
// maintenance tick's fresher accept rate: the rate between two ticks, a
// second apart, still holds the connections of a load that has just
// stopped, and a queue of new clients that nobody takes would look as if it
// drained (mpm.MaintainRequest.Recent).
func (m *Master) sampleAccepted(now time.Time) {
	clear(m.spare)
	if m.spare == nil {
		m.spare = make(map[int]uint64)
	}
	for _, g := range m.gens {
		for i := range g.board.Procs() {
			p := g.board.Proc(i)
			if pid := p.PID(); pid != 0 {
				m.spare[pid] = p.Accepted()
			}
		}
	}
	m.recent, m.spare = m.spare, m.recent
	m.recentAt = now
}

// sampleQueues reads every listener's accept-queue depth and limit and
// publishes them in the shared counters for the status page and metrics.
// It runs at start and at every beat of the loop (four times a second),
// whether or not an MPM answers, so the figures never depend on the
// plugin's health; the MPM is told the last sample, at most a beat old (a
// sample a second old could predate the clients a tick should spawn for).
func (m *Master) sampleQueues() {
	var out []mpm.Listener
	for i, l := range m.lns.List() {
		depth, limit, _ := l.QueueDepth()
		m.counters.SetQueue(i, depth, limit)
		out = append(out, mpm.Listener{Addr: l.Addr, QueueDepth: depth})
	}
	m.queues = out
}

// queuedForSlots reports whether the last sample found connections waiting
// in an accept queue while a generation's children hold a slot a
// connection (prefork, worker): then the MPM's maintenance runs within a
// beat (supervisor.Tick.Queued). An event child accepts while it has room
// for connections, not slots, and its MPM does not weigh the queue.
func (m *Master) queuedForSlots() bool {
	waiting := false
	for _, l := range m.queues {
		waiting = waiting || l.QueueDepth > 0
	}
	if !waiting {
		return false
	}
	for _, g := range m.gens {
		if g.limits != nil && g.limits.Model != mpm.Event {
			return true
		}
	}
	return false
}

// acceptStall is how long a child may wait in its accept loop without
// recording it before the master calls it stuck: it records it about ten
// times a second while it waits.
const acceptStall = 3 * time.Second

// watchAccept logs each child that the scoreboard shows waiting in its
// accept loop without having run it for acceptStall: a child that is
// stopped (SIGSTOP, a debugger) or wedged. One that holds the accept lock
// (accept_mutex flock) stops every sibling from accepting on that listener
// meanwhile, as in Apache, and is logged as an error; under accept_mutex
// epoll or none its siblings accept without it. Each child is logged once
// until its accept loop runs again, which is logged too.
func (m *Master) watchAccept(now time.Time) {
	seen := map[int]bool{}
	for _, g := range m.gens {
		for slot, p := range g.board.Snapshot().Procs {
			if p.PID == 0 || p.Generation != g.num {
				continue
			}
			stalled := p.AcceptWait != scoreboard.NotAccepting && !p.AcceptBeat.IsZero() && now.Sub(p.AcceptBeat) > acceptStall
			attrs := []any{"pid", p.PID, "generation", g.num, "slot", slot}
			switch {
			case stalled && !m.stuckAccept[p.PID]:
				attrs = append(attrs, "for", now.Sub(p.AcceptBeat).Round(time.Second).String())
				if p.AcceptWait == scoreboard.AcceptHoldingLock {
					m.log.Error("child holds the accept lock without accepting (stopped or wedged): its siblings cannot accept on that listener until it runs again or exits", attrs...)
				} else {
					m.log.Warn("child waits to accept without running (stopped or wedged); its siblings accept without it", attrs...)
				}
			case !stalled && m.stuckAccept[p.PID]:
				m.log.Info("child's accept loop runs again", attrs...)
			}
			if stalled {
				seen[p.PID] = true
			}
		}
	}
	m.stuckAccept = seen
}

// connectionLimit is a child's max_connections_per_child with its jitter.
func connectionLimit(l *mpm.ConfigureResponse) int {
	if l.MaxConnectionsPerChild <= 0 {
		return 0
	}
	n := l.MaxConnectionsPerChild
	if l.MaxConnectionsPerChildJitter > 0 {
		n += rand.IntN(l.MaxConnectionsPerChildJitter + 1)
	}
	return n
}
