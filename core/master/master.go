package master

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/core/control"
	"github.com/phasedhq/phased/core/handover"
	"github.com/phasedhq/phased/core/listen"
	"github.com/phasedhq/phased/core/logging"
	"github.com/phasedhq/phased/core/pidfile"
	"github.com/phasedhq/phased/core/reaper"
	"github.com/phasedhq/phased/core/supervisor"
	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/internal/tickets"
	"github.com/phasedhq/phased/phases"
	"github.com/phasedhq/phased/plugins/host"
	"github.com/phasedhq/phased/sdk/mpm"
)

// loopTick is how often the event loop's clock ticks: the supervisor's
// bounds are checked this often, and the MPM is asked every
// supervisor.Timings.Tick.
const loopTick = 250 * time.Millisecond

// maxSocketPath is the longest path a unix socket binds to on Linux;
// pluginSocketTail is what go-plugin adds below the plugin socket folder
// ("/" + a 10-digit folder + "/plugin" + 10 digits).
const (
	maxSocketPath    = 107
	pluginSocketTail = 1 + 10 + 7 + 10
)

// ticketRotation is how often a new TLS session ticket key is made; with
// tickets.Keep keys kept, a ticket resumes for up to three rotations more.
const ticketRotation = 12 * time.Hour

// Options configures Run.
type Options struct {
	// Config is the configuration of the first generation. Required.
	Config *config.Config
	// Reload reads the configuration again for a restart. nil means restarts
	// reuse Config.
	Reload func() (*config.Config, error)
	// Executable is the binary children run in child mode; "" means this
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
	// Timings are the supervisor's bounds; the zero value means
	// supervisor.DefaultTimings.
	Timings *supervisor.Timings
	// Version is phased's version ("v1.2.3"; "" for a development
	// build), which children show on the status page.
	Version string
}

// Master is a running control process: the executor of its supervisor's
// decisions (core/supervisor), and the owner of everything they act on.
type Master struct {
	opts     Options
	cfg      *config.Config
	exe      string
	log      *slog.Logger
	errlog   *logging.Log
	access   *os.File
	pid      *pidfile.File
	ctl      *control.Server
	lns      listen.Set
	rundir   string
	events   chan event
	started  time.Time
	plan     *phases.Plan
	passNum  int
	firstGen int // 1, or the one after the old master's in a binary upgrade
	// newestGen is the newest generation any pass made: the next pass
	// makes the one after, even when a failed one is gone.
	newestGen int
	plugdir   string
	logSw     *logSwitch // the error log plugins write to, whichever it is now
	// counters are the master's running totals, shared with children for
	// /metrics.
	counters *scoreboard.Counters
	// tickets are the TLS session ticket keys every child shares, rotated
	// every ticketRotation.
	tickets *tickets.Keys
	rotated time.Time

	sv      *supervisor.Supervisor
	gens    map[int]*generation
	procs   map[supervisor.ChildID]*proc
	byPID   map[int]supervisor.ChildID
	replies map[supervisor.RequestID]func(control.Response)
	nextReq supervisor.RequestID
	upgrade *handover.Upgrade
	acme    acmeState
	restart restartWatch   // app.restart_file as last seen
	serving bool           // the first generation served
	queues  []mpm.Listener // the listeners' queues as last sampled
	watched time.Time      // when watchAccept last ran
	// recent is every child's accepted count at the loop's last tick,
	// by pid (spare is the map the next sample fills): the MPM's fresher
	// accept rate (mpm.Child.RecentConnections).
	recent, spare map[int]uint64
	recentAt      time.Time
	// stuckAccept holds the children seen stopped in their accept loop,
	// by pid, each logged once until it runs again (watchAccept).
	stuckAccept map[int]bool
	// stopping: the master is stopping (or in a graceful stop's drain
	// delay); every generation's children answer readiness with 503.
	stopping bool
}

type eventKind int

const (
	evExit eventKind = iota
	evMsg
	evCmd
	evUpgrade
	evMaintained // an MPM's answer to a maintenance tick
	evRelaunched // an MPM plugin relaunch's outcome
	evACME       // an ACME order's outcome
)

// event is what the master's goroutines hand its event loop.
type event struct {
	kind  eventKind
	pid   int
	state *os.ProcessState
	msg   string
	req   control.Request
	reply chan control.Response
	// evMaintained and evRelaunched: the generation and the outcome.
	gen    int
	epoch  int
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
	t := supervisor.DefaultTimings()
	if opts.Timings != nil {
		t = *opts.Timings
	}
	m := &Master{opts: opts, cfg: opts.Config, events: make(chan event, 64), started: time.Now(), firstGen: 1,
		sv: supervisor.New(t), gens: map[int]*generation{}, procs: map[supervisor.ChildID]*proc{}, byPID: map[int]supervisor.ChildID{},
		replies: map[supervisor.RequestID]func(control.Response){}}
	if p := opts.Predecessor; p != nil {
		m.firstGen = p.Generation + 1
		if !p.Started.IsZero() {
			m.started = p.Started // the service has been up since
		}
	}
	defer func() {
		if err != nil {
			m.ready(err)
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
		reaper.EndStrays(m.log, 2*time.Second) // what the failed start's hooks left behind
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
	// A subreaper from the start: what a hook of the very first pass leaves
	// behind is the master's to reap and, at stop, to end.
	reap := reaper.Start(m.log)
	defer reap.Stop()
	if m.counters, err = m.openCounters(); err != nil {
		return err
	}
	defer m.counters.Close()
	if m.tickets, err = m.openTickets(); err != nil {
		return err
	}
	defer m.tickets.Close()
	m.rotated = time.Now()
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
	if n := len(m.plugdir) + pluginSocketTail; n > maxSocketPath {
		os.RemoveAll(m.rundir)
		return rollback(fmt.Errorf("the runtime folder %s is too long: plugin sockets below it would take %d bytes, a unix socket at most %d; set TMPDIR to a shorter folder", m.rundir, n, maxSocketPath))
	}
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

	g := m.newGeneration(p)
	m.log.Info("starting", "pid", os.Getpid(), "listen", strings.Join(m.boundAddrs(), ","), "generation", g.num)
	m.sampleQueues()
	m.handle(supervisor.Started{Gen: g.spec(), Handover: opts.Handover != nil})
	err = m.loop(sigs)
	m.cleanup()
	return err
}

// openTickets makes the master's TLS session ticket keys, or, in a binary
// upgrade, a segment of its own holding the old master's keys (whose
// segment only the old master may write), so that sessions resume across
// the upgrade.
func (m *Master) openTickets() (*tickets.Keys, error) {
	p := m.opts.Predecessor
	if p == nil || p.Tickets == nil {
		return tickets.Create()
	}
	defer p.Tickets.Close()
	old, err := tickets.Open(p.Tickets)
	if err != nil {
		m.log.Warn("binary upgrade: cannot take over the old master's TLS ticket keys; clients make a full handshake once", "err", err)
		return tickets.Create()
	}
	keys, _ := old.Keys()
	old.Close()
	return tickets.CreateWith(keys)
}

// openCounters creates the master's running totals, or takes over the old
// master's in a binary upgrade.
func (m *Master) openCounters() (*scoreboard.Counters, error) {
	p := m.opts.Predecessor
	if p == nil || p.Counters == nil {
		return scoreboard.CreateCounters()
	}
	c, err := scoreboard.OpenCounters(p.Counters)
	if err == nil {
		return c, nil
	}
	// An older binary's block may differ: new totals, not a failed upgrade.
	p.Counters.Close()
	m.log.Warn("binary upgrade: cannot take over the old master's counters; totals start again", "err", err)
	return scoreboard.CreateCounters()
}

// loop hands every event to the supervisor and carries out its decisions
// until the master has stopped. It returns the start error when the first
// generation never served.
func (m *Master) loop(sigs chan os.Signal) error {
	t := time.NewTicker(loopTick)
	defer t.Stop()
	wd, lastWatchdog := watchdogInterval(), time.Now()
	for {
		select {
		case sig := <-sigs:
			m.onSignal(sig)
		case ev := <-m.events:
			m.onEvent(ev)
		case now := <-t.C:
			m.beat(now)
			if wd > 0 && now.Sub(lastWatchdog) >= wd {
				lastWatchdog = now
				m.notify("WATCHDOG=1") // sent from the event loop: a stuck loop starves it
			}
			m.sampleQueues() // every beat: the MPM's tick sees the queues as they are
			if now.Sub(m.watched) >= time.Second {
				m.watched = now
				m.watchAccept(now)
				m.watchRestartFile()
			}
			if now.Sub(m.rotated) >= ticketRotation {
				m.rotated = now
				if err := m.tickets.Rotate(); err != nil {
					m.log.Error("rotating the TLS session ticket keys", "err", err)
				}
			}
			for num, g := range m.gens {
				if g.plugin.Exited() {
					m.handle(supervisor.MPMExited{Gen: num})
				}
			}
			m.handle(supervisor.Tick{Queued: m.queuedForSlots()})
			m.sampleAccepted(now) // after the tick: its maintenance saw the last sample
			if m.serving {
				m.acmeTick(now)
			}
		}
		m.publishChildren() // a few stores: /metrics sees every spawn, ready and exit at once
		if done, err := m.sv.Done(); done {
			return err
		}
	}
}

// onSignal turns a signal into the command it stands for.
func (m *Master) onSignal(sig os.Signal) {
	cmd := map[os.Signal]string{
		syscall.SIGTERM: supervisor.CmdStop, syscall.SIGINT: supervisor.CmdStop, syscall.SIGWINCH: supervisor.CmdGracefulStop,
		syscall.SIGHUP: supervisor.CmdGraceful, syscall.SIGUSR1: supervisor.CmdGraceful, syscall.SIGUSR2: supervisor.CmdUpgrade,
	}[sig]
	if cmd == "" {
		return // SIGPIPE: a closed terminal or log reader; writes fail with EPIPE instead
	}
	if sig == syscall.SIGTERM && m.cfg.SIGTERM == "graceful-stop" {
		cmd = supervisor.CmdGracefulStop
	}
	m.handle(supervisor.Command{Cmd: cmd, Signal: sig.(syscall.Signal)})
}

// onEvent turns what a goroutine saw into the supervisor's event.
func (m *Master) onEvent(ev event) {
	switch ev.kind {
	case evExit:
		m.childExited(ev.pid, ev.state)
	case evMsg:
		if id, ok := m.byPID[ev.pid]; ok {
			if why, ok := contract.ParseInitFailed(ev.msg); ok {
				m.procs[id].initErr = why // for the report of its exit, which follows
			} else if e, ok := parseEvent(ev.msg); ok {
				m.handle(supervisor.ChildSaid{Child: id, Event: e})
			}
		}
	case evCmd:
		m.command(ev.req, func(r control.Response) { ev.reply <- r })
	case evUpgrade:
		pid := 0
		if m.upgrade != nil {
			pid = m.upgrade.PID()
		}
		m.handle(supervisor.UpgradeReported{Started: true, PID: pid, Err: ev.err})
	case evMaintained:
		m.handle(supervisor.Maintained{Gen: ev.gen, Epoch: ev.epoch, Resp: ev.resp, Err: ev.err})
	case evRelaunched:
		m.relaunched(ev)
	case evACME:
		m.acmeDone(ev.err)
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

// command answers ping and status itself and hands every other command to
// the supervisor, which replies when it is done.
func (m *Master) command(req control.Request, reply func(control.Response)) {
	switch req.Cmd {
	case "ping":
		reply(control.Response{OK: true, Message: fmt.Sprintf("phased (pid %d) running", os.Getpid())})
	case "status":
		reply(statusResponse(m.status()))
	case supervisor.CmdUpgrade:
		if os.Getpid() == 1 {
			// Whatever else is going on: this answer will not change, so
			// "try again" (a restart in progress) would mislead.
			reply(control.Response{Error: "binary upgrade: " + errUpgradeAsInit.Error() + "; this master keeps serving"})
			return
		}
		fallthrough
	default:
		m.nextReq++
		m.replies[m.nextReq] = reply
		m.handle(supervisor.Command{Req: m.nextReq, Cmd: req.Cmd})
	}
}

func (m *Master) cleanup() {
	if !m.sv.Upgraded() {
		m.runShutdown()
	}
	for _, g := range m.gens {
		g.hooks.kill()
		os.Remove(g.cfgPath)
	}
	m.lns.Close()
	closeFile(m.access)
	os.RemoveAll(m.rundir)
	if m.pid != nil {
		if err := m.pid.Remove(); err != nil {
			m.log.Warn("removing pid file", "err", err)
		}
	}
	if !m.sv.Upgraded() {
		// Whatever hooks, children or apps left behind goes with the master.
		reaper.EndStrays(m.log, 2*time.Second)
	}
	for _, req := range m.sv.StopReplies() {
		m.answer(supervisor.Reply{Req: req, OK: true, Message: "phased stopped"})
	}
	for req, r := range m.replies { // commands nobody will finish now
		r(control.Response{Error: "phased stopped"})
		delete(m.replies, req)
	}
	if m.ctl != nil {
		m.ctl.Close()
	}
	m.log.Log(context.Background(), logging.LevelNotice, "phased stopped", "pid", os.Getpid())
	m.errlog.Close()
}

func (m *Master) ready(err error) {
	if m.opts.Ready != nil {
		m.opts.Ready(err)
		m.opts.Ready = nil
	}
}

func (m *Master) openErrorLog(cfg *config.Config) (*logging.Log, error) {
	return logging.Open(logging.Options{Path: cfg.ErrorLog.Path, Level: cfg.ErrorLog.Level, Format: cfg.ErrorLog.Format, Stderr: m.opts.Stderr})
}

// openAccessLog opens the access log the children write to: a file, or a
// copy of the master's stdout or stderr (the error log's, m.opts.Stderr)
// for "stdout" and "stderr", never a file of that name.
func (m *Master) openAccessLog(cfg *config.Config) (*os.File, error) {
	var std *os.File
	switch cfg.AccessLog.Path {
	case "":
		return nil, nil
	case "stdout":
		std = os.Stdout
	case "stderr":
		std = m.opts.Stderr
	}
	if std != nil {
		// A copy of the descriptor: the pass closes its access log when it
		// is done with it, and must not close the master's own.
		fd, err := unix.FcntlInt(std.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("opening access log on %s: %w", cfg.AccessLog.Path, err)
		}
		return os.NewFile(uintptr(fd), cfg.AccessLog.Path), nil
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
