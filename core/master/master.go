package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/core/control"
	"github.com/phasedhq/phased/core/listen"
	"github.com/phasedhq/phased/core/logging"
	"github.com/phasedhq/phased/core/pidfile"
	"github.com/phasedhq/phased/core/privdrop"
	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/phases"
	"github.com/phasedhq/phased/plugins/host"
	"github.com/phasedhq/phased/sdk/hook"
	"github.com/phasedhq/phased/sdk/mpm"
)

// Timings of the supervisor.
const (
	tick           = time.Second      // maintenance interval, as Apache's
	readyBound     = 10 * time.Second // how long a new generation may take to report ready
	stopKillBound  = 5 * time.Second  // between "stop now" (SIGINT) and SIGKILL
	closeBound     = time.Second      // how long a hard stop waits for children to stop accepting
	earlyDeath     = 5 * time.Second  // a child that dies younger than this counts as a crash
	maxBackoff     = 30 * time.Second
	firstBackoff   = 250 * time.Millisecond
	crashesToAbort = 3 // new-generation crashes before any is ready that abort a restart
)

// Options configures Run.
type Options struct {
	// Config is the configuration of the first generation. Required.
	Config *config.Config
	// Reload reads the configuration again for a restart. nil means restarts
	// reuse Config.
	Reload func() (*config.Config, error)
	// Executable is the binary children run with ChildArg; "" means this
	// process's own executable.
	Executable string
	// Stderr receives the error log when error_log.path is "stderr"; nil
	// means os.Stderr.
	Stderr *os.File
	// Ready, when set, is called once: with nil when the first generation
	// serves, or with the start error.
	Ready func(error)
	// Args are the command-line arguments the master was started with,
	// for the binary upgrade to start the new binary the same way.
	Args []string
	// Inherited, when set, are the listening sockets an upgrading master
	// handed over; the master binds no address it inherits.
	Inherited []*listen.Listener
	// Handover, when set (a binary upgrade), is called once the first
	// generation serves: it tells the old master and returns when the old
	// master has let go of the pid file and the control socket.
	Handover func() error
	// Activated, when set, are sockets systemd passed (socket activation,
	// LISTEN_FDS): they replace the listen key for the master's whole life.
	Activated []*listen.Listener
	// Predecessor, when set (a binary upgrade), is what the old master
	// handed over besides its sockets.
	Predecessor *Predecessor
}

// Master is a running control process.
type Master struct {
	opts    Options
	cfg     *config.Config
	exe     string
	log     *slog.Logger
	errlog  *logging.Log
	access  *os.File
	pid     *pidfile.File
	ctl     *control.Server
	lns     listen.Set
	rundir  string
	events  chan event
	gens    []*generation
	current *generation
	kids    map[int]*kid
	pending *restart
	stop    *stopping
	started time.Time
	plan    *phases.Plan
	passNum int
	// firstGen is the first generation's number: 1, or the one after the
	// old master's in a binary upgrade.
	firstGen int
	plugdir  string     // where plugins make their sockets; emptied at start
	logSw    *logSwitch // the error log plugins write to, whichever it is now
	recycle  *recycling // a rolling restart in progress
	// counters are the master's running totals, shared with children for
	// /metrics.
	counters *scoreboard.Counters
	upgrade  *upgrading // a binary upgrade in progress
	// upgraded reports whether a new master took over: this one drains
	// and exits without the shutdown phase.
	upgraded bool
}

type generation struct {
	num     int
	started time.Time
	pass    int
	cfg     *config.Config
	cfgPath string
	plan    *phases.Plan
	who     *privdrop.Identity
	launch  *launcher
	hooks   *hookPlugins // hook plugins of the pass that made the generation
	plugin  *host.Plugin // the MPM
	policy  mpm.MPM
	limits  *mpm.ConfigureResponse
	board   *scoreboard.Board
	mutex   string // accept mutex lock files' prefix; "" = none
	ticks   int    // maintenance ticks since the generation began
	respawn int    // children to start as soon as back-off allows
	// The MPM plugin's health: consecutive failed ticks, whether it is known
	// to be down, relaunch attempts and when to try again.
	mpmFails      int
	mpmDown       bool
	mpmBusy       bool // a Maintain call or a relaunch is in flight
	mpmRelaunches int
	mpmRetry      time.Time
	draining      bool
	deadline      time.Time
	stage         int // 0 asked to drain, 1 told to stop now, 2 killed
	// cutting: the generation is to stop at once, and waits until every
	// child has stopped accepting (or until cutBy) before cutting.
	cutting   bool
	cutBy     time.Time
	crashes   int
	nextSpawn time.Time
	lastExit  string
}

type kid struct {
	pid      int
	gen      *generation
	slot     int
	cmd      *exec.Cmd
	started  time.Time
	ready    bool
	retiring bool
	closed   bool // the child said it stopped accepting
	// successor is the pid of the replacement this retiring child waits for
	// before it is told to drain (0 = none); handoffBy bounds the wait, and
	// handedOff says the child was told to drain (see handoff.go).
	successor int
	handoffBy time.Time
	handedOff bool
}

type restart struct {
	gen      *generation
	old      []*generation
	oldLns   []*listen.Listener
	removed  []*listen.Listener
	hard     bool
	deadline time.Time
	reply    func(control.Response)
	first    bool
}

type stopping struct {
	graceful bool
	replies  []func(control.Response)
}

type eventKind int

const (
	evExit eventKind = iota
	evMsg
	evCmd
	evUpgrade
	evMaintained // an MPM's answer to a maintenance tick
	evRelaunched // an MPM plugin relaunch's outcome
)

type event struct {
	kind  eventKind
	pid   int
	state *os.ProcessState
	msg   string
	req   control.Request
	reply chan control.Response
	// evMaintained and evRelaunched: the generation, its MPM plugin (the
	// one asked, or the one relaunched), and the outcome.
	gen    *generation
	plugin *host.Plugin
	policy mpm.MPM
	limits *mpm.ConfigureResponse
	resp   *mpm.MaintainResponse
	err    error
}

// Run starts a master on opts.Config and returns when it has stopped. A start
// error (a port in use, an unwritable log, a held pid file) is returned after
// everything already started has been rolled back.
func Run(opts Options) (err error) {
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	m := &Master{opts: opts, cfg: opts.Config, events: make(chan event, 64), kids: make(map[int]*kid), started: time.Now(), firstGen: 1}
	if p := opts.Predecessor; p != nil {
		m.firstGen = p.Generation + 1
		if !p.Started.IsZero() {
			m.started = p.Started // the service has been up since
		}
	}
	ready := func(err error) {
		if m.opts.Ready != nil {
			m.opts.Ready(err)
			m.opts.Ready = nil
		}
	}
	defer func() {
		if err != nil {
			ready(err)
		}
	}()
	m.exe = opts.Executable
	if m.exe == "" {
		if m.exe, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the phased executable: %w", err)
		}
	}
	var undo []func()
	rollback := func(err error) error {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return err
	}
	// Until the open-logs phase, the master logs to stderr (Apache does
	// too): a start error reaches the terminal.
	boot, err := logging.Open(logging.Options{Path: "stderr", Level: m.cfg.ErrorLog.Level, Format: m.cfg.ErrorLog.Format, Stderr: m.opts.Stderr})
	if err != nil {
		return err
	}
	m.log = boot.Logger()
	m.logSw = newLogSwitch(m.log.Handler())
	if p := opts.Predecessor; p != nil && p.Counters != nil {
		// The totals go on from the old master's.
		if m.counters, err = scoreboard.OpenCounters(p.Counters); err != nil {
			// An older binary's block may differ: new totals, not a failed
			// upgrade.
			p.Counters.Close()
			m.log.Warn("binary upgrade: cannot take over the old master's counters; totals start again", "err", err)
			if m.counters, err = scoreboard.CreateCounters(); err != nil {
				return err
			}
		}
	} else if m.counters, err = scoreboard.CreateCounters(); err != nil {
		return err
	}
	defer m.counters.Close()
	if opts.Activated != nil {
		m.lns.Reset(opts.Activated)
		m.log.Info("listening on sockets systemd passed; the listen key is ignored", "listen", strings.Join(m.lns.Addrs(), ","))
	}
	if opts.Inherited != nil {
		m.lns.Reset(opts.Inherited)
	} else {
		if m.pid, err = pidfile.Acquire(m.cfg.PidFile, os.Getpid(), m.log); err != nil {
			return rollback(err)
		}
		undo = append(undo, func() { m.pid.Remove() })
	}
	undo = append(undo, func() { m.lns.Close() })
	if m.rundir, err = os.MkdirTemp("", "phased-"+strconv.Itoa(os.Getpid())+"-"); err != nil {
		return rollback(fmt.Errorf("creating the runtime directory: %w", err))
	}
	// Children that run as another user must reach their config file in it.
	os.Chmod(m.rundir, 0o711)
	m.plugdir = filepath.Join(m.rundir, "plugins")
	if err = os.Mkdir(m.plugdir, 0o711); err != nil {
		return rollback(fmt.Errorf("creating the plugin socket directory: %w", err))
	}
	undo = append(undo, func() { os.RemoveAll(m.rundir) })
	cleanStaleRundirs(m.log)
	p, err := m.start(context.Background(), m.log)
	if err != nil {
		return rollback(err)
	}
	m.commit(p)
	undo = append(undo, func() { m.errlog.Close(); closeFile(m.access) })
	if opts.Handover == nil {
		if err := m.listenControl(); err != nil {
			return rollback(err)
		}
		undo = append(undo, func() { m.ctl.Close() })
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGPIPE)
	defer signal.Stop(sigs)

	gen := m.newGeneration(p)
	m.current = gen
	m.pending = &restart{gen: gen, first: true, deadline: time.Now().Add(readyBound)}
	m.log.Info("starting", "pid", os.Getpid(), "listen", strings.Join(m.boundAddrs(), ","), "generation", gen.num)
	m.sampleQueues()
	m.maintain()

	startErr := m.loop(sigs)
	m.cleanup()
	if startErr != nil {
		return startErr
	}
	return nil
}

func (m *Master) openErrorLog(cfg *config.Config) (*logging.Log, error) {
	return logging.Open(logging.Options{Path: cfg.ErrorLog.Path, Level: cfg.ErrorLog.Level, Format: cfg.ErrorLog.Format, Stderr: m.opts.Stderr})
}

func openAccessLog(cfg *config.Config) (*os.File, error) {
	if cfg.AccessLog.Path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(cfg.AccessLog.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening access log: %w", err)
	}
	return f, nil
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}

func (m *Master) boundAddrs() []string {
	var out []string
	for _, l := range m.lns.List() {
		out = append(out, l.Bound.String())
	}
	return out
}

func (m *Master) newGeneration(p *pass) *generation {
	g := &generation{num: p.gen, started: time.Now(), pass: p.num, cfg: p.cfg, cfgPath: p.cfgPath, plan: p.plan,
		who: p.who, launch: p.launch, hooks: p.hooks, plugin: p.plugin, policy: p.policy, limits: p.limits, board: p.board, respawn: p.limits.StartServers}
	p.board, p.plugin, p.hooks = nil, nil, nil // the generation owns them now
	if g.limits.AcceptMutex == "flock" {
		g.mutex = m.acceptLocks(g)
	}
	m.gens = append(m.gens, g)
	return g
}

// loop handles events until the master has stopped. It returns a start error
// when the first generation never became ready.
func (m *Master) loop(sigs chan os.Signal) error {
	t := time.NewTicker(tick / 4)
	defer t.Stop()
	lastMaint := time.Now()
	wd, lastWatchdog := watchdogInterval(), time.Now()
	for {
		select {
		case sig := <-sigs:
			m.handleSignal(sig)
		case ev := <-m.events:
			switch ev.kind {
			case evExit:
				m.childExited(ev.pid, ev.state)
			case evMsg:
				m.childSaid(ev.pid, ev.msg)
			case evCmd:
				m.command(ev.req, func(r control.Response) { ev.reply <- r })
			case evUpgrade:
				m.upgradeReported(ev.err)
			case evMaintained:
				m.maintained(ev)
			case evRelaunched:
				m.relaunched(ev)
			}
		case now := <-t.C:
			m.escalate(now)
			if wd > 0 && now.Sub(lastWatchdog) >= wd {
				lastWatchdog = now
				m.notify("WATCHDOG=1") // sent from the event loop: a stuck loop starves it
			}
			if now.Sub(lastMaint) >= tick {
				lastMaint = now
				m.tickPolicy(now, m.sampleQueues())
			}
			m.maintain()
		}
		m.stepHandoffs(time.Now())
		m.stepRecycle()
		m.publishChildren() // a few stores: /metrics sees every spawn, ready and exit at once
		if err := m.checkPending(); err != nil {
			m.beginStop(false, nil)
			m.waitChildren()
			return err
		}
		if m.stop != nil && len(m.kids) == 0 {
			return nil
		}
	}
}

// waitChildren reaps every child after a failed start, killing stragglers.
func (m *Master) waitChildren() {
	deadline := time.After(stopKillBound)
	for len(m.kids) > 0 {
		select {
		case ev := <-m.events:
			if ev.kind == evExit {
				delete(m.kids, ev.pid)
			} else if ev.kind == evCmd {
				ev.reply <- control.Response{Error: "phased is stopping"}
			}
		case <-deadline:
			for _, k := range m.kids {
				syscall.Kill(k.pid, syscall.SIGKILL)
			}
			deadline = time.After(stopKillBound)
		}
	}
}

// listenControl opens the control socket and serves it.
func (m *Master) listenControl() (err error) {
	if m.ctl, err = control.Listen(m.cfg.ControlSocket, m.log); err != nil {
		return err
	}
	go m.ctl.Serve(m.handleControl)
	return nil
}

func (m *Master) cleanup() {
	if !m.upgraded {
		m.runShutdown()
	}
	for _, g := range m.gens {
		g.hooks.kill()
	}
	for _, g := range m.gens {
		os.Remove(g.cfgPath)
	}
	m.lns.Close()
	closeFile(m.access)
	os.RemoveAll(m.rundir)
	var replies []func(control.Response)
	if m.stop != nil {
		replies = m.stop.replies
	}
	if m.pid != nil {
		if err := m.pid.Remove(); err != nil {
			m.log.Warn("removing pid file", "err", err)
		}
	}
	for _, r := range replies {
		r(control.Response{OK: true, Message: "phased stopped"})
	}
	if m.ctl != nil {
		m.ctl.Close()
	}
	m.log.Log(context.Background(), logging.LevelNotice, "phased stopped", "pid", os.Getpid())
	m.errlog.Close()
}

func (m *Master) handleSignal(sig os.Signal) {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		m.log.Log(context.Background(), logging.LevelNotice, "caught signal; stopping", "signal", sig.String())
		m.beginStop(false, nil)
	case syscall.SIGWINCH:
		m.log.Log(context.Background(), logging.LevelNotice, "caught signal; graceful stop", "signal", sig.String())
		m.beginStop(true, nil)
	case syscall.SIGHUP, syscall.SIGUSR1:
		m.log.Log(context.Background(), logging.LevelNotice, "caught signal; graceful restart", "signal", sig.String())
		m.restart(false, func(r control.Response) {
			if !r.OK {
				m.log.Error("graceful restart failed; the old generation keeps serving", "err", r.Error)
			}
		})
	case syscall.SIGUSR2:
		m.log.Log(context.Background(), logging.LevelNotice, "caught signal; binary upgrade", "signal", sig.String())
		m.startUpgrade(func(r control.Response) {})
	case syscall.SIGPIPE:
		// A closed terminal or log reader; writes fail with EPIPE instead.
	}
}

func (m *Master) handleControl(ctx context.Context, req control.Request) control.Response {
	reply := make(chan control.Response, 1)
	select {
	case m.events <- event{kind: evCmd, req: req, reply: reply}:
	case <-ctx.Done():
		return control.Response{Error: "cancelled"}
	}
	select {
	case r := <-reply:
		return r
	case <-ctx.Done():
		return control.Response{Error: "cancelled"}
	}
}

func (m *Master) command(req control.Request, reply func(control.Response)) {
	if m.stop != nil && req.Cmd != "status" && req.Cmd != "ping" && req.Cmd != "stop" {
		reply(control.Response{Error: "phased is stopping"})
		return
	}
	switch req.Cmd {
	case "ping":
		reply(control.Response{OK: true, Message: fmt.Sprintf("phased (pid %d) running", os.Getpid())})
	case "status":
		b, _ := json.Marshal(m.status())
		reply(control.Response{OK: true, Data: b})
	case "graceful":
		m.restart(false, reply)
	case "restart":
		m.restart(true, reply)
	case "recycle":
		m.startRecycle(reply)
	case "upgrade":
		m.startUpgrade(reply)
	case "graceful-stop":
		m.beginStop(true, reply)
	case "stop":
		m.beginStop(false, reply)
	default:
		reply(control.Response{Error: fmt.Sprintf("unknown command %q", req.Cmd)})
	}
}

// restart runs a new configuration pass and starts a new generation. The old
// generation drains once the new one is ready; if the pass fails, nothing
// changes and reply gets the error.
func (m *Master) restart(hard bool, reply func(control.Response)) {
	if m.pending != nil && m.pending.first {
		reply(control.Response{Error: "phased is still starting; try again when it serves"})
		return
	}
	if m.pending != nil {
		reply(control.Response{Error: fmt.Sprintf("a restart to generation %d is still in progress", m.pending.gen.num)})
		return
	}
	if m.upgrade != nil {
		reply(control.Response{Error: "a binary upgrade is in progress; the new master will take the restart"})
		return
	}
	m.notify("RELOADING=1", "MONOTONIC_USEC="+daemon.SdNotifyMonotonicUsec())
	fail0 := reply
	reply = func(r control.Response) {
		if !r.OK {
			m.counters.Add(scoreboard.RestartFailures, 1)
			m.notify("READY=1", statusLine(m)) // the old generation serves on
		}
		fail0(r)
	}
	fail := func(err error) {
		reply(control.Response{Error: err.Error() + "; the old generation keeps serving"})
	}
	cfg := m.cfg
	if m.opts.Reload != nil {
		c, err := m.opts.Reload()
		if err != nil {
			fail(fmt.Errorf("reading configuration: %w", err))
			return
		}
		cfg = c
	}
	if cfg.PidFile != m.cfg.PidFile || cfg.ControlSocket != m.cfg.ControlSocket {
		fail(errors.New("pid_file and control_socket cannot change on a restart; stop and start instead"))
		return
	}
	p, err := m.runPass(context.Background(), m.passNum+1, m.gens[len(m.gens)-1].num+1, cfg, m.log)
	if err != nil {
		fail(err)
		return
	}
	oldLns := p.oldLns
	removed := p.removed
	m.commit(p)
	gen := m.newGeneration(p)
	var old []*generation
	for _, g := range m.gens {
		if g != gen && !g.draining {
			old = append(old, g)
		}
	}
	m.current = gen
	m.pending = &restart{gen: gen, old: old, oldLns: oldLns, removed: removed, hard: hard, deadline: time.Now().Add(readyBound), reply: reply}
	m.log.Log(context.Background(), logging.LevelNotice, "restarting", "generation", gen.num, "hard", hard)
	if hard {
		for _, g := range old {
			m.drain(g, false)
		}
	}
	m.maintain()
}

// checkPending finishes a restart (or the first start) once its generation is
// ready. It returns an error only when the first start failed.
func (m *Master) checkPending() error {
	p := m.pending
	if p == nil {
		return nil
	}
	want := p.gen.limits.StartServers // 0 (an ondemand MPM): ready at once
	ready := 0
	for _, k := range m.kids {
		if k.gen == p.gen && k.ready && !k.retiring {
			ready++
		}
	}
	now := time.Now()
	switch {
	case ready >= want || (ready > 0 && now.After(p.deadline)):
		m.pending = nil
		for _, g := range p.old {
			if !g.draining {
				m.drain(g, true)
			}
		}
		for _, l := range p.removed {
			l.Close()
		}
		if p.first && m.opts.Handover != nil {
			if err := m.takeOver(); err != nil {
				return err
			}
		}
		if p.first {
			m.notify("READY=1", fmt.Sprintf("MAINPID=%d", os.Getpid()), statusLine(m))
			m.log.Log(context.Background(), logging.LevelNotice, "resuming normal operations",
				"pid", os.Getpid(), "generation", p.gen.num, "children", ready, "listen", strings.Join(m.boundAddrs(), ","))
			if m.opts.Ready != nil {
				m.opts.Ready(nil)
				m.opts.Ready = nil
			}
			return nil
		}
		m.notify("READY=1", statusLine(m))
		m.counters.Add(scoreboard.Restarts, 1)
		m.log.Log(context.Background(), logging.LevelNotice, "graceful restart done", "generation", p.gen.num, "children", ready)
		p.reply(control.Response{OK: true, Message: fmt.Sprintf("generation %d serving", p.gen.num)})
	case now.After(p.deadline) || (ready == 0 && p.gen.crashes >= crashesToAbort):
		m.pending = nil
		why := fmt.Sprintf("generation %d did not become ready", p.gen.num)
		if p.gen.lastExit != "" {
			why += ": its children " + p.gen.lastExit
		} else {
			why += fmt.Sprintf(" within %s", readyBound)
		}
		if p.first {
			return errors.New(why)
		}
		m.drain(p.gen, false)
		if len(p.old) > 0 {
			m.current = p.old[len(p.old)-1]
			m.cfg, m.plan = m.current.cfg, m.current.plan
		}
		m.lns.Reset(p.oldLns)
		p.reply(control.Response{Error: why + "; the old generation keeps serving"})
	}
	return nil
}

// drain retires every child of g: gracefully (contract.DrainSignal, bounded by
// graceful_shutdown_timeout) or at once. At once takes two steps: every child
// first stops accepting (contract.DrainSignal, as a graceful drain starts) and says so, and
// only when all have, or closeBound has passed, are they told to cut
// (SIGINT). Cutting child by child would let a client whose request was cut
// reconnect to a sibling that still accepts and lose a request there too:
// more lost than was in flight.
func (m *Master) drain(g *generation, graceful bool) {
	g.draining = true
	go g.plugin.Kill() // a draining generation needs no maintenance; a wedged plugin takes up to 2 s to kill
	g.stage, g.deadline = 0, time.Now().Add(g.cfg.GracefulShutdownTimeout)
	if !graceful {
		g.cutting, g.cutBy = true, time.Now().Add(closeBound)
	}
	for _, k := range m.kids {
		if k.gen == g {
			k.retiring, k.successor, k.handedOff = true, 0, true
			if !k.closed {
				syscall.Kill(k.pid, contract.DrainSignal)
			}
		}
	}
	m.log.Info("generation draining", "generation", g.num, "graceful", graceful)
	m.cutIfClosed(g, time.Now())
}

// cutIfClosed tells a generation that is to stop at once to cut its
// connections, once none of its children accepts any more or cutBy passed.
func (m *Master) cutIfClosed(g *generation, now time.Time) {
	if !g.cutting {
		return
	}
	open := 0
	for _, k := range m.kids {
		if k.gen == g && !k.closed {
			open++
		}
	}
	if open > 0 && now.Before(g.cutBy) {
		return
	}
	if open > 0 {
		m.log.Warn("children did not say they stopped accepting; cutting anyway", "generation", g.num, "children", open)
	}
	g.cutting = false
	g.stage, g.deadline = 1, now.Add(stopKillBound)
	for _, k := range m.kids {
		if k.gen == g {
			syscall.Kill(k.pid, syscall.SIGINT)
		}
	}
}

// escalate moves draining generations past their bounds: SIGINT, then SIGKILL.
func (m *Master) escalate(now time.Time) {
	for _, g := range m.gens {
		if g.cutting {
			m.cutIfClosed(g, now)
			continue
		}
		if !g.draining || now.Before(g.deadline) || g.stage >= 2 {
			continue
		}
		sig := syscall.SIGINT
		if g.stage == 1 {
			sig = syscall.SIGKILL
		}
		n := 0
		for _, k := range m.kids {
			if k.gen == g {
				syscall.Kill(k.pid, sig)
				n++
			}
		}
		if n > 0 {
			m.log.Warn("generation did not drain in time", "generation", g.num, "children", n, "signal", sig.String())
		}
		g.stage++
		g.deadline = now.Add(stopKillBound)
	}
}

func (m *Master) beginStop(graceful bool, reply func(control.Response)) {
	if m.stop == nil {
		if !m.upgraded {
			m.notify("STOPPING=1")
		}
		m.stop = &stopping{graceful: graceful}
		if m.pending != nil && m.pending.reply != nil {
			m.pending.reply(control.Response{Error: "phased is stopping"})
		}
		m.pending = nil
	} else if !graceful && m.stop.graceful {
		m.stop.graceful = false // a stop during a graceful stop hurries it
	} else {
		if reply != nil {
			m.stop.replies = append(m.stop.replies, reply)
		}
		return
	}
	if reply != nil {
		m.stop.replies = append(m.stop.replies, reply)
	}
	for _, g := range m.gens {
		if !g.draining || (!graceful && g.stage == 0 && !g.cutting) {
			m.drain(g, graceful)
		}
	}
}

// maintain starts the children serving generations owe: the first
// start_servers, and replacements of children that crashed or recycled
// themselves, as fast as the crash back-off allows. How many children a
// generation has beyond that is the MPM's decision (tickPolicy).
func (m *Master) maintain() {
	if m.stop != nil {
		return
	}
	now := time.Now()
	for _, g := range m.gens {
		for !g.draining && g.respawn > 0 && !now.Before(g.nextSpawn) {
			if m.spawnOne(g) == 0 {
				break
			}
			g.respawn--
		}
	}
}

func (m *Master) crashed(g *generation, why string) {
	g.crashes++
	g.lastExit = why
	if g.crashes == 1 {
		return
	}
	d := firstBackoff << min(g.crashes-2, 10)
	d = min(d, maxBackoff)
	g.nextSpawn = time.Now().Add(d)
	m.log.Warn("children keep dying early; backing off", "generation", g.num, "crashes", g.crashes, "retry_in", d.String())
}

func (m *Master) childSaid(pid int, msg string) {
	k, ok := m.kids[pid]
	if !ok {
		return
	}
	ev, _ := contract.ParseEvent(msg)
	switch ev {
	case contract.EventReady:
		k.ready = true
	case contract.EventRetireRequest:
		m.retireOnRequest(k, m.counters.CountSelfRetire)
	case contract.EventRetireMaxConnections:
		m.retireOnRequest(k, func() { m.counters.Add(scoreboard.RecycledMaxConnections, 1) })
	case contract.EventClosed:
		k.closed = true
		m.cutIfClosed(k.gen, time.Now())
	case contract.EventRetiring:
		k.handedOff = true // it drains already, whoever asked
		if !k.retiring {
			k.retiring = true
			if !k.gen.draining && m.stop == nil {
				m.counters.CountSelfRetire()
				k.gen.respawn++
				m.log.Info("child retiring; starting its replacement", "pid", pid, "generation", k.gen.num, "slot", k.slot)
				m.maintain()
			}
		}
	}
}

func (m *Master) childExited(pid int, st *os.ProcessState) {
	k, ok := m.kids[pid]
	if !ok {
		return
	}
	delete(m.kids, pid)
	m.cutIfClosed(k.gen, time.Now())
	how := describe(st)
	up := time.Since(k.started)
	attrs := []any{"pid", pid, "generation", k.gen.num, "slot", k.slot, "status", how, "uptime", up.Round(time.Millisecond).String()}
	k.gen.hooks.notify(hook.ChildEventRequest{Kind: hook.ChildExited, PID: pid, Slot: k.slot, Generation: k.gen.num, Status: how}, m.log)
	expected := k.retiring || k.gen.draining || m.stop != nil
	if line := k.gen.lastRequest(k.slot); line != "" && !expected {
		attrs = append(attrs, "last_request", line)
	}
	k.gen.board.ClearProc(k.slot)
	if expected {
		m.counters.Add(scoreboard.ExitedNormally, 1)
		m.log.Info("child exited", attrs...)
	} else {
		m.counters.Add(scoreboard.ExitCounter(st, contract.ExitChildInit), 1)
		// Abnormal exits are logged at notice whatever the level (seed 001).
		m.log.Log(context.Background(), logging.LevelNotice, "child exited unexpectedly; replacing it", attrs...)
		k.gen.respawn++
		if up < earlyDeath || !k.ready {
			m.crashed(k.gen, how)
		} else {
			k.gen.crashes = 0
		}
	}
	m.reapGenerations()
	m.maintain()
}

// reapGenerations forgets drained generations that have no child left.
func (m *Master) reapGenerations() {
	keep := m.gens[:0]
	for _, g := range m.gens {
		alive := false
		for _, k := range m.kids {
			if k.gen == g {
				alive = true
				break
			}
		}
		if g.draining && !alive && g != m.current {
			m.log.Info("generation finished", "generation", g.num)
			os.Remove(g.cfgPath)
			g.board.Close()
			g.hooks.kill()
			continue
		}
		keep = append(keep, g)
	}
	m.gens = keep
}

// lastRequest is the request line a child's busiest slot was serving.
func (g *generation) lastRequest(slot int) string {
	if slot >= g.board.Procs() {
		return ""
	}
	var line string
	var at time.Time
	for j := range g.board.ThreadsPerProc() {
		w := g.board.Worker(slot, j).Snapshot()
		if w.RequestLine != "" && w.RequestStart.After(at) {
			line, at = w.RequestLine, w.RequestStart
		}
	}
	return line
}

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
	return "exit status " + strconv.Itoa(st.ExitCode())
}

// Status is what `phased status` shows.
type Status struct {
	PID        int      `json:"pid"`
	Uptime     string   `json:"uptime"`
	Generation int      `json:"generation"`
	Listen     []string `json:"listen"`
	MPM        string   `json:"mpm"`
	Stopping   bool     `json:"stopping"`
	// Scoreboard is the current generation's slots in Apache's letters.
	Scoreboard string `json:"scoreboard"`
	Idle       int    `json:"idle_workers"`
	Busy       int    `json:"busy_workers"`
	// Crashes counts the current generation's early child deaths in a row;
	// while it is above 1 the master backs off until BackoffUntil.
	Crashes      int           `json:"crashes"`
	LastExit     string        `json:"last_exit,omitempty"`
	BackoffUntil string        `json:"backoff_until,omitempty"`
	Children     []ChildStatus `json:"children"`
}

// ChildStatus is one child in a Status.
type ChildStatus struct {
	PID        int    `json:"pid"`
	Generation int    `json:"generation"`
	Slot       int    `json:"slot"`
	State      string `json:"state"`
	Uptime     string `json:"uptime"`
	// Busy is how many of its worker slots hold a request or a
	// connection; Requests and Bytes are what its slots served (from the
	// generation's scoreboard: a slot's counters are the slot's, as in
	// Apache, so they include what earlier children in that slot served).
	Busy     int    `json:"busy"`
	Requests uint64 `json:"requests"`
	Bytes    uint64 `json:"bytes"`
}

func (m *Master) status() Status {
	s := Status{PID: os.Getpid(), Uptime: time.Since(m.started).Round(time.Second).String(),
		Generation: m.current.num, Listen: m.boundAddrs(), MPM: m.cfg.MPM.Name, Stopping: m.stop != nil}
	snap := m.current.board.Snapshot()
	sum := snap.Summary()
	s.Scoreboard, s.Idle, s.Busy = snap.Letters(), sum.Idle, sum.Busy
	s.Crashes, s.LastExit = m.current.crashes, m.current.lastExit
	if time.Now().Before(m.current.nextSpawn) {
		s.BackoffUntil = m.current.nextSpawn.Format(time.RFC3339)
	}
	for _, k := range m.kids {
		state := "starting"
		switch {
		case k.retiring:
			state = "retiring"
		case k.ready:
			state = "ready"
		}
		c := ChildStatus{PID: k.pid, Generation: k.gen.num, Slot: k.slot, State: state,
			Uptime: time.Since(k.started).Round(time.Second).String()}
		if b := k.gen.board; k.slot < b.Procs() {
			for j := range min(k.gen.limits.ThreadsPerChild, b.ThreadsPerProc()) {
				w := b.Worker(k.slot, j).Snapshot()
				c.Requests += w.Requests
				c.Bytes += w.Bytes
				if w.State != scoreboard.Idle && w.State != scoreboard.Dead && w.State != scoreboard.Starting {
					c.Busy++
				}
			}
		}
		s.Children = append(s.Children, c)
	}
	s.Children = append(s.Children, m.predecessorChildren()...)
	sort.Slice(s.Children, func(i, j int) bool {
		a, b := s.Children[i], s.Children[j]
		if a.Generation != b.Generation {
			return a.Generation < b.Generation
		}
		return a.Slot < b.Slot
	})
	return s
}

// WriteStatus prints s as a table.
func WriteStatus(w io.Writer, s Status) {
	fmt.Fprintf(w, "phased (pid %d) up %s, generation %d, mpm %s, listening on %s\n",
		s.PID, s.Uptime, s.Generation, s.MPM, strings.Join(s.Listen, ", "))
	if s.Stopping {
		fmt.Fprintln(w, "stopping")
	}
	fmt.Fprintf(w, "%d busy, %d idle workers\nscoreboard: %s\n", s.Busy, s.Idle, s.Scoreboard)
	if s.BackoffUntil != "" {
		fmt.Fprintf(w, "children keep dying (%d in a row, last: %s); next start at %s\n", s.Crashes, s.LastExit, s.BackoffUntil)
	}
	fmt.Fprintf(w, "%-8s %-4s %-4s %-9s %-8s %-5s %-9s %s\n", "PID", "GEN", "SLOT", "STATE", "UPTIME", "BUSY", "REQUESTS", "BYTES")
	for _, c := range s.Children {
		fmt.Fprintf(w, "%-8d %-4d %-4d %-9s %-8s %-5d %-9d %d\n", c.PID, c.Generation, c.Slot, c.State, c.Uptime, c.Busy, c.Requests, c.Bytes)
	}
}

// acceptLocks creates the lock files of g's accept mutex, one per listener,
// owned by the children's user (each child opens them itself: flock is per
// open file description). It returns their path prefix, or "" (no mutex,
// logged) when they cannot be made.
func (m *Master) acceptLocks(g *generation) string {
	prefix := filepath.Join(m.rundir, fmt.Sprintf("accept-%d.lock", g.num))
	for i := range m.lns.List() {
		path := prefix + "." + strconv.Itoa(i)
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err == nil {
			f.Close()
			if g.who != nil {
				err = os.Chown(path, int(g.who.UID), int(g.who.GID))
			}
		}
		if err != nil {
			m.log.Warn("accept mutex unavailable; children accept without it", "generation", g.num, "err", err)
			return ""
		}
	}
	return prefix
}

// publishChildren tells /metrics how many children are starting, ready and
// retiring, across generations.
func (m *Master) publishChildren() {
	var starting, ready, retiring int
	var gens scoreboard.ChildTally
	for _, k := range m.kids {
		gens.Add(k.gen.num, k.ready, k.retiring)
		switch {
		case k.retiring:
			retiring++
		case k.ready:
			ready++
		default:
			starting++
		}
	}
	m.counters.SetChildren(starting, ready, retiring)
	m.counters.SetGenerations(&gens)
}

// childProcs is the GOMAXPROCS a child of an MPM with these limits gets
// when neither the master's environment nor app.env sets one; 0 leaves the
// Go default (every core). A prefork child serves one connection at a
// time: one P is all it can use, and dozens of children each running a
// scheduler for every core only contend for the cores. Threaded children
// keep the default. Sharing the cores out (ceil(cores / start_servers) each)
// was tried: with the kernel splitting connections unevenly between
// children, a child with one P capped the busiest share at one core, and
// under wrk -c50 on 2 cores the worker MPM served 89k/71k req/s (6 B/4 KiB
// medians of 5) against 95k/78k with the default.
func childProcs(l *mpm.ConfigureResponse) int {
	if l.Model == mpm.Prefork {
		return 1
	}
	return 0
}
