package supervisor

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// newGeneration adds the generation a pass made and makes it current.
func (s *Supervisor) newGeneration(spec GenSpec) *gen {
	g := &gen{GenSpec: spec, started: s.now, respawn: spec.StartServers}
	s.gens = append(s.gens, g)
	s.current = g
	return g
}

// started takes the first generation: it serves once start_servers of its
// children are ready.
func (s *Supervisor) started(e Started) {
	g := s.newGeneration(e.Gen)
	s.lastTick = s.now
	s.pending = &restart{gen: g, first: true, handover: e.Handover, deadline: s.now.Add(s.readyBound(g))}
	s.maintain()
}

func (s *Supervisor) command(c Command) {
	if c.Signal != 0 {
		what := map[string]string{CmdStop: "stopping", CmdGracefulStop: "graceful stop", CmdGraceful: "graceful restart", CmdUpgrade: "binary upgrade"}[c.Cmd]
		s.log(notice, "caught signal; "+what, "signal", c.Signal.String())
	}
	if s.stop != nil && c.Cmd != CmdStop {
		s.reply(c.Req, false, errStopping.Error())
		return
	}
	if l := s.leaving; l != nil {
		switch c.Cmd {
		case CmdGracefulStop:
			if c.Req != 0 {
				l.replies = append(l.replies, c.Req)
			}
		case CmdStop: // hurry: stop now, and answer who waited too
			s.leaving = nil
			s.beginStop(false, c.Req)
			s.stop.replies = append(s.stop.replies, l.replies...)
		default:
			s.reply(c.Req, false, errStopping.Error())
		}
		return
	}
	switch c.Cmd {
	case CmdGraceful, CmdRestart:
		s.restart(c.Req, c.Cmd == CmdRestart)
	case CmdRecycle:
		s.startRecycle(c.Req)
	case CmdUpgrade:
		s.startUpgrade(c.Req)
	case CmdGracefulStop:
		s.gracefulStop(c.Req)
	case CmdStop:
		s.beginStop(false, c.Req)
	default:
		s.reply(c.Req, false, fmt.Sprintf("unknown command %q", c.Cmd))
	}
}

// restart asks for a configuration pass and a new generation. The old
// generation drains once the new one is ready; if the pass fails, nothing
// changes and the error goes back.
func (s *Supervisor) restart(req RequestID, hard bool) {
	if why := s.busy(); why != "" {
		s.reply(req, false, why)
		return
	}
	s.emit(Notify{States: []string{"RELOADING=1"}})
	s.emit(RunPass{Req: req, Hard: hard})
}

// restartFailed answers a restart that will not happen, in the error log
// and to whoever asked, alike.
func (s *Supervisor) restartFailed(req RequestID, hard bool, why string) {
	s.count(Count{Counter: scoreboard.RestartFailures, N: 1})
	s.emit(Notify{States: []string{"READY=1"}, WithStatus: true}) // the old generation serves on
	what := "graceful restart"
	if hard {
		what = "restart"
	}
	s.log(slog.LevelError, what+" failed; the old generation keeps serving", "err", why)
	s.reply(req, false, why+"; the old generation keeps serving")
}

// passDone starts the generation a restart's pass made.
func (s *Supervisor) passDone(e PassDone) {
	if e.Err != nil {
		s.restartFailed(e.Req, e.Hard, e.Err.Error())
		return
	}
	var old []*gen
	for _, g := range s.gens {
		if !g.draining {
			old = append(old, g)
		}
	}
	g := s.newGeneration(e.Gen)
	s.pending = &restart{gen: g, old: old, hard: e.Hard, deadline: s.now.Add(s.readyBound(g)), req: e.Req}
	s.log(notice, "restarting", "generation", g.Num, "hard", e.Hard)
	if e.Hard {
		for _, o := range old {
			s.drain(o, false)
		}
	}
	s.maintain()
}

// checkPending finishes a restart (or the first start) once its generation
// is ready, or gives it up.
func (s *Supervisor) checkPending() {
	p := s.pending
	if p == nil {
		return
	}
	ready := 0
	for _, k := range s.kids {
		if k.gen == p.gen && k.ready && !k.retiring {
			ready++
		}
	}
	switch {
	case ready >= p.gen.StartServers || (ready > 0 && s.now.After(p.deadline)):
		s.pending = nil
		for _, o := range p.old {
			if !o.draining {
				s.drain(o, true)
			}
		}
		if p.first {
			if p.handover {
				s.takingOver = p.gen
				s.emit(TakeOver{})
				return
			}
			s.serving(p.gen)
			return
		}
		s.emit(CommitListeners{Gen: p.gen.Num})
		s.emit(Notify{States: []string{"READY=1"}, WithStatus: true})
		s.count(Count{Counter: scoreboard.Restarts, N: 1})
		s.announce(true) // an earlier restart's, still waiting: this one replaces its generation
		s.announcing = &announcing{req: p.req, gen: p.gen, old: p.old, children: ready, by: s.now.Add(s.t.CloseBound)}
		s.announce(false)
	case s.now.After(p.deadline) || (ready == 0 && p.gen.crashes >= s.t.CrashesToAbort):
		s.pending = nil
		why := fmt.Sprintf("generation %d did not become ready", p.gen.Num)
		if len(p.gen.exits) > 0 {
			why += ": its children " + strings.Join(p.gen.exits, "; ")
		} else {
			why += fmt.Sprintf(" within %s", s.readyBound(p.gen))
		}
		if p.first {
			s.fail(fmt.Errorf("%s", why))
			return
		}
		s.drain(p.gen, false)
		back := p.gen
		if len(p.old) > 0 {
			back = p.old[len(p.old)-1]
		}
		s.current = back
		s.emit(Rollback{Gen: p.gen.Num, Back: back.Num})
		s.restartFailed(p.req, p.hard, why)
	}
}

// announcing is a restart whose new generation is ready and whose old
// generations were told to drain: it is announced ("graceful restart done",
// and the reply `phased -k graceful` waits for) once every child of them
// has said it stopped accepting (EventClosed) or has exited, or CloseBound
// has passed. Announced at once, a client that connected right after
// `-k graceful` returned could still reach an old child, which accepts
// until the drain signal reaches it (a request logged into a rotated log
// file, an old certificate after an ACME roll-out).
type announcing struct {
	req      RequestID
	gen      *gen
	old      []*gen
	children int
	by       time.Time
}

// announce announces s.announcing once its old generations accept no
// more, or its bound has passed, or now with force; it is called after
// every event.
func (s *Supervisor) announce(force bool) {
	a := s.announcing
	if a == nil {
		return
	}
	if !force && s.now.Before(a.by) {
		for _, k := range s.kids {
			if !k.closed && slices.Contains(a.old, k.gen) {
				return
			}
		}
	}
	s.announcing = nil
	s.log(notice, "graceful restart done", "generation", a.gen.Num, "children", a.children)
	s.reply(a.req, true, fmt.Sprintf("generation %d serving", a.gen.Num))
}

// serving announces that the first generation serves.
func (s *Supervisor) serving(g *gen) {
	ready := 0
	for _, k := range s.kids {
		if k.gen == g && k.ready && !k.retiring {
			ready++
		}
	}
	s.emit(Notify{States: []string{"READY=1", "MAINPID"}, WithStatus: true})
	s.log(notice, "resuming normal operations", "generation", g.Num, "children", ready)
	s.emit(Ready{})
}

// drain retires every child of g: gracefully (contract.DrainSignal,
// bounded by g's drain timeout) or at once. At once takes two steps: every
// child first stops accepting (DrainSignal, as a graceful drain starts) and
// says so, and only when all have, or CloseBound has passed, are they told
// to cut (StopSignal). Cutting child by child would let a client whose
// request was cut reconnect to a sibling that still accepts and lose a
// request there too: more lost than was in flight.
func (s *Supervisor) drain(g *gen, graceful bool) {
	g.draining = true
	s.emit(KillMPM{Gen: g.Num}) // a draining generation needs no maintenance
	g.stage, g.deadline = 0, s.now.Add(g.DrainTimeout+s.t.DrainGrace)
	if !graceful {
		g.cutting, g.cutBy = true, s.now.Add(s.t.CloseBound)
	}
	for _, k := range s.kids {
		if k.gen == g {
			k.retiring, k.successor, k.handedOff = true, 0, true
			if !k.closed {
				s.emit(Signal{Child: k.id, Sig: contract.DrainSignal})
			}
		}
	}
	s.log(slog.LevelInfo, "generation draining", "generation", g.Num, "graceful", graceful)
	s.cutIfClosed(g)
}

// cutIfClosed tells a generation that is to stop at once to cut its
// connections, once none of its children accepts any more or cutBy passed.
func (s *Supervisor) cutIfClosed(g *gen) {
	if !g.cutting {
		return
	}
	open := 0
	for _, k := range s.kids {
		if k.gen == g && !k.closed {
			open++
		}
	}
	if open > 0 && s.now.Before(g.cutBy) {
		return
	}
	if open > 0 {
		s.log(slog.LevelWarn, "children did not say they stopped accepting; cutting anyway", "generation", g.Num, "children", open)
	}
	g.cutting = false
	g.stage, g.deadline = 1, s.now.Add(s.stopKillBound(g))
	for _, k := range s.kids {
		if k.gen == g {
			s.emit(Signal{Child: k.id, Sig: contract.StopSignal})
		}
	}
}

// escalate moves draining generations past their bounds: StopSignal, then
// SIGKILL (see stopKillBound).
func (s *Supervisor) escalate() {
	for _, g := range s.gens {
		if g.cutting {
			s.cutIfClosed(g)
			continue
		}
		if !g.draining || s.now.Before(g.deadline) || g.stage >= 2 {
			continue
		}
		sig := contract.StopSignal
		if g.stage == 1 {
			sig = syscall.SIGKILL
		}
		n := 0
		for _, k := range s.kids {
			if k.gen == g {
				s.emit(Signal{Child: k.id, Sig: sig})
				n++
			}
		}
		if n > 0 {
			s.log(slog.LevelWarn, "generation did not drain in time", "generation", g.Num, "children", n, "signal", sig.String())
		}
		g.stage++
		g.deadline = s.now.Add(s.stopKillBound(g))
	}
}

// gracefulStop begins a graceful stop: with a drain delay, readiness says
// 503 first while every child serves as before (the MPM maintains, a
// recycled child is replaced), and the stop itself begins when the delay
// is over (endDrainDelay); without one, or before the first generation
// serves, at once.
func (s *Supervisor) gracefulStop(req RequestID) {
	delay := time.Duration(0)
	if s.current != nil && (s.pending == nil || !s.pending.first) {
		delay = s.current.DrainDelay
	}
	if delay <= 0 {
		s.beginStop(true, req)
		return
	}
	s.leaving = &leaving{at: s.now.Add(delay)}
	if req != 0 {
		s.leaving.replies = append(s.leaving.replies, req)
	}
	s.announceStop()
	s.log(notice, "graceful stop: readiness answers 503; serving on until the drain delay is over", "drain_delay", delay.String())
}

// announceStop tells the children (readiness) and systemd that the
// master is stopping.
func (s *Supervisor) announceStop() {
	s.announced = true
	s.emit(Stopping{})
	s.emit(Notify{States: []string{"STOPPING=1"}})
}

// endDrainDelay begins the stop of a graceful stop whose drain delay is
// over.
func (s *Supervisor) endDrainDelay() {
	l := s.leaving
	if l == nil || s.now.Before(l.at) {
		return
	}
	s.leaving = nil
	s.log(slog.LevelInfo, "drain delay over; draining")
	s.beginStop(true, 0)
	s.stop.replies = append(s.stop.replies, l.replies...)
}

// readyBound is how long g may take to become ready: the master's bound,
// and its app servers' start timeout.
func (s *Supervisor) readyBound(g *gen) time.Duration {
	return s.t.ReadyBound + g.StartTimeout
}

// stopKillBound is how long g's children have between StopSignal and
// SIGKILL: the master's bound, and their app servers' stop timeout.
func (s *Supervisor) stopKillBound(g *gen) time.Duration {
	return s.t.StopKillBound + g.StopTimeout
}

// beginStop stops the master: every generation drains, gracefully or at
// once; a stop during a graceful stop hurries it.
func (s *Supervisor) beginStop(graceful bool, req RequestID) {
	switch {
	case s.stop == nil:
		if !s.upgraded && !s.announced {
			// A binary upgrade's old master leaves readiness alone: the
			// new master serves the same sockets.
			s.announceStop()
		}
		s.stop = &stopping{graceful: graceful}
		s.emit(ReleaseListeners{})
		if s.pending != nil && s.pending.req != 0 {
			s.reply(s.pending.req, false, errStopping.Error())
		}
		s.pending = nil
	case !graceful && s.stop.graceful:
		s.stop.graceful = false
	default:
		if req != 0 {
			s.stop.replies = append(s.stop.replies, req)
		}
		return
	}
	if req != 0 {
		s.stop.replies = append(s.stop.replies, req)
	}
	for _, g := range s.gens {
		if !g.draining || (!graceful && g.stage == 0 && !g.cutting) {
			s.drain(g, graceful)
		}
	}
}

// StopReplies returns the control commands that wait for the master to
// have stopped; the executor answers them as it exits.
func (s *Supervisor) StopReplies() []RequestID {
	if s.stop == nil {
		return nil
	}
	return s.stop.replies
}

// reapGenerations forgets drained generations that have no child left.
func (s *Supervisor) reapGenerations() {
	keep := s.gens[:0]
	for _, g := range s.gens {
		alive := false
		for _, k := range s.kids {
			if k.gen == g {
				alive = true
				break
			}
		}
		if g.draining && !alive && g != s.current {
			s.log(slog.LevelInfo, "generation finished", "generation", g.Num)
			s.emit(GenerationDone{Gen: g.Num})
			continue
		}
		keep = append(keep, g)
	}
	s.gens = keep
}
