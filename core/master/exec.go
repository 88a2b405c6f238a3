package master

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/phasedhq/phased/core/control"
	"github.com/phasedhq/phased/core/logging"
	"github.com/phasedhq/phased/core/reaper"
	"github.com/phasedhq/phased/core/supervisor"
	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/sdk/hook"
)

// parseEvent reads a child's event line (internal/contract).
var parseEvent = contract.ParseEvent

// handle gives ev to the supervisor and carries out what it decides. The
// answers some actions have at once (Spawned for a Spawn, PassDone for a
// RunPass ...) are handed back before anything else happens.
func (m *Master) handle(ev supervisor.Event) {
	queue := []supervisor.Event{ev}
	for len(queue) > 0 {
		ev, queue = queue[0], queue[1:]
		for _, a := range m.sv.Handle(time.Now(), ev) {
			if fb := m.do(a); fb != nil {
				queue = append(queue, fb)
			}
		}
	}
}

// do carries out one action, and returns the supervisor's answer to it
// when there is one now.
func (m *Master) do(a supervisor.Action) supervisor.Event {
	switch a := a.(type) {
	case supervisor.Spawn:
		pid, err := m.spawn(m.gens[a.Gen], a.Slot, a.Child)
		if err != nil {
			return supervisor.SpawnFailed{Child: a.Child, Err: err}
		}
		return supervisor.Spawned{Child: a.Child, PID: pid}
	case supervisor.Signal:
		if p := m.procs[a.Child]; p != nil {
			syscall.Kill(p.pid, a.Sig)
		}
	case supervisor.Reply:
		m.answer(a)
	case supervisor.ReleaseListeners:
		m.lns.Close()
	case supervisor.Stopping:
		m.stopping = true
		for _, g := range m.gens {
			g.board.SetStopping()
		}
	case supervisor.Notify:
		m.notifyAction(a)
	case supervisor.Log:
		attrs := make([]any, len(a.Attrs))
		for i, v := range a.Attrs {
			if id, ok := v.(supervisor.ChildID); ok {
				v = 0
				if p := m.procs[id]; p != nil {
					v = p.pid
				}
			}
			attrs[i] = v
		}
		m.log.Log(context.Background(), a.Level, a.Msg, attrs...)
	case supervisor.Count:
		if a.SelfRetire {
			m.counters.CountSelfRetire()
		} else {
			m.counters.Add(a.Counter, a.N)
		}
	case supervisor.RunPass:
		return m.restartPass(a)
	case supervisor.Maintain:
		m.maintain(a)
	case supervisor.KillMPM:
		if g := m.gens[a.Gen]; g != nil {
			go g.plugin.Kill() // a wedged plugin takes up to 2 s to kill
		}
	case supervisor.RelaunchMPM:
		m.relaunch(a.Gen)
	case supervisor.CommitListeners:
		if g := m.gens[a.Gen]; g != nil {
			for _, l := range g.removed {
				l.Close()
			}
			g.removed, g.oldLns = nil, nil
		}
	case supervisor.Rollback:
		if g := m.gens[a.Gen]; g != nil {
			m.lns.Reset(g.oldLns)
			g.removed, g.oldLns = nil, nil
		}
		if back := m.gens[a.Back]; back != nil {
			m.cfg, m.plan = back.cfg, back.plan
		}
	case supervisor.GenerationDone:
		if g := m.gens[a.Gen]; g != nil {
			g.release()
			delete(m.gens, a.Gen)
		}
	case supervisor.Ready:
		m.ready(a.Err)
		m.serving = a.Err == nil
	case supervisor.TakeOver:
		if err := m.takeOver(); err != nil {
			return supervisor.TakeOverFailed{Err: err}
		}
		return supervisor.TookOver{}
	case supervisor.StartUpgrade:
		if err := m.startUpgrade(); err != nil {
			return supervisor.UpgradeReported{Err: err}
		}
	case supervisor.AbortUpgrade:
		if m.upgrade != nil {
			m.upgrade.Abort()
			m.upgrade = nil
		}
	case supervisor.HandOver:
		m.handOver()
	}
	return nil
}

// answer replies to a control command the supervisor finished.
func (m *Master) answer(r supervisor.Reply) {
	f := m.replies[r.Req]
	if f == nil {
		return
	}
	delete(m.replies, r.Req)
	f(control.Response{OK: r.OK, Message: r.Message, Error: r.Err})
}

// notifyAction tells systemd what the supervisor decided: MAINPID is this
// master, RELOADING=1 carries the monotonic clock.
func (m *Master) notifyAction(n supervisor.Notify) {
	states := make([]string, 0, len(n.States)+2)
	for _, s := range n.States {
		switch s {
		case "MAINPID":
			s = fmt.Sprintf("MAINPID=%d", os.Getpid())
		case "RELOADING=1":
			states = append(states, "MONOTONIC_USEC="+daemon.SdNotifyMonotonicUsec())
		}
		states = append(states, s)
	}
	if n.WithStatus {
		states = append(states, statusLine(m))
	}
	m.notify(states...)
}

// restartPass runs a restart's configuration pass and starts the
// generation it made; the supervisor hears how it went.
func (m *Master) restartPass(a supervisor.RunPass) supervisor.Event {
	fail := func(err error) supervisor.Event { return supervisor.PassDone{Req: a.Req, Hard: a.Hard, Err: err} }
	cfg := m.cfg
	if m.opts.Reload != nil {
		c, err := m.opts.Reload()
		if err != nil {
			return fail(fmt.Errorf("reading configuration: %w", err))
		}
		cfg = c
	}
	if cfg.PidFile != m.cfg.PidFile || cfg.ControlSocket != m.cfg.ControlSocket {
		return fail(errors.New("pid_file and control_socket cannot change on a restart; stop and start instead"))
	}
	var p *pass
	var err error
	m.beatWhile(func() { p, err = m.runPass(context.Background(), m.passNum+1, m.newestGen+1, cfg, m.log) })
	if err != nil {
		return fail(err)
	}
	m.commit(p)
	g := m.newGeneration(p)
	return supervisor.PassDone{Req: a.Req, Hard: a.Hard, Gen: g.spec()}
}

// childExited reaps a child: its slot is cleared, hook plugins hear of it,
// and the supervisor decides what follows.
func (m *Master) childExited(pid int, st *os.ProcessState) {
	id, ok := m.byPID[pid]
	if !ok {
		return
	}
	p := m.procs[id]
	delete(m.byPID, pid)
	delete(m.procs, id)
	how := describe(st)
	g := p.gen
	g.hooks.notify(hook.ChildEventRequest{Kind: hook.ChildExited, PID: pid, Slot: p.slot, Generation: g.num, Status: how}, m.log)
	last := g.lastRequest(p.slot)
	appPID := g.board.Proc(p.slot).AppPID()
	g.board.ClearProc(p.slot)
	if p.appDir != "" {
		os.RemoveAll(p.appDir)
		m.endAppLeftovers(appPID)
	}
	m.handle(supervisor.ChildExited{Child: id, Status: how, Counter: scoreboard.ExitCounter(st, contract.ExitChildInit), LastRequest: last,
		Reason: p.initErr})
}

// endAppLeftovers ends what is left of the app server of a child that has
// exited, by its process group (the app server leads one of its own). A
// child stops its app server, workers and all, before it exits; one that
// was killed cannot, and the kernel then kills only the app server itself
// (its parent-death signal): the workers that a php-cgi or a gunicorn
// forked would serve on, orphans, holding the dead child's socket. Only
// children that are phased's own binary (app types with an app server,
// appDir set) report an app pid.
func (m *Master) endAppLeftovers(appPID int) {
	if appPID == 0 {
		return
	}
	keep := make([]int, 0, len(m.byPID))
	for pid := range m.byPID {
		keep = append(keep, pid)
	}
	reaper.EndGroup(m.log, appPID, keep)
}

// describe says how a process ended.
func describe(st *os.ProcessState) string {
	if st == nil {
		return "unknown"
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		s := "killed by signal " + ws.Signal().String()
		if ws.CoreDump() {
			s += " (core dumped)"
		}
		return s
	}
	if st.ExitCode() == contract.ExitChildInit {
		return "exit status 3 (child-init failed)"
	}
	return fmt.Sprintf("exit status %d", st.ExitCode())
}

// logNotice logs at notice, which passes whatever the level.
func (m *Master) logNotice(msg string, attrs ...any) {
	m.log.Log(context.Background(), logging.LevelNotice, msg, attrs...)
}

// statusResponse is the control socket's answer to status.
func statusResponse(s Status) control.Response {
	b, err := jsonMarshal(s)
	if err != nil {
		return control.Response{Error: err.Error()}
	}
	return control.Response{OK: true, Data: b}
}
