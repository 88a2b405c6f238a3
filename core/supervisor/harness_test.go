package supervisor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// harness drives a Supervisor as the master does, with a fake clock: it
// answers every Spawn with Spawned (pids from 100 up), as the executor
// does before it handles anything else, and keeps every action.
type harness struct {
	t    *testing.T
	s    *Supervisor
	now  time.Time
	next int
	pids map[ChildID]int
	ids  map[int]ChildID
	all  []Action
	// failSpawns makes the next spawns fail, as the executor says with
	// SpawnFailed.
	failSpawns int
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, s: New(DefaultTimings()), now: t0, next: 100, pids: map[ChildID]int{}, ids: map[int]ChildID{}}
}

// do hands ev to the supervisor and returns the actions, those of the
// Spawned answers included.
func (h *harness) do(ev Event) []Action {
	h.t.Helper()
	acts := h.s.Handle(h.now, ev)
	var out []Action
	for _, a := range acts {
		out = append(out, a)
		if sp, ok := a.(Spawn); ok && h.failSpawns > 0 {
			h.failSpawns--
			out = append(out, h.s.Handle(h.now, SpawnFailed{Child: sp.Child, Err: errBoom})...)
			continue
		}
		if sp, ok := a.(Spawn); ok {
			h.pids[sp.Child] = h.next
			h.ids[h.next] = sp.Child
			out = append(out, h.s.Handle(h.now, Spawned{Child: sp.Child, PID: h.next})...)
			h.next++
		}
	}
	h.all = append(h.all, out...)
	return out
}

// after moves the clock on by d and ticks.
func (h *harness) after(d time.Duration) []Action {
	h.t.Helper()
	h.now = h.now.Add(d)
	return h.do(Tick{})
}

// id is the ChildID of pid.
func (h *harness) id(pid int) ChildID {
	h.t.Helper()
	id, ok := h.ids[pid]
	if !ok {
		h.t.Fatalf("no child with pid %d", pid)
	}
	return id
}

func (h *harness) ready(pids ...int) []Action {
	var out []Action
	for _, p := range pids {
		out = append(out, h.do(ChildSaid{Child: h.id(p), Event: contract.EventReady})...)
	}
	return out
}

func (h *harness) say(pid int, ev contract.Event) []Action {
	return h.do(ChildSaid{Child: h.id(pid), Event: ev})
}

// exit ends pid; unasked says how (a crash) for the counters.
func (h *harness) exit(pid int) []Action {
	return h.do(ChildExited{Child: h.id(pid), Status: "exit status 1", Counter: scoreboard.ExitedCrashed})
}

// pidsOf are the pids of the children currently in generation g, by slot.
func (h *harness) pidsOf(g int) []int {
	var out []int
	for _, c := range h.s.Children() {
		if c.Gen == g {
			out = append(out, c.PID)
		}
	}
	return out
}

// startServing starts generation 1 with n children (worker-like limits:
// 16 slots) and makes them ready; it returns their pids.
func (h *harness) startServing(n int) []int {
	h.t.Helper()
	h.do(Started{Gen: GenSpec{Num: 1, StartServers: n, ServerLimit: 16, ThreadsPerChild: 25, DrainTimeout: 30 * time.Second, MPM: "worker"}})
	pids := h.pidsOf(1)
	if len(pids) != n {
		h.t.Fatalf("generation 1 has %v, want %d children", pids, n)
	}
	acts := h.ready(pids...)
	if !has(acts, Ready{}) {
		h.t.Fatalf("generation 1 ready, no Ready: %v", acts)
	}
	return pids
}

// spec is generation num with n start servers.
func spec(num, n int) GenSpec {
	return GenSpec{Num: num, StartServers: n, ServerLimit: 16, ThreadsPerChild: 25, DrainTimeout: 30 * time.Second, MPM: "worker"}
}

// restart runs a graceful (or hard) restart to generation num through a
// pass that succeeds, and returns the new children's pids.
func (h *harness) restart(num, n int, hard bool) []int {
	h.t.Helper()
	cmd := CmdGraceful
	if hard {
		cmd = CmdRestart
	}
	acts := h.do(Command{Req: RequestID(num), Cmd: cmd})
	if !has(acts, RunPass{Req: RequestID(num), Hard: hard}) {
		h.t.Fatalf("%s: no RunPass: %v", cmd, acts)
	}
	h.do(PassDone{Req: RequestID(num), Hard: hard, Gen: spec(num, n)})
	return h.pidsOf(num)
}

func has(acts []Action, want Action) bool {
	for _, a := range acts {
		if fmt.Sprint(a) == fmt.Sprint(want) {
			return true
		}
	}
	return false
}

// signals are the signals acts send, as "pid:signal".
func (h *harness) signals(acts []Action) []string {
	var out []string
	for _, a := range acts {
		if sg, ok := a.(Signal); ok {
			out = append(out, fmt.Sprintf("%d:%s", h.pids[sg.Child], sig(sg.Sig)))
		}
	}
	return out
}

func sig(s syscall.Signal) string {
	switch s {
	case contract.DrainSignal:
		return "drain"
	case contract.StopSignal:
		return "stop"
	case syscall.SIGKILL:
		return "kill"
	}
	return s.String()
}

// spawns are the (gen, slot) of the Spawns in acts.
func spawns(acts []Action) []string {
	var out []string
	for _, a := range acts {
		if sp, ok := a.(Spawn); ok {
			out = append(out, fmt.Sprintf("%d/%d", sp.Gen, sp.Slot))
		}
	}
	return out
}

// logs are the messages of the Log actions in acts.
func logs(acts []Action) []string {
	var out []string
	for _, a := range acts {
		if l, ok := a.(Log); ok {
			out = append(out, l.Msg)
		}
	}
	return out
}

func logAttr(acts []Action, msg, key string) any {
	for _, a := range acts {
		if l, ok := a.(Log); ok && l.Msg == msg {
			for i := 0; i+1 < len(l.Attrs); i += 2 {
				if l.Attrs[i] == key {
					return l.Attrs[i+1]
				}
			}
		}
	}
	return nil
}

func replies(acts []Action) []Reply {
	var out []Reply
	for _, a := range acts {
		if r, ok := a.(Reply); ok {
			out = append(out, r)
		}
	}
	return out
}

func counts(acts []Action) []string {
	var out []string
	for _, a := range acts {
		if c, ok := a.(Count); ok {
			if c.SelfRetire {
				out = append(out, "self-retire")
			} else {
				out = append(out, fmt.Sprintf("%d+%d", c.Counter, c.N))
			}
		}
	}
	return out
}

func hasLog(acts []Action, substr string) bool {
	return slices.ContainsFunc(logs(acts), func(m string) bool { return strings.Contains(m, substr) })
}

var errBoom = errors.New("boom")
