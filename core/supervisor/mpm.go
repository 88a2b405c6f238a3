package supervisor

import (
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/phasedhq/phased/internal/loglevel"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/sdk/mpm"
)

// tick is the executor's clock: escalations, the MPM's maintenance once a
// Tick (once an UrgentTick while connections wait in an accept queue),
// respawns as the back-off allows.
func (s *Supervisor) tick(queued bool) {
	s.endDrainDelay()
	s.escalate()
	if since := s.now.Sub(s.lastTick); since >= s.t.Tick || queued && s.t.UrgentTick > 0 && since >= s.t.UrgentTick {
		s.lastTick = s.now
		s.tickPolicy()
	}
	s.maintain()
}

// tickPolicy asks every serving generation's MPM what to do. The call runs
// beside the event loop, never in it: a plugin that hangs (up to the
// executor's bound) or is being relaunched delays no signal, child event or
// control command. Its answer comes back as Maintained.
func (s *Supervisor) tickPolicy() {
	if s.stop != nil {
		return
	}
	for _, g := range s.gens {
		if g.draining || g.mpmBusy || !s.mpmAlive(g) {
			continue // a previous call is bounded: it answers or times out
		}
		s.emit(Maintain{Gen: g.Num, Epoch: g.epoch, Ticks: g.ticks})
		g.ticks++
		g.mpmBusy = true
	}
}

// mpmAlive reports whether g's MPM plugin runs: one that died is logged at
// notice and relaunched with back-off, while the children keep serving.
func (s *Supervisor) mpmAlive(g *gen) bool {
	if !g.mpmDown && !g.mpmExited {
		return true
	}
	if !g.mpmDown {
		g.mpmDown = true
		s.log(notice, "MPM plugin exited; children keep serving, relaunching it", "generation", g.Num, "plugin", g.Plugin, "pid", g.PluginPID)
	}
	if s.now.Before(g.mpmRetry) || !g.mpmExited {
		return false // backing off, or the killed plugin is not gone yet
	}
	g.mpmBusy = true
	s.emit(RelaunchMPM{Gen: g.Num})
	return false
}

// maintained carries out an MPM's answer to a maintenance tick.
func (s *Supervisor) maintained(e Maintained) {
	g := s.gen(e.Gen)
	if g == nil {
		return
	}
	g.mpmBusy = false
	if g.draining || s.stop != nil || e.Epoch != g.epoch {
		return // too late: the generation drains, or the plugin was replaced
	}
	if e.Err != nil {
		g.mpmFails++
		s.log(slog.LevelError, "MPM maintenance failed; children keep serving", "generation", g.Num, "mpm", g.MPM,
			"plugin", g.Plugin, "pid", g.PluginPID, "err", e.Err, "failures", g.mpmFails)
		if g.mpmFails >= s.t.MPMFailsToKill {
			// A plugin that keeps failing or hangs is restarted: mpmAlive
			// relaunches it once it is gone.
			s.log(notice, "MPM plugin keeps failing; killing and relaunching it, children keep serving",
				"generation", g.Num, "plugin", g.Plugin, "pid", g.PluginPID, "failures", g.mpmFails)
			s.emit(KillMPM{Gen: g.Num})
			g.mpmDown = true
		}
		return
	}
	g.mpmFails = 0
	resp := e.Resp
	if resp.ReachedMax {
		s.count(Count{Counter: scoreboard.MaxChildrenReached, N: 1})
	}
	for _, l := range resp.Logs {
		level, err := loglevel.Parse(string(l.Level))
		if err != nil {
			level = slog.LevelInfo
		}
		s.log(level, l.Message, mpmAttrs(l.Attrs, g)...)
	}
	s.act(g, resp.Actions)
}

// act carries out an MPM's actions. A retire in the same answer as a spawn
// is a replacement: the child drains once one of the children spawned in
// the answer is ready, never before. A retire aimed at a child that is gone
// or already retiring (it asked to in the same tick) is dropped, and so is
// the spawn of the same reason the MPM paired with it earlier in the answer
// (its replacement): it would be a child nobody asked for.
func (s *Supervisor) act(g *gen, actions []mpm.Action) {
	actions = slices.Clone(actions)
	if s.holding(g) {
		actions = s.holdBack(g, actions)
	}
	for i, a := range actions {
		if a.Kind != mpm.Retire || s.retirable(g, a.Slot) != nil {
			continue
		}
		for j := i - 1; j >= 0; j-- {
			if p := &actions[j]; p.Kind == mpm.Spawn && p.Reason == a.Reason && p.Count > 0 {
				p.Count--
				s.log(slog.LevelInfo, "MPM retire dropped: the child is gone or retiring already; its replacement is not started",
					"generation", g.Num, "slot", a.Slot, "reason", a.Reason)
				break
			}
		}
	}
	var spawned []ChildID // this answer's new children, replacements for its retires
	for _, a := range actions {
		switch a.Kind {
		case mpm.Spawn:
			for range a.Count {
				id := s.spawnOne(g)
				if id == 0 {
					break
				}
				spawned = append(spawned, id)
			}
		case mpm.Retire, mpm.Kill:
			k := s.retirable(g, a.Slot)
			if k == nil {
				continue
			}
			k.retiring = true
			s.count(Count{Counter: scoreboard.RetireCounter(a.Reason), N: 1})
			s.log(slog.LevelInfo, "MPM retires a child", "pid", k.pid, "generation", g.Num, "slot", k.slot, "kind", string(a.Kind), "reason", a.Reason)
			if a.Kind == mpm.Kill {
				k.handedOff = true // nothing to drain
				s.kill(k)
				continue
			}
			var successor ChildID
			if len(spawned) > 0 {
				successor, spawned = spawned[0], spawned[1:]
			}
			s.handOff(k, successor)
		}
	}
}

// holdBack drops, while g's crash back-off holds new children back, the
// children the MPM asks for (spawnOne would start none) and the retires
// they would replace, which would otherwise drain with no successor: its
// rules ask again at a later tick if they still want them, when the
// back-off may have passed. Kills stand. Without it, an MPM that saw too
// few idle children (all of them dying at child-init) spawned more at
// every tick, and, with the urgent ticks of a queue no child accepted,
// four times a second.
func (s *Supervisor) holdBack(g *gen, actions []mpm.Action) []mpm.Action {
	held := map[string]int{} // spawns dropped, by reason
	kept := actions[:0]
	for _, a := range actions {
		switch {
		case a.Kind == mpm.Spawn:
			held[a.Reason] += a.Count
			continue
		case a.Kind == mpm.Retire && held[a.Reason] > 0:
			held[a.Reason]--
			continue
		}
		kept = append(kept, a)
	}
	if len(kept) < len(actions) {
		s.log(slog.LevelDebug, "crash back-off: the MPM's new children wait", "generation", g.Num, "until", g.nextSpawn.Format(time.RFC3339Nano))
	}
	return kept
}

// retirable is g's child in slot that is not retiring yet, or nil.
func (s *Supervisor) retirable(g *gen, slot int) *child {
	for _, k := range s.kids {
		if k.gen == g && k.slot == slot && !k.retiring {
			return k
		}
	}
	return nil
}

// relaunched takes a relaunched MPM plugin into its generation, or backs
// off when the relaunch failed.
func (s *Supervisor) relaunched(e Relaunched) {
	g := s.gen(e.Gen)
	if g == nil {
		s.emit(KillMPM{Gen: e.Gen}) // the generation is gone; so is its need
		return
	}
	g.mpmBusy = false
	if e.Err != nil {
		g.relaunches++
		d := min(s.t.FirstBackoff<<min(g.relaunches, 10), s.t.MaxBackoff)
		g.mpmRetry = s.now.Add(d)
		s.log(slog.LevelError, "MPM plugin relaunch failed; backing off", "generation", g.Num, "plugin", g.Plugin, "err", e.Err, "retry_in", d.String())
		return
	}
	g.Plugin, g.PluginPID = e.Plugin, e.PluginPID
	if g.draining || s.stop != nil {
		s.emit(KillMPM{Gen: g.Num}) // the generation no longer needs it
		return
	}
	if e.ThreadsPerChild != g.ThreadsPerChild || e.ServerLimit != g.ServerLimit {
		s.log(slog.LevelWarn, "relaunched MPM plugin answers other limits than the generation was sized by; keeping the generation's",
			"generation", g.Num)
	}
	g.epoch++
	g.mpmDown, g.mpmExited, g.mpmFails, g.relaunches = false, false, 0, 0
	s.log(notice, "MPM plugin relaunched", "generation", g.Num, "plugin", g.Plugin, "pid", g.PluginPID)
}

// mpmAttrs are an MPM log entry's attributes, in key order, after the
// generation and the MPM's name.
func mpmAttrs(m map[string]string, g *gen) []any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []any{"generation", g.Num, "mpm", g.MPM}
	for _, k := range keys {
		out = append(out, k, m[k])
	}
	return out
}
