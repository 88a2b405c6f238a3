package master

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/core/logging"
	"github.com/phasedhq/phased/core/privdrop"
	"github.com/phasedhq/phased/internal/loglevel"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/plugins/host"
	mpmevent "github.com/phasedhq/phased/plugins/mpm/event"
	"github.com/phasedhq/phased/plugins/mpm/prefork"
	"github.com/phasedhq/phased/plugins/mpm/worker"
	"github.com/phasedhq/phased/sdk/mpm"
)

// maintainBound is how long one Maintain call may take.
const maintainBound = time.Second

// mpmFailsToKill is how many maintenance calls in a row may fail before the
// MPM plugin is killed and relaunched.
const mpmFailsToKill = 3

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
		o.SocketGroup = strconv.Itoa(int(l.who.GID))
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
	p, err := host.Launch(l.options("mpm "+name, host.KindMPM, argv))
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

// configureMPM launches the MPM of cfg and has it read its settings.
func (l *launcher) configureMPM(ctx context.Context, cfg *config.Config) (*host.Plugin, mpm.MPM, *mpm.ConfigureResponse, error) {
	p, policy, err := l.launchMPM(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	resp, err := policy.Configure(ctx, &mpm.ConfigureRequest{Settings: cfg.MPM.Settings})
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
		log.Warn(n, "mpm", cfg.MPM.Name)
	}
	return nil
}

// freeSlot returns the lowest process slot of g no child holds, or -1.
func (m *Master) freeSlot(g *generation) int {
	used := make(map[int]bool)
	for _, k := range m.kids {
		if k.gen == g {
			used[k.slot] = true
		}
	}
	for s := range g.limits.ServerLimit {
		if !used[s] {
			return s
		}
	}
	return -1
}

// tickPolicy starts one maintenance tick of every serving generation's MPM,
// with the listeners' queues as sampled this tick. The call to the plugin
// runs beside the event loop, never in it: a plugin that hangs (up to
// maintainBound) or is being relaunched (a handshake) delays no signal,
// child event or control command. Its answer comes back as an event
// (maintained) and is carried out there.
func (m *Master) tickPolicy(now time.Time, queues []mpm.Listener) {
	if m.stop != nil {
		return
	}
	for _, g := range m.gens {
		if g.draining || g.mpmBusy {
			continue // the previous call is bounded: it answers or times out
		}
		if !m.mpmAlive(g, now) {
			continue
		}
		req := m.snapshot(g, now, queues)
		g.ticks++
		g.mpmBusy = true
		policy, plugin := g.policy, g.plugin
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), maintainBound)
			resp, err := policy.Maintain(ctx, req)
			cancel()
			m.events <- event{kind: evMaintained, gen: g, plugin: plugin, resp: resp, err: err}
		}()
	}
}

// maintained carries out an MPM's answer to a maintenance tick.
func (m *Master) maintained(ev event) {
	g := ev.gen
	g.mpmBusy = false
	if g.draining || m.stop != nil || ev.plugin != g.plugin {
		return // too late: the generation drains, or the plugin was replaced
	}
	if err := ev.err; err != nil {
		g.mpmFails++
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("did not answer within %s: %w", maintainBound, err)
		}
		m.log.Error("MPM maintenance failed; children keep serving", "generation", g.num, "mpm", g.cfg.MPM.Name,
			"plugin", g.plugin.Name(), "pid", g.plugin.PID(), "err", err, "failures", g.mpmFails)
		if g.mpmFails >= mpmFailsToKill {
			// A plugin that keeps failing or hangs is restarted:
			// mpmAlive relaunches it from the next tick.
			m.log.Log(context.Background(), logging.LevelNotice, "MPM plugin keeps failing; killing and relaunching it, children keep serving",
				"generation", g.num, "plugin", g.plugin.Name(), "pid", g.plugin.PID(), "failures", g.mpmFails)
			go g.plugin.Kill() // bounded, but not in the event loop
			g.mpmDown = true
		}
		return
	}
	g.mpmFails = 0
	resp := ev.resp
	if resp.ReachedMax {
		m.counters.Add(scoreboard.MaxChildrenReached, 1)
	}
	for _, l := range resp.Logs {
		m.log.Log(context.Background(), mpmLevel(l.Level), l.Message, attrs(l.Attrs, g)...)
	}
	var spawned []int // this tick's new children, replacements for its retires
	for _, a := range resp.Actions {
		m.act(g, a, &spawned)
	}
}

// act carries out one action of an MPM's answer. A retire in the same
// answer as a spawn is a replacement: the child drains once one of the
// children spawned (collected in spawned) is ready, never before.
func (m *Master) act(g *generation, a mpm.Action, spawned *[]int) {
	switch a.Kind {
	case mpm.Spawn:
		for range a.Count {
			pid := m.spawnOne(g)
			if pid == 0 {
				return
			}
			*spawned = append(*spawned, pid)
		}
	case mpm.Retire, mpm.Kill:
		for _, k := range m.kids {
			if k.gen != g || k.slot != a.Slot || k.retiring {
				continue
			}
			k.retiring = true
			m.counters.Add(scoreboard.RetireCounter(a.Reason), 1)
			m.log.Info("MPM retires a child", "pid", k.pid, "generation", g.num, "slot", k.slot, "kind", string(a.Kind), "reason", a.Reason)
			if a.Kind == mpm.Kill {
				syscall.Kill(k.pid, syscall.SIGKILL)
				continue
			}
			successor := 0
			if len(*spawned) > 0 {
				successor, *spawned = (*spawned)[0], (*spawned)[1:]
			}
			m.handOff(k, successor, time.Now())
		}
	}
}

// spawnOne starts a child of g in a free slot and returns its pid; 0 when
// no slot is free or the spawn failed.
func (m *Master) spawnOne(g *generation) int {
	slot := m.freeSlot(g)
	if slot < 0 {
		return 0
	}
	pid, err := m.spawn(g, slot)
	if err != nil {
		m.log.Error("cannot start a child", "generation", g.num, "slot", slot, "err", err)
		m.crashed(g, err.Error())
		return 0
	}
	return pid
}

func (m *Master) snapshot(g *generation, now time.Time, queues []mpm.Listener) *mpm.MaintainRequest {
	req := &mpm.MaintainRequest{Now: now, Generation: g.num, TicksSinceRestart: g.ticks}
	snap := g.board.Snapshot()
	for _, k := range m.kids {
		if k.gen != g {
			continue
		}
		c := mpm.Child{Slot: k.slot, PID: k.pid, State: mpm.ChildStarting, Started: k.started}
		if g.limits.MaxMemoryPerChild > 0 {
			// Reading PSS walks the child's page tables: only when asked.
			c.MemoryBytes = memory(k.pid)
		}
		switch {
		case k.retiring:
			c.State = mpm.ChildRetiring
		case k.ready:
			c.State = mpm.ChildReady
		}
		if k.slot < len(snap.Workers) {
			// A child at its connection limit accepts nothing: its idle
			// workers are no spare capacity (Apache's not_accepting).
			full := k.slot < len(snap.Procs) && snap.Procs[k.slot].Full
			for _, w := range snap.Workers[k.slot][:g.limits.ThreadsPerChild] {
				switch w.State {
				case scoreboard.Idle:
					if !full {
						c.IdleSlots++
					}
				case scoreboard.Dead, scoreboard.Starting:
				default:
					c.BusySlots++
				}
				c.Connections += w.ConnCount
			}
		}
		req.Children = append(req.Children, c)
	}
	sort.Slice(req.Children, func(i, j int) bool { return req.Children[i].Slot < req.Children[j].Slot })
	req.Listeners = queues
	return req
}

// sampleQueues reads every listener's accept-queue depth and limit and
// publishes them in the shared counters for the status page and metrics.
// It runs at start and on every tick, whether or not an MPM answers, so the
// figures never depend on the plugin's health.
func (m *Master) sampleQueues() []mpm.Listener {
	var out []mpm.Listener
	for i, l := range m.lns.List() {
		depth, limit, _ := l.QueueDepth()
		m.counters.SetQueue(i, depth, limit)
		out = append(out, mpm.Listener{Addr: l.Addr, QueueDepth: depth})
	}
	return out
}

// memory returns a process's proportional set size (PSS) in bytes, or its
// RSS where smaps_rollup is not available.
func memory(pid int) int64 {
	for _, f := range []struct{ path, key string }{
		{fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:"},
		{fmt.Sprintf("/proc/%d/status", pid), "VmRSS:"},
	} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == f.key {
				kb, _ := strconv.ParseInt(fields[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// mpmLevel is the slog level of an MPM's log entry; an unknown one is info.
func mpmLevel(l mpm.Level) slog.Level {
	if lv, err := loglevel.Parse(string(l)); err == nil {
		return lv
	}
	return slog.LevelInfo
}

func attrs(m map[string]string, g *generation) []any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []any{"generation", g.num, "mpm", g.cfg.MPM.Name}
	for _, k := range keys {
		out = append(out, k, m[k])
	}
	return out
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

// mpmAlive makes sure g's MPM plugin runs: one that died is logged at
// notice and relaunched with back-off, while the children keep serving.
func (m *Master) mpmAlive(g *generation, now time.Time) bool {
	if !g.mpmDown && !g.plugin.Exited() {
		return true
	}
	if !g.mpmDown {
		g.mpmDown = true
		m.log.Log(context.Background(), logging.LevelNotice, "MPM plugin exited; children keep serving, relaunching it",
			"generation", g.num, "plugin", g.plugin.Name(), "pid", g.plugin.PID())
	}
	if now.Before(g.mpmRetry) || !g.plugin.Exited() {
		return false // backing off, or the killed plugin is not gone yet
	}
	// The relaunch (a process start and a handshake) runs beside the event
	// loop; relaunched carries its outcome.
	g.mpmBusy = true
	launch, cfg := g.launch, g.cfg
	go func() {
		p, policy, resp, err := launch.configureMPM(context.Background(), cfg)
		m.events <- event{kind: evRelaunched, gen: g, plugin: p, policy: policy, limits: resp, err: err}
	}()
	return false
}

// relaunched takes a relaunched MPM plugin into its generation, or backs
// off when the relaunch failed.
func (m *Master) relaunched(ev event) {
	g := ev.gen
	g.mpmBusy = false
	if ev.err != nil {
		g.mpmRelaunches++
		d := min(firstBackoff<<min(g.mpmRelaunches, 10), maxBackoff)
		g.mpmRetry = time.Now().Add(d)
		m.log.Error("MPM plugin relaunch failed; backing off", "generation", g.num, "plugin", g.plugin.Name(), "err", ev.err, "retry_in", d.String())
		return
	}
	if g.draining || m.stop != nil {
		go ev.plugin.Kill() // the generation no longer needs it
		return
	}
	if ev.limits.ThreadsPerChild != g.limits.ThreadsPerChild || ev.limits.ServerLimit != g.limits.ServerLimit {
		m.log.Warn("relaunched MPM plugin answers other limits than the generation was sized by; keeping the generation's",
			"generation", g.num)
	}
	g.plugin, g.policy, g.mpmDown, g.mpmFails, g.mpmRelaunches = ev.plugin, ev.policy, false, 0, 0
	m.log.Log(context.Background(), logging.LevelNotice, "MPM plugin relaunched", "generation", g.num, "plugin", ev.plugin.Name(), "pid", ev.plugin.PID())
}
