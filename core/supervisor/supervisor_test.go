package supervisor

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/sdk/mpm"
)

func TestFirstStartServesWhenStartServersAreReady(t *testing.T) {
	h := newHarness(t)
	acts := h.do(Started{Gen: spec(1, 2)})
	if got := spawns(acts); !slices.Equal(got, []string{"1/0", "1/1"}) {
		t.Fatalf("spawns %v, want slots 0 and 1", got)
	}
	pids := h.pidsOf(1)
	if acts := h.ready(pids[0]); has(acts, Ready{}) {
		t.Fatal("ready with one of two start servers")
	}
	acts = h.ready(pids[1])
	if !has(acts, Ready{}) || !has(acts, Notify{States: []string{"READY=1", "MAINPID"}, WithStatus: true}) || !hasLog(acts, "resuming normal operations") {
		t.Fatalf("both ready: %v", acts)
	}
}

func TestFirstStartReadyBound(t *testing.T) {
	t.Run("one ready", func(t *testing.T) {
		h := newHarness(t)
		h.do(Started{Gen: spec(1, 2)})
		h.ready(h.pidsOf(1)[0])
		if acts := h.after(9 * time.Second); has(acts, Ready{}) {
			t.Fatal("served before the ready bound")
		}
		if acts := h.after(2 * time.Second); !has(acts, Ready{}) {
			t.Fatalf("one child ready past the bound, not serving: %v", acts)
		}
	})
	t.Run("app servers starting", func(t *testing.T) {
		// Children that start app servers have their start timeout too.
		h := newHarness(t)
		g := spec(1, 1)
		g.StartTimeout = 60 * time.Second
		h.do(Started{Gen: g})
		if acts := h.after(69 * time.Second); has(acts, Ready{Err: errString("generation 1 did not become ready within 1m10s")}) {
			t.Fatalf("gave up on app servers within their start timeout: %v", acts)
		}
		if acts := h.ready(h.pidsOf(1)[0]); !has(acts, Ready{}) {
			t.Fatalf("ready after 69s: %v", acts)
		}
		h = newHarness(t)
		h.do(Started{Gen: g})
		if acts := h.after(71 * time.Second); !has(acts, Ready{Err: errString("generation 1 did not become ready within 1m10s")}) {
			t.Fatalf("no child ready past the bound and the start timeout: %v", acts)
		}
	})
	t.Run("none ready", func(t *testing.T) {
		h := newHarness(t)
		h.do(Started{Gen: spec(1, 2)})
		acts := h.after(11 * time.Second)
		if !has(acts, Ready{Err: errString("generation 1 did not become ready within 10s")}) {
			t.Fatalf("no child ready past the bound: %v", acts)
		}
		if got := h.signals(acts); len(got) != 2 || !strings.HasSuffix(got[0], ":drain") {
			t.Fatalf("the failed start's children are not stopped: %v", got)
		}
		for _, p := range h.pidsOf(1) {
			h.exit(p)
		}
		if done, err := h.s.Done(); !done || err == nil {
			t.Fatalf("Done = %v, %v", done, err)
		}
	})
}

type errString string

func (e errString) Error() string { return string(e) }

func TestFirstStartCrashLoopFails(t *testing.T) {
	h := newHarness(t)
	h.do(Started{Gen: spec(1, 1)})
	h.exit(h.pidsOf(1)[0]) // 1st crash: replaced at once
	if len(h.pidsOf(1)) != 1 {
		t.Fatal("first crash not replaced at once")
	}
	h.exit(h.pidsOf(1)[0]) // 2nd: back-off
	h.after(300 * time.Millisecond)
	acts := h.exit(h.pidsOf(1)[0]) // 3rd: the start fails
	want := Ready{Err: errString("generation 1 did not become ready: its children exit status 1")}
	if !has(acts, want) {
		t.Fatalf("three crashes before ready: %v", acts)
	}
	if done, err := h.s.Done(); !done || err == nil || err.Error() != want.Err.Error() {
		t.Fatalf("Done = %v, %v", done, err)
	}
}

func TestFirstStartOfAnUpgradeTakesOver(t *testing.T) {
	h := newHarness(t)
	h.do(Started{Gen: spec(1, 1), Handover: true})
	acts := h.ready(h.pidsOf(1)...)
	if !has(acts, TakeOver{}) || has(acts, Ready{}) {
		t.Fatalf("ready: %v, want TakeOver and no Ready yet", acts)
	}
	if acts := h.do(TookOver{}); !has(acts, Ready{}) || !hasLog(acts, "resuming normal operations") {
		t.Fatalf("took over: %v", acts)
	}

	h = newHarness(t)
	h.do(Started{Gen: spec(1, 1), Handover: true})
	h.ready(h.pidsOf(1)...)
	acts = h.do(TakeOverFailed{Err: errBoom})
	if !has(acts, Ready{Err: errString("binary upgrade: boom")}) || len(h.signals(acts)) == 0 {
		t.Fatalf("take-over failed: %v", acts)
	}
}

func TestGracefulRestart(t *testing.T) {
	h := newHarness(t)
	old := h.startServing(2)
	acts := h.do(Command{Req: 7, Cmd: CmdGraceful})
	if !has(acts, Notify{States: []string{"RELOADING=1"}}) || !has(acts, RunPass{Req: 7}) {
		t.Fatalf("graceful: %v", acts)
	}
	acts = h.do(PassDone{Req: 7, Gen: spec(2, 2)})
	if got := spawns(acts); !slices.Equal(got, []string{"2/0", "2/1"}) {
		t.Fatalf("new generation spawns %v", got)
	}
	if got := h.signals(acts); len(got) > 0 {
		t.Fatalf("the old generation was signalled before the new one is ready: %v", got)
	}
	if g, _ := h.s.Current(); g.Num != 2 {
		t.Fatalf("current generation %d", g.Num)
	}
	fresh := h.pidsOf(2)
	if acts := h.ready(fresh[0]); len(h.signals(acts)) > 0 {
		t.Fatal("the old generation drains with one of two new children ready")
	}
	acts = h.ready(fresh[1])
	if got, want := h.signals(acts), []string{itoa(old[0]) + ":drain", itoa(old[1]) + ":drain"}; !slices.Equal(got, want) {
		t.Fatalf("signals %v, want %v", got, want)
	}
	if !has(acts, CommitListeners{Gen: 2}) || !slices.Contains(counts(acts), countOf(scoreboard.Restarts)) || !has(acts, KillMPM{Gen: 1}) {
		t.Fatalf("restart done: %v", acts)
	}
	// Announced (the reply -k graceful waits for) once the old children
	// accept no more: a client connecting after it reaches the new one.
	done := Reply{Req: 7, OK: true, Message: "generation 2 serving"}
	if has(acts, done) || has(h.say(old[0], contract.EventClosed), done) {
		t.Fatal("announced while an old child still accepts")
	}
	if !has(h.say(old[1], contract.EventClosed), done) {
		t.Fatal("not announced once the old children said they stopped accepting")
	}
	h.do(ChildExited{Child: h.id(old[0]), Status: "exit status 0", Counter: scoreboard.ExitedCrashed})
	acts = h.do(ChildExited{Child: h.id(old[1]), Status: "exit status 0", Counter: scoreboard.ExitedCrashed})
	if !has(acts, GenerationDone{Gen: 1}) || !slices.Equal(counts(acts), []string{countOf(scoreboard.ExitedNormally)}) {
		t.Fatalf("old generation gone: %v", acts)
	}
}

// TestRestartAnnouncedWithinCloseBound: an old child that never says it
// stopped accepting delays the announcement by CloseBound at most; one
// that exits counts as closed.
func TestRestartAnnouncedWithinCloseBound(t *testing.T) {
	h := newHarness(t)
	old := h.startServing(2)
	h.ready(h.restart(2, 1, false)...)
	done := Reply{Req: 2, OK: true, Message: "generation 2 serving"}
	if has(h.exit(old[0]), done) {
		t.Fatal("announced with an old child still accepting")
	}
	if has(h.after(DefaultTimings().CloseBound-time.Millisecond), done) {
		t.Fatal("announced before CloseBound")
	}
	if !has(h.after(2*time.Millisecond), done) {
		t.Fatal("not announced at CloseBound")
	}
	if !has(h.all, Log{Level: notice, Msg: "graceful restart done", Attrs: []any{"generation", 2, "children", 1}}) {
		t.Fatal("no \"graceful restart done\" log line")
	}
}

func countOf(c scoreboard.Counter) string { return Count{Counter: c, N: 1}.String() }

func (c Count) String() string {
	if c.SelfRetire {
		return "self-retire"
	}
	return itoa(int(c.Counter)) + "+" + itoa(int(c.N))
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestRestartRefusedWhileBusy(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(h *harness)
		want  string
	}{
		{"still starting", func(h *harness) { h.do(Started{Gen: spec(1, 1)}) }, "phased is still starting; try again when it serves"},
		{"restart in progress", func(h *harness) { h.startServing(1); h.restart(2, 1, false) }, "a restart to generation 2 is still in progress"},
		{"upgrade in progress", func(h *harness) { h.startServing(1); h.do(Command{Req: 3, Cmd: CmdUpgrade}) }, "a binary upgrade is in progress; the new master will take the restart"},
		{"stopping", func(h *harness) { h.startServing(1); h.do(Command{Cmd: CmdStop}) }, "phased is stopping"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tt.setup(h)
			acts := h.do(Command{Req: 99, Cmd: CmdGraceful})
			if has(acts, RunPass{Req: 99}) || !has(acts, Reply{Req: 99, Err: tt.want}) {
				t.Fatalf("graceful: %v, want the reply %q", acts, tt.want)
			}
		})
	}
}

// TestRestartFailureIsLoggedAndAnswered: a failed pass leaves the old
// generation serving, and says so in the error log whoever asked (a
// signal or -k graceful) and to whoever waits.
func TestRestartFailureIsLoggedAndAnswered(t *testing.T) {
	for _, req := range []RequestID{0, 5} {
		h := newHarness(t)
		h.startServing(1)
		h.do(Command{Req: req, Cmd: CmdGraceful})
		acts := h.do(PassDone{Req: req, Err: errBoom})
		if logAttr(acts, "graceful restart failed; the old generation keeps serving", "err") != "boom" {
			t.Errorf("req %d: no error log: %v", req, acts)
		}
		if r := replies(acts); req != 0 && (len(r) != 1 || r[0].Err != "boom; the old generation keeps serving") {
			t.Errorf("req %d: replies %v", req, r)
		}
		if !slices.Contains(counts(acts), countOf(scoreboard.RestartFailures)) || !has(acts, Notify{States: []string{"READY=1"}, WithStatus: true}) {
			t.Errorf("req %d: %v", req, acts)
		}
		if len(spawns(acts)) > 0 || len(h.signals(acts)) > 0 {
			t.Errorf("req %d: a failed pass touched children: %v", req, acts)
		}
	}
}

func TestRestartThatNeverServesRollsBack(t *testing.T) {
	t.Run("ready bound", func(t *testing.T) {
		h := newHarness(t)
		old := h.startServing(1)
		fresh := h.restart(2, 1, false)
		acts := h.after(11 * time.Second)
		if !has(acts, Rollback{Gen: 2, Back: 1}) || !has(acts, Reply{Req: 2, Err: "generation 2 did not become ready within 10s; the old generation keeps serving"}) {
			t.Fatalf("never ready: %v", acts)
		}
		if got := h.signals(acts); !slices.Equal(got, []string{itoa(fresh[0]) + ":drain"}) || slices.Contains(got, itoa(old[0])+":drain") {
			t.Fatalf("signals %v: the new generation drains, the old serves on", got)
		}
		if g, _ := h.s.Current(); g.Num != 1 {
			t.Fatalf("current generation %d after the rollback", g.Num)
		}
		// The failed generation is cut after the close bound.
		if got := h.signals(h.after(1100 * time.Millisecond)); !slices.Equal(got, []string{itoa(fresh[0]) + ":stop"}) {
			t.Fatalf("the failed generation is not cut: %v", got)
		}
	})
	t.Run("app servers starting", func(t *testing.T) {
		h := newHarness(t)
		h.startServing(1)
		h.do(Command{Req: 2, Cmd: CmdGraceful})
		g := spec(2, 1)
		g.StartTimeout = 30 * time.Second
		h.do(PassDone{Req: 2, Gen: g})
		if acts := h.after(39 * time.Second); has(acts, Rollback{Gen: 2, Back: 1}) {
			t.Fatalf("rolled back within the app servers' start timeout: %v", acts)
		}
		acts := h.after(2 * time.Second)
		if !has(acts, Rollback{Gen: 2, Back: 1}) || !has(acts, Reply{Req: 2, Err: "generation 2 did not become ready within 40s; the old generation keeps serving"}) {
			t.Fatalf("never ready past the bound and the start timeout: %v", acts)
		}
	})
	t.Run("crashes", func(t *testing.T) {
		h := newHarness(t)
		h.startServing(1)
		h.restart(2, 1, false)
		h.exit(h.pidsOf(2)[0])
		h.exit(h.pidsOf(2)[0])
		h.after(300 * time.Millisecond)
		acts := h.exit(h.pidsOf(2)[0])
		if !has(acts, Rollback{Gen: 2, Back: 1}) || !has(acts, Reply{Req: 2, Err: "generation 2 did not become ready: its children exit status 1; the old generation keeps serving"}) {
			t.Fatalf("three crashes: %v", acts)
		}
	})
	t.Run("child-init failures say why", func(t *testing.T) {
		h := newHarness(t)
		h.startServing(1)
		h.restart(2, 1, false)
		var acts []Action
		for i := range 3 {
			h.after(time.Duration(i) * 300 * time.Millisecond)
			acts = h.do(ChildExited{Child: h.id(h.pidsOf(2)[0]), Status: "exit status 3 (child-init failed)", Reason: "app.start_timeout: no answer"})
		}
		if !has(acts, Reply{Req: 2, Err: "generation 2 did not become ready: its children exit status 3 (child-init failed): app.start_timeout: no answer; the old generation keeps serving"}) ||
			logAttr(acts, "child exited unexpectedly; replacing it", "reason") != "app.start_timeout: no answer" {
			t.Fatalf("three child-init failures with a reason: %v", acts)
		}
	})
	t.Run("children that fail in different ways say each", func(t *testing.T) {
		h := newHarness(t)
		h.startServing(1)
		h.restart(2, 1, false)
		var acts []Action
		for i, why := range []string{"app.health_check: 500", "app.start_timeout: no answer", "app.health_check: 500"} {
			h.after(time.Duration(i) * 300 * time.Millisecond)
			acts = h.do(ChildExited{Child: h.id(h.pidsOf(2)[0]), Status: "exit status 3 (child-init failed)", Reason: why})
		}
		if !has(acts, Reply{Req: 2, Err: "generation 2 did not become ready: its children exit status 3 (child-init failed): app.health_check: 500; " +
			"exit status 3 (child-init failed): app.start_timeout: no answer; the old generation keeps serving"}) {
			t.Fatalf("two reasons: %v", acts)
		}
	})
}

// TestHardRestartCutsOnceAllStoppedAccepting: a hard restart has every old
// child stop accepting before any is cut, or cuts them all after the close
// bound.
func TestHardRestartCutsOnceAllStoppedAccepting(t *testing.T) {
	h := newHarness(t)
	old := h.startServing(2)
	h.do(Command{Req: 2, Cmd: CmdRestart})
	acts := h.do(PassDone{Req: 2, Hard: true, Gen: spec(2, 2)})
	if got := h.signals(acts); !slices.Equal(got, []string{itoa(old[0]) + ":drain", itoa(old[1]) + ":drain"}) {
		t.Fatalf("hard restart signals %v", got)
	}
	if got := h.signals(h.say(old[0], contract.EventClosed)); len(got) > 0 {
		t.Fatalf("cut with one child still accepting: %v", got)
	}
	if got := h.signals(h.say(old[1], contract.EventClosed)); !slices.Equal(got, []string{itoa(old[0]) + ":stop", itoa(old[1]) + ":stop"}) {
		t.Fatalf("all closed: %v", got)
	}

	h = newHarness(t)
	old = h.startServing(2)
	h.do(Command{Req: 2, Cmd: CmdRestart})
	h.do(PassDone{Req: 2, Hard: true, Gen: spec(2, 2)})
	h.say(old[0], contract.EventClosed)
	if got := h.signals(h.after(500 * time.Millisecond)); len(got) > 0 {
		t.Fatalf("cut before the close bound: %v", got)
	}
	acts = h.after(600 * time.Millisecond)
	if got := h.signals(acts); !slices.Equal(got, []string{itoa(old[0]) + ":stop", itoa(old[1]) + ":stop"}) || !hasLog(acts, "cutting anyway") {
		t.Fatalf("close bound passed: %v", acts)
	}
}

func TestDrainEscalates(t *testing.T) {
	h := newHarness(t)
	pid := h.startServing(1)[0]
	if got := h.signals(h.do(Command{Req: 4, Cmd: CmdGracefulStop})); !slices.Equal(got, []string{itoa(pid) + ":drain"}) {
		t.Fatalf("graceful stop: %v", got)
	}
	for _, step := range []struct {
		after time.Duration
		want  []string
	}{
		// The drain timeout (30s) is the child's own bound; the master's
		// comes DrainGrace later, so that the child cuts and counts first.
		{30*time.Second + 500*time.Millisecond, nil},
		{500 * time.Millisecond, []string{itoa(pid) + ":stop"}},
		{4 * time.Second, nil},
		{2 * time.Second, []string{itoa(pid) + ":kill"}},
		{10 * time.Second, nil},
	} {
		acts := h.after(step.after)
		if got := h.signals(acts); !slices.Equal(got, step.want) {
			t.Fatalf("after %s more: signals %v, want %v", step.after, got, step.want)
		}
		if len(step.want) > 0 && !hasLog(acts, "generation did not drain in time") {
			t.Fatalf("escalation not logged: %v", acts)
		}
	}
	if got := h.s.StopReplies(); !slices.Equal(got, []RequestID{4}) {
		t.Fatalf("stop replies %v", got)
	}
	h.exit(pid)
	if done, err := h.s.Done(); !done || err != nil {
		t.Fatalf("Done = %v, %v", done, err)
	}
}

// TestStopWaitsForAppServers: children that own app servers get their
// stop timeout to exit, on top of the stop-to-kill bound, once told to
// stop: on a graceful restart whose drain timed out, and on a stop.
func TestStopWaitsForAppServers(t *testing.T) {
	h := newHarness(t)
	old := h.startServing(1)[0]
	h.do(Command{Req: 2, Cmd: CmdGraceful})
	g := spec(2, 1)
	g.StopTimeout = 20 * time.Second
	h.do(PassDone{Req: 2, Gen: g})
	h.ready(h.pidsOf(2)...)
	for _, step := range []struct {
		after time.Duration
		want  []string
	}{
		{31 * time.Second, []string{itoa(old) + ":stop"}}, // generation 1: no app servers
		{6 * time.Second, []string{itoa(old) + ":kill"}},
	} {
		if got := h.signals(h.after(step.after)); !slices.Equal(got, step.want) {
			t.Fatalf("generation 1, after %s more: signals %v, want %v", step.after, got, step.want)
		}
	}
	h.exit(old)

	pid := h.pidsOf(2)[0]
	h.do(Command{Req: 3, Cmd: CmdStop})
	if got := h.signals(h.say(pid, contract.EventClosed)); !slices.Equal(got, []string{itoa(pid) + ":stop"}) {
		t.Fatalf("stop, closed: %v", got)
	}
	for _, step := range []struct {
		after time.Duration
		want  []string
	}{
		{24 * time.Second, nil}, // 5s and the app servers' 20s
		{2 * time.Second, []string{itoa(pid) + ":kill"}},
	} {
		if got := h.signals(h.after(step.after)); !slices.Equal(got, step.want) {
			t.Fatalf("generation 2, after %s more: signals %v, want %v", step.after, got, step.want)
		}
	}
}

func TestStopDuringGracefulStopHurries(t *testing.T) {
	h := newHarness(t)
	pid := h.startServing(1)[0]
	h.do(Command{Cmd: CmdGracefulStop})
	acts := h.do(Command{Req: 9, Cmd: CmdStop})
	if got := h.signals(acts); !slices.Equal(got, []string{itoa(pid) + ":drain"}) {
		t.Fatalf("stop during graceful stop: %v", got)
	}
	if got := h.signals(h.say(pid, contract.EventClosed)); !slices.Equal(got, []string{itoa(pid) + ":stop"}) {
		t.Fatalf("closed: %v", got)
	}
	if acts := h.do(Command{Req: 10, Cmd: CmdRecycle}); !has(acts, Reply{Req: 10, Err: "phased is stopping"}) {
		t.Fatalf("recycle while stopping: %v", acts)
	}
	h.do(Command{Req: 11, Cmd: CmdStop})
	if got := h.s.StopReplies(); !slices.Equal(got, []RequestID{9, 11}) {
		t.Fatalf("stop replies %v", got)
	}
}

// hasStopping reports whether acts tell the children the master stops.
func hasStopping(acts []Action) bool {
	return slices.ContainsFunc(acts, func(a Action) bool { _, ok := a.(Stopping); return ok })
}

// hasRelease reports whether acts let go of the master's listening sockets.
func hasRelease(acts []Action) bool {
	return slices.ContainsFunc(acts, func(a Action) bool { _, ok := a.(ReleaseListeners); return ok })
}

func e2eSorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// startDelayed starts generation 1 with n children and a drain delay.
func (h *harness) startDelayed(n int, delay time.Duration) []int {
	h.t.Helper()
	g := spec(1, n)
	g.DrainDelay = delay
	h.do(Started{Gen: g})
	pids := h.pidsOf(1)
	h.ready(pids...)
	return pids
}

// TestGracefulStopDrainDelay: with health.drain_delay, a graceful stop
// first says so to the children (readiness 503) and serves on as before:
// a crashed child is replaced, a child asking to retire gets its
// replacement first, restarts are refused, a second graceful stop waits
// with the first; only when the delay is over do the children drain.
func TestGracefulStopDrainDelay(t *testing.T) {
	h := newHarness(t)
	pids := h.startDelayed(2, 5*time.Second)
	acts := h.do(Command{Req: 1, Cmd: CmdGracefulStop})
	if !hasStopping(acts) || !has(acts, Notify{States: []string{"STOPPING=1"}}) || len(h.signals(acts)) > 0 || len(replies(acts)) > 0 || hasRelease(acts) {
		t.Fatalf("graceful stop with a drain delay: %v", acts)
	}
	if !hasLog(acts, "readiness answers 503") || logAttr(acts, "graceful stop: readiness answers 503; serving on until the drain delay is over", "drain_delay") != "5s" {
		t.Fatalf("not logged: %v", logs(acts))
	}
	if !h.s.Stopping() {
		t.Fatal("Stopping() false during the drain delay")
	}
	h.after(7 * time.Second / 2) // older than EarlyDeath aside, still inside the delay
	if acts := h.exit(pids[0]); !slices.Equal(spawns(acts), []string{"1/0"}) {
		t.Fatalf("a crash during the drain delay is not replaced: %v", acts)
	}
	if acts := h.say(pids[1], contract.EventRetireRequest); !slices.Equal(spawns(acts), []string{"1/2"}) {
		t.Fatalf("a retire request during the drain delay: %v", acts)
	}
	for _, cmd := range []string{CmdGraceful, CmdRecycle, CmdUpgrade} {
		if acts := h.do(Command{Req: 7, Cmd: cmd}); !has(acts, Reply{Req: 7, Err: "phased is stopping"}) {
			t.Fatalf("%s during the drain delay: %v", cmd, acts)
		}
	}
	if acts := h.do(Command{Req: 2, Cmd: CmdGracefulStop}); len(replies(acts)) > 0 || hasStopping(acts) {
		t.Fatalf("a second graceful stop: %v", acts)
	}
	if acts := h.after(time.Second); len(h.signals(acts)) > 0 {
		t.Fatalf("drained before the delay was over: %v", acts)
	}
	acts = h.after(600 * time.Millisecond)
	live := h.pidsOf(1)
	want := make([]string, 0, len(live))
	for _, p := range live {
		want = append(want, itoa(p)+":drain")
	}
	if got := h.signals(acts); !slices.Equal(e2eSorted(got), e2eSorted(want)) || !hasLog(acts, "drain delay over; draining") || !hasRelease(acts) {
		t.Fatalf("delay over: signals %v, want %v; %v", got, want, acts)
	}
	if has(acts, Notify{States: []string{"STOPPING=1"}}) {
		t.Fatalf("STOPPING=1 told twice: %v", acts)
	}
	if got := h.s.StopReplies(); !slices.Equal(got, []RequestID{1, 2}) {
		t.Fatalf("stop replies %v", got)
	}
}

// TestStopDuringDrainDelay: a stop during the drain delay stops now, and
// answers whoever waited for the graceful stop too.
func TestStopDuringDrainDelay(t *testing.T) {
	h := newHarness(t)
	pid := h.startDelayed(1, 5*time.Second)[0]
	h.do(Command{Req: 1, Cmd: CmdGracefulStop})
	acts := h.do(Command{Req: 2, Cmd: CmdStop})
	if got := h.signals(acts); !slices.Equal(got, []string{itoa(pid) + ":drain"}) || !hasLog(acts, "generation draining") {
		t.Fatalf("stop during the drain delay: %v", acts)
	}
	if got := h.signals(h.say(pid, contract.EventClosed)); !slices.Equal(got, []string{itoa(pid) + ":stop"}) {
		t.Fatalf("not cut: %v", got)
	}
	if got := h.s.StopReplies(); !slices.Equal(got, []RequestID{2, 1}) {
		t.Fatalf("stop replies %v", got)
	}
}

// TestStoppingWithoutDelay: every stop tells the children it is stopping
// (readiness 503), a graceful one without a delay and a hard one alike,
// and a first start that never served has no delay to wait.
func TestStoppingWithoutDelay(t *testing.T) {
	for _, cmd := range []string{CmdGracefulStop, CmdStop} {
		h := newHarness(t)
		pid := h.startServing(1)[0]
		acts := h.do(Command{Cmd: cmd})
		if !hasStopping(acts) || !hasRelease(acts) || !slices.Equal(h.signals(acts), []string{itoa(pid) + ":drain"}) {
			t.Fatalf("%s: %v", cmd, acts)
		}
	}
	h := newHarness(t)
	g := spec(1, 1)
	g.DrainDelay = time.Minute
	h.do(Started{Gen: g})
	pid := h.pidsOf(1)[0]
	if acts := h.do(Command{Cmd: CmdGracefulStop}); !slices.Equal(h.signals(acts), []string{itoa(pid) + ":drain"}) {
		t.Fatalf("graceful stop before the first generation served: %v", acts)
	}
}

// TestUpgradeKeepsReadiness: the old master of a binary upgrade drains at
// once and never says it is stopping: the new master serves the same
// sockets, so the instance stays ready, whatever the drain delay.
func TestUpgradeKeepsReadiness(t *testing.T) {
	h := newHarness(t)
	pid := h.startDelayed(1, 5*time.Second)[0]
	h.do(Command{Req: 1, Cmd: CmdUpgrade})
	acts := h.do(UpgradeReported{Started: true, PID: 999})
	if hasStopping(acts) || !slices.Equal(h.signals(acts), []string{itoa(pid) + ":drain"}) {
		t.Fatalf("upgraded: %v", acts)
	}
}

func TestCrashesAreReplacedWithBackoff(t *testing.T) {
	h := newHarness(t)
	h.startServing(1)
	h.after(6 * time.Second) // older than EarlyDeath, and ready
	acts := h.exit(h.pidsOf(1)[0])
	if got := spawns(acts); !slices.Equal(got, []string{"1/0"}) || !hasLog(acts, "child exited unexpectedly; replacing it") ||
		!slices.Contains(counts(acts), countOf(scoreboard.ExitedCrashed)) {
		t.Fatalf("a crash of a settled child: %v", acts)
	}
	// Young deaths: the first replaced at once, then 250 ms, 500 ms, 1 s ...
	h.exit(h.pidsOf(1)[0])
	if len(h.pidsOf(1)) != 1 {
		t.Fatal("first young death not replaced at once")
	}
	for i, d := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second} {
		acts := h.exit(h.pidsOf(1)[0])
		if len(spawns(acts)) > 0 || logAttr(acts, "children keep dying early; backing off", "retry_in") != d.String() {
			t.Fatalf("young death %d: %v, want a back-off of %s", i+2, acts, d)
		}
		if got := spawns(h.after(d - time.Millisecond)); len(got) > 0 {
			t.Fatalf("respawned before the back-off of %s", d)
		}
		if got := spawns(h.after(time.Millisecond)); !slices.Equal(got, []string{"1/0"}) {
			t.Fatalf("not respawned after the back-off of %s: %v", d, got)
		}
	}
	if g, _ := h.s.Current(); g.Crashes != 5 || g.LastExit != "exit status 1" {
		t.Fatalf("generation %+v", g)
	}
}

func TestBackoffIsBounded(t *testing.T) {
	h := newHarness(t)
	h.do(Started{Gen: spec(1, 0)})
	g := h.s.current
	for i := range 20 {
		h.s.crashed(g, "x")
		if d := g.nextSpawn.Sub(h.now); d > h.s.t.MaxBackoff || (i > 10 && d != h.s.t.MaxBackoff) {
			t.Fatalf("crash %d: back-off %s", i+1, d)
		}
	}
}

func TestSpawnFailureBacksOff(t *testing.T) {
	h := newHarness(t)
	h.startServing(1)
	h.failSpawns = 2
	acts := h.exit(h.pidsOf(1)[0])
	if !hasLog(acts, "cannot start a child") || len(h.pidsOf(1)) != 0 {
		t.Fatalf("spawn failed: %v", acts)
	}
	acts = h.after(250 * time.Millisecond) // the second failure, then a back-off
	if !hasLog(acts, "children keep dying early; backing off") {
		t.Fatalf("second failure: %v", acts)
	}
	if got := spawns(h.after(400 * time.Millisecond)); len(got) > 0 {
		t.Fatalf("respawned during the back-off: %v", got)
	}
	if got := spawns(h.after(100 * time.Millisecond)); !slices.Equal(got, []string{"1/0"}) || len(h.pidsOf(1)) != 1 {
		t.Fatalf("no respawn after the back-off: %v", got)
	}
}

// TestRetireRequestReplacementFirst: a lone child that asks to retire (an
// operator's SIGUSR1 or SIGTERM) keeps accepting until its replacement is
// ready.
func TestRetireRequestReplacementFirst(t *testing.T) {
	h := newHarness(t)
	pid := h.startServing(1)[0]
	acts := h.say(pid, contract.EventRetireRequest)
	if got := spawns(acts); !slices.Equal(got, []string{"1/1"}) || len(h.signals(acts)) > 0 {
		t.Fatalf("retire request: %v", acts)
	}
	repl := h.pidsOf(1)[1]
	if got := logAttr(acts, "child asked to retire; starting its replacement first", "replacement"); got != h.id(repl) {
		t.Fatalf("replacement attr %v, want the new child", got)
	}
	if !slices.Contains(counts(acts), "self-retire") {
		t.Fatalf("not counted: %v", counts(acts))
	}
	acts = h.ready(repl)
	if got := h.signals(acts); !slices.Equal(got, []string{itoa(pid) + ":drain"}) || logAttr(acts, "replacement ready; the retiring child drains", "replacement") != repl {
		t.Fatalf("replacement ready: %v", acts)
	}
	if acts := h.say(pid, contract.EventRetireRequest); len(acts) > 0 {
		t.Fatalf("a second request does anything: %v", acts)
	}
}

func TestRetireRequestWithOthersAcceptingDrainsNow(t *testing.T) {
	h := newHarness(t)
	pids := h.startServing(2)
	acts := h.say(pids[0], contract.EventRetireMaxConnections)
	if got := spawns(acts); !slices.Equal(got, []string{"1/2"}) {
		t.Fatalf("spawns %v", got)
	}
	if got := h.signals(acts); !slices.Equal(got, []string{itoa(pids[0]) + ":drain"}) {
		t.Fatalf("signals %v: with another child accepting it drains at once", got)
	}
	if !slices.Contains(counts(acts), countOf(scoreboard.RecycledMaxConnections)) {
		t.Fatalf("counts %v", counts(acts))
	}
}

func TestHandoffBounds(t *testing.T) {
	t.Run("replacement never ready", func(t *testing.T) {
		h := newHarness(t)
		pid := h.startServing(1)[0]
		h.say(pid, contract.EventRetireRequest)
		if got := h.signals(h.after(9 * time.Second)); len(got) > 0 {
			t.Fatalf("drained before the bound: %v", got)
		}
		acts := h.after(2 * time.Second)
		if got := h.signals(acts); !slices.Equal(got, []string{itoa(pid) + ":drain"}) || !hasLog(acts, "the replacement is not ready in time") {
			t.Fatalf("bound passed: %v", acts)
		}
	})
	t.Run("replacement died", func(t *testing.T) {
		h := newHarness(t)
		pid := h.startServing(1)[0]
		h.say(pid, contract.EventRetireRequest)
		repl := h.pidsOf(1)[1]
		acts := h.exit(repl)
		if got := h.signals(acts); !slices.Equal(got, []string{itoa(pid) + ":drain"}) ||
			logAttr(acts, "the replacement exited before it was ready; the child drains anyway", "replacement") != repl {
			t.Fatalf("replacement died: %v", acts)
		}
	})
	t.Run("back-off holds the replacement", func(t *testing.T) {
		h := newHarness(t)
		pids := h.startServing(2)
		h.s.current.nextSpawn = h.now.Add(time.Minute)
		acts := h.say(pids[0], contract.EventRetireRequest)
		if len(spawns(acts)) > 0 || !slices.Equal(h.signals(acts), []string{itoa(pids[0]) + ":drain"}) {
			t.Fatalf("during a back-off: %v", acts)
		}
		if got := spawns(h.after(61 * time.Second)); !slices.Equal(got, []string{"1/2"}) {
			t.Fatalf("the replacement after the back-off: %v", got)
		}
	})
}

func TestChildRetiringOnItsOwnIsReplaced(t *testing.T) {
	h := newHarness(t)
	pid := h.startServing(1)[0]
	acts := h.say(pid, contract.EventRetiring)
	if got := spawns(acts); !slices.Equal(got, []string{"1/1"}) || len(h.signals(acts)) > 0 || !slices.Contains(counts(acts), "self-retire") {
		t.Fatalf("retiring: %v", acts)
	}
	if acts := h.do(ChildExited{Child: h.id(pid), Status: "exit status 0", Counter: scoreboard.ExitedCrashed}); hasLog(acts, "unexpectedly") {
		t.Fatalf("a retiring child's exit counts as a crash: %v", acts)
	}
}

func TestRecycleOneAtATime(t *testing.T) {
	h := newHarness(t)
	pids := h.startServing(2)
	acts := h.do(Command{Req: 3, Cmd: CmdRecycle})
	if got := spawns(acts); !slices.Equal(got, []string{"1/2"}) || len(h.signals(acts)) > 0 {
		t.Fatalf("recycle: %v, want one replacement and no drain yet", acts)
	}
	if acts := h.do(Command{Req: 4, Cmd: CmdRecycle}); !has(acts, Reply{Req: 4, Err: "a recycle is already in progress"}) {
		t.Fatalf("second recycle: %v", acts)
	}
	acts = h.ready(h.pidsOf(1)[2])
	if got := h.signals(acts); !slices.Equal(got, []string{itoa(pids[0]) + ":drain"}) {
		t.Fatalf("first replacement ready: %v", got)
	}
	if got := spawns(acts); !slices.Equal(got, []string{"1/3"}) {
		t.Fatalf("the second child's replacement: %v", got)
	}
	acts = h.ready(h.pidsOf(1)[3])
	if got := h.signals(acts); !slices.Equal(got, []string{itoa(pids[1]) + ":drain"}) ||
		!has(acts, Reply{Req: 3, OK: true, Message: "2 children of generation 1 recycled"}) {
		t.Fatalf("second replacement ready: %v", acts)
	}
	if c := counts(h.all); len(slices.DeleteFunc(slices.Clone(c), func(s string) bool { return s != countOf(scoreboard.RecycledCommand) })) != 2 {
		t.Fatalf("counts %v", c)
	}
}

func TestRecycleInterruptedByRestart(t *testing.T) {
	h := newHarness(t)
	h.startServing(2)
	h.do(Command{Req: 3, Cmd: CmdRecycle})
	if acts := h.do(Command{Req: 5, Cmd: CmdUpgrade}); !has(acts, Reply{Req: 5, Err: "a restart or recycle is in progress; try again when it is done"}) {
		t.Fatalf("upgrade during recycle: %v", acts)
	}
	h.restart(2, 1, true)
	if !has(h.all, Reply{Req: 3, Err: "recycle interrupted: the generation is being replaced or phased is stopping"}) {
		t.Fatalf("recycle not interrupted: %v", replies(h.all))
	}
}

// maintainTick runs the clock to the next maintenance tick and returns its
// Maintain actions.
func (h *harness) maintainTick() []Maintain {
	var out []Maintain
	for _, a := range h.after(time.Second) {
		if m, ok := a.(Maintain); ok {
			out = append(out, m)
		}
	}
	return out
}

func TestMaintenanceTicks(t *testing.T) {
	h := newHarness(t)
	h.startServing(1)
	if got := h.maintainTick(); !slices.Equal(got, []Maintain{{Gen: 1, Ticks: 0}}) {
		t.Fatalf("tick: %v", got)
	}
	if got := h.maintainTick(); len(got) > 0 {
		t.Fatalf("asked again while the first call is in flight: %v", got)
	}
	acts := h.do(Maintained{Gen: 1, Resp: &mpm.MaintainResponse{Actions: []mpm.Action{{Kind: mpm.Spawn, Count: 2}}, ReachedMax: true,
		Logs: []mpm.Log{{Level: mpm.LevelNotice, Message: "spawning", Attrs: map[string]string{"b": "2", "a": "1"}}}}})
	if got := spawns(acts); !slices.Equal(got, []string{"1/1", "1/2"}) {
		t.Fatalf("spawn 2: %v", got)
	}
	if !slices.Contains(counts(acts), countOf(scoreboard.MaxChildrenReached)) {
		t.Fatalf("reached max not counted: %v", counts(acts))
	}
	want := Log{Level: notice, Msg: "spawning", Attrs: []any{"generation", 1, "mpm", "worker", "a", "1", "b", "2"}}
	if !has(acts, want) {
		t.Fatalf("the MPM's log: %v", acts)
	}
	if got := h.maintainTick(); !slices.Equal(got, []Maintain{{Gen: 1, Ticks: 1}}) {
		t.Fatalf("next tick: %v", got)
	}
}

// TestUrgentTicks: while connections wait in an accept queue (a prefork
// or worker child's: Tick.Queued), the MPM's maintenance runs a beat
// (UrgentTick) after the last instead of a second: keep-alive clients
// beyond the children waited up to a second more for the tick that spawned
// theirs. Without a queue, or sooner than UrgentTick, it waits as before.
func TestUrgentTicks(t *testing.T) {
	h := newHarness(t)
	h.startServing(1)
	maintains := func(acts []Action) (n int) {
		for _, a := range acts {
			if _, ok := a.(Maintain); ok {
				n++
			}
		}
		return n
	}
	queued := func(d time.Duration) int {
		h.now = h.now.Add(d)
		return maintains(h.do(Tick{Queued: true}))
	}
	if got := maintains(h.after(time.Second)); got != 1 {
		t.Fatalf("first tick: %d Maintain calls", got)
	}
	h.do(Maintained{Gen: 1, Resp: &mpm.MaintainResponse{}})
	if got := queued(100 * time.Millisecond); got != 0 {
		t.Fatalf("queued, 100 ms after the last tick: %d Maintain calls", got)
	}
	if got := maintains(h.after(150 * time.Millisecond)); got != 0 {
		t.Fatalf("nothing queued, 250 ms after the last tick: %d Maintain calls", got)
	}
	if got := queued(0); got != 1 {
		t.Fatalf("queued, 250 ms after the last tick: %d Maintain calls", got)
	}
	h.do(Maintained{Gen: 1, Resp: &mpm.MaintainResponse{}})
	if got := queued(250 * time.Millisecond); got != 1 {
		t.Fatalf("still queued a beat later: %d Maintain calls", got)
	}
	h.do(Maintained{Gen: 1, Resp: &mpm.MaintainResponse{}})
	if got := maintains(h.after(750 * time.Millisecond)); got != 0 {
		t.Fatalf("nothing queued, 750 ms after the last tick: %d Maintain calls", got)
	}
	if got := maintains(h.after(250 * time.Millisecond)); got != 1 {
		t.Fatalf("nothing queued, a second after the last tick: %d Maintain calls", got)
	}
}

func TestMPMRetireWaitsForItsReplacement(t *testing.T) {
	h := newHarness(t)
	pid := h.startServing(1)[0]
	h.maintainTick()
	acts := h.do(Maintained{Gen: 1, Resp: &mpm.MaintainResponse{Actions: []mpm.Action{
		{Kind: mpm.Spawn, Count: 1, Reason: scoreboard.ReasonMemory}, {Kind: mpm.Retire, Slot: 0, Reason: scoreboard.ReasonMemory}}}})
	if got := spawns(acts); !slices.Equal(got, []string{"1/1"}) || len(h.signals(acts)) > 0 {
		t.Fatalf("memory retire: %v", acts)
	}
	if !slices.Contains(counts(acts), countOf(scoreboard.RecycledMemory)) {
		t.Fatalf("counts %v", counts(acts))
	}
	if got := h.signals(h.ready(h.pidsOf(1)[1])); !slices.Equal(got, []string{itoa(pid) + ":drain"}) {
		t.Fatalf("replacement ready: %v", got)
	}
}

// TestMPMDroppedRetireDropsItsSpawn: when the MPM retires a child that
// already asked to retire in the same tick, the retire is dropped, and so
// is the replacement it paired with it: no extra child.
func TestMPMDroppedRetireDropsItsSpawn(t *testing.T) {
	h := newHarness(t)
	pids := h.startServing(2)
	h.maintainTick()
	h.say(pids[0], contract.EventRetireMaxConnections) // its replacement: slot 2
	acts := h.do(Maintained{Gen: 1, Resp: &mpm.MaintainResponse{Actions: []mpm.Action{
		{Kind: mpm.Spawn, Count: 1, Reason: scoreboard.ReasonMemory}, {Kind: mpm.Retire, Slot: 0, Reason: scoreboard.ReasonMemory},
		{Kind: mpm.Spawn, Count: 1, Reason: "min_spare"}}}})
	if got := spawns(acts); !slices.Equal(got, []string{"1/3"}) {
		t.Fatalf("spawns %v, want only the spare child (slot 3), not the dropped retire's replacement", got)
	}
	if !hasLog(acts, "MPM retire dropped") || slices.Contains(counts(acts), countOf(scoreboard.RecycledMemory)) {
		t.Fatalf("dropped retire: %v", acts)
	}
}

func TestMPMKillsAChild(t *testing.T) {
	h := newHarness(t)
	pid := h.startServing(1)[0]
	h.maintainTick()
	acts := h.do(Maintained{Gen: 1, Resp: &mpm.MaintainResponse{Actions: []mpm.Action{{Kind: mpm.Kill, Slot: 0, Reason: "hung"}}}})
	if got := h.signals(acts); !slices.Equal(got, []string{itoa(pid) + ":kill"}) {
		t.Fatalf("kill: %v", acts)
	}
	if acts := h.do(ChildExited{Child: h.id(pid), Status: "killed by signal killed", Counter: scoreboard.ExitedSignal}); hasLog(acts, "unexpectedly") {
		t.Fatalf("a killed child counts as a crash: %v", acts)
	}
}

func TestMPMFailuresRelaunchThePlugin(t *testing.T) {
	h := newHarness(t)
	h.startServing(1)
	for i := 1; i <= 3; i++ {
		if got := h.maintainTick(); len(got) != 1 {
			t.Fatalf("tick %d: %v", i, got)
		}
		acts := h.do(Maintained{Gen: 1, Err: errBoom})
		if logAttr(acts, "MPM maintenance failed; children keep serving", "failures") != i {
			t.Fatalf("failure %d: %v", i, acts)
		}
		if killed := has(acts, KillMPM{Gen: 1}); killed != (i == 3) {
			t.Fatalf("failure %d: KillMPM %v", i, killed)
		}
	}
	if got := h.maintainTick(); len(got) > 0 {
		t.Fatalf("the killed plugin is asked: %v", got)
	}
	h.do(MPMExited{Gen: 1})
	acts := h.after(time.Second)
	if !has(acts, RelaunchMPM{Gen: 1}) {
		t.Fatalf("not relaunched: %v", acts)
	}
	if acts := h.after(time.Second); has(acts, RelaunchMPM{Gen: 1}) {
		t.Fatal("relaunched twice at once")
	}
	acts = h.do(Relaunched{Gen: 1, Plugin: "mpm worker", PluginPID: 55, ServerLimit: 16, ThreadsPerChild: 25})
	if logAttr(acts, "MPM plugin relaunched", "pid") != 55 {
		t.Fatalf("relaunched: %v", acts)
	}
	if got := h.maintainTick(); !slices.Equal(got, []Maintain{{Gen: 1, Epoch: 1, Ticks: 3}}) {
		t.Fatalf("after the relaunch: %v", got)
	}
	// A late answer of the old plugin changes nothing.
	if acts := h.do(Maintained{Gen: 1, Epoch: 0, Resp: &mpm.MaintainResponse{Actions: []mpm.Action{{Kind: mpm.Spawn, Count: 1}}}}); len(spawns(acts)) > 0 {
		t.Fatalf("a stale answer was carried out: %v", acts)
	}
}

func TestMPMRelaunchBacksOff(t *testing.T) {
	h := newHarness(t)
	h.startServing(1)
	h.do(MPMExited{Gen: 1})
	acts := h.after(time.Second)
	if !hasLog(acts, "MPM plugin exited; children keep serving, relaunching it") || !has(acts, RelaunchMPM{Gen: 1}) {
		t.Fatalf("exited: %v", acts)
	}
	acts = h.do(Relaunched{Gen: 1, Err: errBoom})
	if logAttr(acts, "MPM plugin relaunch failed; backing off", "retry_in") != "500ms" {
		t.Fatalf("failed relaunch: %v", acts)
	}
	h.s.lastTick = time.Time{} // the next tick is a maintenance tick
	if acts := h.after(400 * time.Millisecond); has(acts, RelaunchMPM{Gen: 1}) {
		t.Fatal("relaunched during the back-off")
	}
	h.s.lastTick = time.Time{}
	if acts := h.after(200 * time.Millisecond); !has(acts, RelaunchMPM{Gen: 1}) {
		t.Fatalf("not relaunched after the back-off: %v", acts)
	}
}

func TestUpgrade(t *testing.T) {
	t.Run("serves", func(t *testing.T) {
		h := newHarness(t)
		pid := h.startServing(1)[0]
		if acts := h.do(Command{Req: 1, Cmd: CmdUpgrade}); !has(acts, StartUpgrade{}) {
			t.Fatalf("upgrade: %v", acts)
		}
		if acts := h.do(Command{Req: 2, Cmd: CmdUpgrade}); !has(acts, Reply{Req: 2, Err: "a binary upgrade is already in progress"}) {
			t.Fatalf("second upgrade: %v", acts)
		}
		acts := h.do(UpgradeReported{Started: true, PID: 999})
		if !has(acts, Reply{Req: 1, OK: true, Message: "new master (pid 999) serving"}) || !has(acts, HandOver{}) ||
			!slices.Equal(h.signals(acts), []string{itoa(pid) + ":drain"}) || has(acts, Notify{States: []string{"STOPPING=1"}}) || !h.s.Upgraded() {
			t.Fatalf("upgraded: %v", acts)
		}
	})
	t.Run("new master fails", func(t *testing.T) {
		h := newHarness(t)
		h.startServing(1)
		h.do(Command{Req: 1, Cmd: CmdUpgrade})
		acts := h.do(UpgradeReported{Started: true, Err: errBoom})
		if !has(acts, AbortUpgrade{}) || !has(acts, Reply{Req: 1, Err: "binary upgrade failed: boom; the old master keeps serving"}) || len(h.signals(acts)) > 0 {
			t.Fatalf("failed: %v", acts)
		}
		if acts := h.do(Command{Req: 3, Cmd: CmdGraceful}); !has(acts, RunPass{Req: 3}) {
			t.Fatalf("a restart after a failed upgrade: %v", acts)
		}
	})
	t.Run("cannot start", func(t *testing.T) {
		h := newHarness(t)
		h.startServing(1)
		h.do(Command{Req: 1, Cmd: CmdUpgrade})
		acts := h.do(UpgradeReported{Err: errBoom})
		if has(acts, AbortUpgrade{}) || !has(acts, Reply{Req: 1, Err: "binary upgrade: boom; this master keeps serving"}) {
			t.Fatalf("not started: %v", acts)
		}
	})
}

func TestUnknownCommand(t *testing.T) {
	h := newHarness(t)
	h.startServing(1)
	if acts := h.do(Command{Req: 1, Cmd: "dance"}); !has(acts, Reply{Req: 1, Err: `unknown command "dance"`}) {
		t.Fatalf("%v", acts)
	}
}

func TestStaleEventsAreIgnored(t *testing.T) {
	h := newHarness(t)
	h.startServing(1)
	for _, ev := range []Event{ChildSaid{Child: 99, Event: contract.EventReady}, ChildExited{Child: 99}, Spawned{Child: 99, PID: 1},
		SpawnFailed{Child: 99, Err: errBoom}, Maintained{Gen: 42}, MPMExited{Gen: 42}, UpgradeReported{}, TookOver{}} {
		if acts := h.do(ev); len(acts) > 0 {
			t.Errorf("%T for nobody: %v", ev, acts)
		}
	}
}

// TestMPMSpawnsWaitForTheCrashBackoff: while a generation's crash back-off
// holds new children back, the children its MPM asks for wait too, and so
// do the retires they would replace (a kill does not); after it, they are
// started. The MPM's spare rules, seeing every new child die at
// child-init, asked for more at every tick: with a queue no child
// accepted, four times a second, hammering what the children failed on.
func TestMPMSpawnsWaitForTheCrashBackoff(t *testing.T) {
	h := newHarness(t)
	pids := h.startServing(2)
	h.exit(pids[0]) // a young death: replaced at once
	young := h.pidsOf(1)
	var fresh int
	for _, p := range young {
		if p != pids[1] {
			fresh = p
		}
	}
	if acts := h.exit(fresh); !hasLog(acts, "children keep dying early; backing off") {
		t.Fatalf("second young death: %v", acts)
	}
	acts := h.do(Maintained{Gen: 1, Resp: &mpm.MaintainResponse{Actions: []mpm.Action{
		{Kind: mpm.Spawn, Count: 1, Reason: scoreboard.ReasonMemory}, {Kind: mpm.Retire, Slot: 1, Reason: scoreboard.ReasonMemory},
		{Kind: mpm.Spawn, Count: 2, Reason: "min_spare"}}}})
	if got := spawns(acts); len(got) > 0 {
		t.Fatalf("spawned during the back-off: %v", got)
	}
	if len(h.signals(acts)) > 0 || slices.Contains(counts(acts), countOf(scoreboard.RecycledMemory)) {
		t.Fatalf("a replacement retire went ahead without its replacement: %v", acts)
	}
	acts = h.do(Maintained{Gen: 1, Resp: &mpm.MaintainResponse{Actions: []mpm.Action{{Kind: mpm.Kill, Slot: 1, Reason: "hung"}}}})
	if got := h.signals(acts); !slices.Equal(got, []string{itoa(pids[1]) + ":kill"}) {
		t.Fatalf("a kill during the back-off: %v", acts)
	}
	if got := spawns(h.after(250 * time.Millisecond)); !slices.Equal(got, []string{"1/0"}) {
		t.Fatalf("after the back-off, the crashed child's replacement: %v", got)
	}
	acts = h.do(Maintained{Gen: 1, Resp: &mpm.MaintainResponse{Actions: []mpm.Action{{Kind: mpm.Spawn, Count: 1, Reason: "min_spare"}}}})
	if got := spawns(acts); len(got) != 1 {
		t.Fatalf("the MPM's spawn after the back-off: %v", got)
	}
}
