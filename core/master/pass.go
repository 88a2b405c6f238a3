package master

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/core/listen"
	"github.com/phasedhq/phased/core/logging"
	"github.com/phasedhq/phased/core/privdrop"
	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/phases"
	"github.com/phasedhq/phased/plugins/host"
	"github.com/phasedhq/phased/sdk/mpm"
)

// pass is one configuration pass: configure, open-logs, post-config, and
// what it opened on the way. A pass that fails undoes itself; one that
// succeeds is either committed (its logs become the master's) or torn down
// (the rehearsal of the double start).
type pass struct {
	num     int
	gen     int
	cfg     *config.Config
	plan    *phases.Plan
	cfgPath string
	errlog  *logging.Log
	access  *os.File
	who     *privdrop.Identity // children's user; nil = the master's
	launch  *launcher
	hooks   *hookPlugins
	plugin  *host.Plugin // the MPM plugin, until the generation owns it
	policy  mpm.MPM
	limits  *mpm.ConfigureResponse
	board   *scoreboard.Board        // the generation's scoreboard, until it owns it
	oldLns  []*listen.Listener       // the listener set before the pass
	removed []*listen.Listener       // sockets the pass no longer wants, closed on commit
	tls     map[string]*contract.TLS // each TLS listener's material, by address
	// acmeHTTP is where ACME's HTTP-01 answers are, when a listener orders
	// certificates.
	acmeHTTP string
}

// runPass runs configuration pass num for generation gen. log is where the
// configure phase logs (the error log opens later in the pass). On failure
// everything the pass opened is closed and the listener set is as before.
func (m *Master) runPass(ctx context.Context, num, gen int, cfg *config.Config, log *slog.Logger) (p *pass, err error) {
	p = &pass{num: num, gen: gen, cfg: cfg, oldLns: append([]*listen.Listener(nil), m.lns.List()...)}
	defer func() {
		if err != nil {
			p.undo(m)
			err = fmt.Errorf("configuration pass %d: %w", num, err)
		}
	}()
	// The pass logs to the boot log (stderr) until phased:logs has opened
	// the error log, then there.
	plog := newLogSwitch(log.Handler())
	if p.plan, err = newPlan(cfg, m.builtinSteps(p, plog)...); err != nil {
		return p, err
	}
	if len(cfg.App.Command) > 0 {
		if _, err = appProgram(cfg); err != nil {
			return p, err
		}
	}
	if p.who, err = m.checkUser(cfg); err != nil {
		return p, err
	}
	b, err := cfg.JSON()
	if err != nil {
		return p, fmt.Errorf("writing the effective configuration: %w", err)
	}
	p.cfgPath = filepath.Join(m.rundir, fmt.Sprintf("config-pass-%d.json", num))
	if err = os.WriteFile(p.cfgPath, b, 0o600); err != nil {
		return p, fmt.Errorf("writing the effective configuration: %w", err)
	}
	if p.who != nil {
		// Children running as user read it; nobody else may.
		if err = os.Chown(p.cfgPath, int(p.who.UID), int(p.who.GID)); err != nil {
			return p, fmt.Errorf("handing the effective configuration to %s: %w", p.who, err)
		}
	}
	// Plugins are launched anew by every pass, as Apache reloads its
	// modules; their records follow the master's error log.
	level, _ := logging.ParseLevel(cfg.ErrorLog.Level)
	p.launch = &launcher{exe: m.exe, log: slog.New(m.logSw), level: level, socketDir: m.plugdir, dir: cfg.ServerRoot, who: p.who}
	if p.hooks, err = p.launch.launchHooks(ctx, p.plan, cfg.Hooks); err != nil {
		return p, err
	}
	info := phases.Info{Phase: phases.Configure, Pass: num, Generation: gen, Slot: -1, ConfigPath: p.cfgPath}
	log.Info("configuration pass", "pass", num, "generation", gen)
	if err = p.plan.Run(ctx, info, log); err != nil {
		return p, err
	}
	info.Phase = phases.OpenLogs
	if err = p.plan.Run(ctx, info, slog.New(plog)); err != nil {
		return p, err
	}
	if p.plugin, p.policy, p.limits, err = p.launch.configureMPM(ctx, cfg); err != nil {
		return p, err
	}
	for _, n := range p.limits.Notes {
		p.errlog.Logger().Warn(n, "mpm", MPMName(cfg.MPM.Name, p.limits))
	}
	if p.board, err = scoreboard.Create(fmt.Sprintf("phased-generation-%d", gen), p.limits.ServerLimit, p.limits.ThreadsPerChild); err != nil {
		return p, fmt.Errorf("creating the scoreboard: %w", err)
	}
	p.board.SetGeneration(gen)
	info.Phase = phases.PostConfig
	if err = p.plan.Run(ctx, info, p.errlog.Logger()); err != nil {
		return p, err
	}
	return p, nil
}

// The master's own work in the open-logs phase runs as Go hooks of the phase
// engine, as Apache registers its open_logs hook APR_HOOK_REALLY_FIRST:
// first the listeners are bound, then the error and access logs opened.
// They are in the resolved order `phased -S` prints, and a user's hook can
// run before them (order below BuiltinOrder, or before: [phased:listen]),
// for example to create the log folder.
const (
	// StepListen binds the listen addresses (pass 1 binds them, later
	// passes bind only what changed).
	StepListen = "phased:listen"
	// StepLogs opens the error log and the access log.
	StepLogs = "phased:logs"
	// StepTLS reads the TLS listeners' certificates and keys.
	StepTLS = "phased:tls"
	// BuiltinOrder is StepListen's order; StepLogs comes right after.
	BuiltinOrder = -1000
)

// builtinSteps returns the master's open-logs steps for pass p (nil to
// describe them only); plog is switched to the error log once it is open.
func (m *Master) builtinSteps(p *pass, plog *logSwitch) []phases.Step {
	listenStep := func(context.Context, *phases.HookContext) error {
		addrs := p.cfg.ListenAddrs()
		if m.opts.Activated != nil {
			addrs = m.lns.Addrs() // socket activation: systemd's sockets, always
		}
		var err error
		if p.removed, err = m.lns.Update(addrs, p.cfg.ListenBacklog); err != nil {
			return err
		}
		return acceptFilters(m.lns.List(), p.cfg)
	}
	logsStep := func(context.Context, *phases.HookContext) error {
		var err error
		if p.errlog, err = m.openErrorLog(p.cfg); err != nil {
			return err
		}
		if p.access, err = m.openAccessLog(p.cfg); err != nil {
			return err
		}
		plog.set(p.errlog.Logger().Handler())
		return nil
	}
	tlsStep := func(context.Context, *phases.HookContext) error {
		var err error
		if p.tls, err = loadTLS(p.cfg); err == nil {
			m.addACME(p)
		}
		return err
	}
	if p == nil {
		describeOnly := func(context.Context, *phases.HookContext) error {
			return errors.New("built-in step run outside a pass")
		}
		listenStep, logsStep, tlsStep = describeOnly, describeOnly, describeOnly
	}
	return []phases.Step{
		{Name: StepListen, Phase: phases.OpenLogs, Order: BuiltinOrder, Func: listenStep},
		{Name: StepLogs, Phase: phases.OpenLogs, Order: BuiltinOrder + 1, Func: logsStep},
		{Name: StepTLS, Phase: phases.OpenLogs, Order: BuiltinOrder + 2, Func: tlsStep},
	}
}

// NewPlan resolves cfg's hooks together with the master's built-in steps
// (which it only describes), for `phased -S` and `phased -t`.
func NewPlan(cfg *config.Config) (*phases.Plan, error) {
	return newPlan(cfg, (*Master)(nil).builtinSteps(nil, nil)...)
}

// newPlan resolves cfg's hooks, plus the master's steps, into a plan.
func newPlan(cfg *config.Config, steps ...phases.Step) (*phases.Plan, error) {
	hooks := make([]phases.Hook, len(cfg.Hooks))
	for i, h := range cfg.Hooks {
		hooks[i] = phases.Hook{Name: h.Name, Phase: h.Phase, Exec: h.Exec, Plugin: h.Plugin, Order: h.Order,
			Before: h.Before, After: h.After, Timeout: h.Timeout}
	}
	return phases.NewPlan(cfg.ServerRoot, hooks, steps...)
}

// undo closes what a failed pass opened and puts the listeners back.
func (p *pass) undo(m *Master) {
	p.hooks.kill()
	if p.plugin != nil {
		p.plugin.Kill()
	}
	if p.board != nil {
		p.board.Close()
	}
	if p.errlog != nil {
		p.errlog.Close()
	}
	closeFile(p.access)
	if p.cfgPath != "" {
		os.Remove(p.cfgPath)
	}
	m.lns.Reset(p.oldLns)
}

// teardown ends a rehearsal pass: its logs close, its listeners stay.
func (p *pass) teardown() {
	p.hooks.kill()
	if p.plugin != nil {
		p.plugin.Kill() // plugins are launched anew by every pass
	}
	if p.board != nil {
		p.board.Close()
	}
	if p.errlog != nil {
		p.errlog.Close()
	}
	closeFile(p.access)
	os.Remove(p.cfgPath)
	for _, l := range p.removed {
		l.Close()
	}
}

// commit makes the pass's logs and configuration the master's.
func (m *Master) commit(p *pass) {
	oldErr, oldAccess := m.errlog, m.access
	m.errlog, m.log, m.access, m.cfg, m.plan, m.passNum = p.errlog, p.errlog.Logger(), p.access, p.cfg, p.plan, p.num
	m.logSw.set(m.log.Handler())
	m.acme.next = time.Time{} // ACME looks at the new configuration's names at once
	if oldErr != nil {
		oldErr.Close()
	}
	closeFile(oldAccess)
}

// start runs the passes of a first start: pass 1 in the foreground, torn
// down, then pass 2 (the double start) unless double_start is off.
func (m *Master) start(ctx context.Context, boot *slog.Logger) (*pass, error) {
	p, err := m.runPass(ctx, 1, m.firstGen, m.cfg, boot)
	if err != nil {
		return nil, err
	}
	if !m.cfg.DoubleStart {
		return p, nil
	}
	p.teardown()
	p.errlog.Logger().Debug("pass 1 torn down; restarting once, as Apache does")
	cfg := m.cfg
	if m.opts.Reload != nil {
		if cfg, err = m.opts.Reload(); err != nil {
			return nil, fmt.Errorf("configuration pass 2: reading configuration: %w", err)
		}
	}
	return m.runPass(ctx, 2, m.firstGen, cfg, boot)
}

// runShutdown runs the shutdown phase once, as the master stops.
func (m *Master) runShutdown() {
	if m.plan == nil || len(m.plan.Steps(phases.Shutdown)) == 0 {
		return
	}
	path := filepath.Join(m.rundir, "config-shutdown.json")
	if b, err := m.cfg.JSON(); err == nil {
		os.WriteFile(path, b, 0o600)
	}
	cur, _ := m.sv.Current()
	info := phases.Info{Phase: phases.Shutdown, Pass: m.passNum, Generation: cur.Num, Slot: -1, ConfigPath: path}
	if err := m.plan.Run(context.Background(), info, m.log); err != nil {
		m.log.Error("shutdown phase failed", "err", err)
	}
}

// DryRun is `phased -t`: the configure phase only, with PHASED_DRY_RUN=1, as
// `httpd -t` runs Apache's config phase and nothing else. Beforehand it
// checks what would fail the start as surely: the children's user and
// group (and what they must be able to read and run), the log files'
// folders, the TLS material, and every plugin, as `httpd -t` loads its
// modules: the MPM is launched and runs Configure, every hook plugin
// (whatever its phase) is launched and runs Describe, and each is stopped.
func DryRun(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	plan, err := NewPlan(cfg)
	if err != nil {
		return err
	}
	if len(cfg.App.Command) > 0 {
		if _, err := appProgram(cfg); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := CheckMPM(ctx, cfg, log); err != nil {
		return err
	}
	if _, err := loadTLS(cfg); err != nil {
		return err
	}
	if _, err := checkIdentity(cfg, exe); err != nil {
		return err
	}
	if err := checkLogFolders(cfg, plan); err != nil {
		return err
	}
	if len(plan.Plugins()) == 0 && len(plan.Steps(phases.Configure)) == 0 {
		return nil
	}
	dir, err := os.MkdirTemp("", "phased-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.json")
	b, err := cfg.JSON()
	if err == nil {
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		return err
	}
	level, _ := logging.ParseLevel(cfg.ErrorLog.Level)
	l := &launcher{exe: exe, log: log, level: level, socketDir: dir, dir: cfg.ServerRoot}
	hooks, err := l.launchHooks(ctx, plan, cfg.Hooks)
	if err != nil {
		return err
	}
	defer hooks.kill()
	if len(plan.Steps(phases.Configure)) == 0 {
		return nil
	}
	info := phases.Info{Phase: phases.Configure, Pass: 1, Generation: 1, DryRun: true, Slot: -1, ConfigPath: path}
	return plan.Run(ctx, info, log)
}

// checkUser resolves user/group and, when children will run as someone
// else, proves before any child starts that they can run the child binary
// and read server_root and document_root: children that cannot would die at
// once, again and again.
func (m *Master) checkUser(cfg *config.Config) (*privdrop.Identity, error) {
	return checkIdentity(cfg, m.exe)
}

// checkIdentity is checkUser for the phased binary exe.
func checkIdentity(cfg *config.Config, exe string) (*privdrop.Identity, error) {
	who, err := privdrop.Resolve(cfg.User, cfg.Group)
	if err != nil || who == nil {
		return nil, err
	}
	if err := who.CheckExecutable("the phased binary", exe); err != nil {
		return nil, err
	}
	if len(cfg.App.Command) > 0 {
		bin, err := appProgram(cfg)
		if err != nil {
			return nil, err
		}
		if err := who.CheckExecutable("app.command", bin); err != nil {
			return nil, err
		}
	}
	if err := who.CheckReadable("server_root", cfg.ServerRoot); err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.DocumentRoot); err == nil {
		if err := who.CheckReadable("document_root", cfg.DocumentRoot); err != nil {
			return nil, err
		}
	}
	return who, nil
}

// checkLogFolders fails when the folder of error_log.path or
// access_log.path does not exist, naming the key, as Apache's `httpd -t`
// refuses an ErrorLog in a missing directory: the open-logs phase would fail
// to create the file. A hook that runs before phased:logs (in the configure
// phase, or ordered before it in open-logs) may create the folder, so then
// the check is left to the start.
func checkLogFolders(cfg *config.Config, plan *phases.Plan) error {
	for _, s := range plan.Steps(phases.Configure) {
		if s.Index >= 0 {
			return nil
		}
	}
	for _, s := range plan.Steps(phases.OpenLogs) {
		if s.Name == StepLogs {
			break
		}
		if s.Index >= 0 {
			return nil
		}
	}
	for _, l := range []struct{ key, path string }{
		{"error_log.path", cfg.ErrorLog.Path},
		{"access_log.path", cfg.AccessLog.Path},
	} {
		switch l.path {
		case "", "stderr", "stdout":
			continue
		}
		dir := filepath.Dir(l.path)
		fi, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%s: folder %s does not exist (create it, or have a hook before phased:logs create it)", l.key, dir)
		case err != nil:
			return fmt.Errorf("%s: %w", l.key, err)
		case !fi.IsDir():
			return fmt.Errorf("%s: %s is not a folder", l.key, dir)
		}
	}
	return nil
}

// cleanStaleRundirs removes the runtime folders (effective configurations,
// plugin sockets, accept locks) that masters which died without cleaning up
// left in the temporary directory: phased-PID-*, where PID is no longer a
// live process.
func cleanStaleRundirs(log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "phased-*-*"))
	for _, d := range dirs {
		parts := strings.SplitN(filepath.Base(d), "-", 3)
		pid, err := strconv.Atoi(parts[1])
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "plugins")); err != nil {
			continue // not a master's runtime folder
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its master may be alive
		}
		if err := os.RemoveAll(d); err == nil {
			log.Info("removed a dead master's runtime folder", "path", d)
		}
	}
}

// appProgram finds app.command's program, as the children will run it: a
// path, or a name on the PATH. A program that is missing or not executable
// fails the configuration pass, naming the key, before any child starts.
func appProgram(cfg *config.Config) (string, error) {
	bin := cfg.App.Command[0]
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("app.command[0]: %w", err)
	}
	return path, nil
}

// acceptFilters sets each listener's accept_filter: with "data" the kernel
// keeps a connection until its first bytes come, for up to
// deferAcceptFor; with "none" (the default, and systemd's sockets, which
// no listen entry names) it hands it over at once.
func acceptFilters(list []*listen.Listener, cfg *config.Config) error {
	for _, l := range list {
		d, key := time.Duration(0), "listen"
		for i, e := range cfg.Listen {
			if e.Address == l.Addr {
				key = fmt.Sprintf("listen[%d].accept_filter", i)
				if e.DeferAccept() {
					d = deferAcceptFor
				}
				break
			}
		}
		if err := l.DeferAccept(d); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}

// deferAcceptFor is how long the kernel keeps a connection that has sent
// nothing from the children: a second, as nginx's "deferred" (Apache asks
// for 30). Longer is worse: a flood of connections beyond what the
// children take (10,000 keep-alive clients on a worker server of 150
// threads) left the kernel's queue of half-open connections full of
// deferred ones, and with read_header's 10 s new clients could not
// connect for seconds after the flood ended (with 1 s: none lost).
const deferAcceptFor = time.Second
