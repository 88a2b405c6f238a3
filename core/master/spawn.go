package master

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/core/supervisor"
	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/cpuset"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/phases"
	"github.com/phasedhq/phased/sdk/hook"
)

// spawn starts child id of g in slot: phased itself in child mode, or the
// app.command, with the child's contract (internal/contract) and the
// descriptors it names.
func (m *Master) spawn(g *generation, slot int, id supervisor.ChildID) (int, error) {
	if g == nil {
		return 0, errors.New("no such generation")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer w.Close()
	c, files := m.childContract(g, slot)
	c.Events = files.Add(contract.FileEvents, w)
	appDir := ""
	if c.App != nil {
		if appDir, err = m.appDir(g, slot, id); err != nil {
			r.Close()
			return 0, err
		}
		c.App.Dir = appDir
	}
	fail := func(err error) (int, error) {
		r.Close()
		if appDir != "" {
			os.RemoveAll(appDir)
		}
		return 0, err
	}
	enc, err := contract.Encode(c, files)
	if err != nil {
		return fail(err)
	}
	defer enc.Close()
	path, args := m.exe, []string{contract.ChildArg}
	goApp := g.cfg.App.Type == config.AppGo
	if goApp {
		path, args = g.cfg.App.Command[0], g.cfg.App.Command[1:]
	}
	cmd := exec.Command(path, args...)
	cmd.Args[0] = "phased: child" // what ps shows, as Apache's children show their title
	if goApp {
		cmd.Args[0] = g.cfg.App.Command[0]
	}
	cpus, bound := g.childCPUs(slot)
	cmd.Env = append(m.childEnv(g, cpus), enc.Env)
	cmd.Dir = g.cfg.ServerRoot
	cmd.ExtraFiles = enc.ExtraFiles
	out := m.errlog.File()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM, Credential: g.who.Credential()}
	var baseReq, baseBytes uint64 // the slot's counters so far: its earlier children's
	if slot < g.board.Procs() {
		baseReq, baseBytes, _ = slotTotals(g, slot)
	}
	start := cmd.Start
	if bound {
		start = func() error { return cpuset.Start(cmd, cpus) }
	}
	if err := start(); err != nil {
		return fail(err)
	}
	pid := cmd.Process.Pid
	m.procs[id] = &proc{id: id, pid: pid, gen: g, slot: slot, cmd: cmd, appDir: appDir, baseRequests: baseReq, baseBytes: baseBytes}
	m.byPID[pid] = id
	m.counters.Add(scoreboard.Spawned, 1)
	g.hooks.notify(hook.ChildEventRequest{Kind: hook.ChildSpawned, PID: pid, Slot: slot, Generation: g.num}, m.log)
	m.log.Debug("child started", "pid", pid, "generation", g.num, "slot", slot)
	said := make(chan struct{})
	go func() {
		defer close(said)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			m.events <- event{kind: evMsg, pid: pid, msg: sc.Text()}
		}
	}()
	go func() {
		cmd.Wait()
		// What the child said before it exited (why its child-init
		// failed) comes first, unless a process it left holds the pipe.
		select {
		case <-said:
		case <-time.After(time.Second):
		}
		m.events <- event{kind: evExit, pid: pid, state: cmd.ProcessState}
	}()
	return pid, nil
}

// childContract is what a child of g in slot is given, but for its events
// pipe: the contract and the descriptors it names.
func (m *Master) childContract(g *generation, slot int) (contract.Child, *contract.Files) {
	files := &contract.Files{}
	cfg := g.cfg
	format := "json"
	if m.errlog.Text() {
		format = "text"
	}
	c := contract.Child{
		Generation: g.num, Pass: g.pass, Slot: slot, MasterPID: os.Getpid(),
		MasterStart: m.started, GenerationStart: g.started, ConfigPath: g.cfgPath,
		MPM: g.mpmName(), ServerVersion: m.opts.Version, Model: string(g.limits.Model), Threads: g.limits.ThreadsPerChild,
		MaxConnections: connectionLimit(g.limits), AcceptMutex: g.mutex,
		AcceptWakeOne: g.limits.AcceptMutex == "epoll",
		Scoreboard:    files.Add(contract.FileScoreboard, g.board.File()),
		Counters:      files.Add(contract.FileCounters, m.counters.File()),
		Log:           contract.Log{Format: format, Level: cfg.ErrorLog.Level},
		Timeouts: contract.Timeouts{ReadHeader: cfg.Timeouts.ReadHeader, Read: cfg.Timeouts.Read, Write: cfg.Timeouts.Write,
			Idle: cfg.Timeouts.Idle, MinRate: cfg.Timeouts.MinRate, Drain: cfg.GracefulShutdownTimeout},
		WorkerConnections: cfg.WorkerConnections,
		Status: contract.Status{Path: cfg.Status.Path, Allow: slices.Clone(cfg.Status.Allow), Metrics: cfg.Status.Metrics,
			SlowRequest: cfg.Status.SlowRequest},
		Health: contract.Health{Liveness: cfg.Health.LivenessPath, Readiness: cfg.Health.ReadinessPath,
			Allow: slices.Clone(cfg.Health.Allow)},
		TrustedProxies: slices.Clone(cfg.TrustedProxies),
		RealIPHeader:   cfg.RealIPHeader,
		Hooks:          childHooks(g),
	}
	if cfg.App.Type != config.AppGo {
		c.Static = &contract.Static{Root: cfg.DocumentRoot, Listing: cfg.DirectoryListing}
	}
	if a := cfg.App; a.Type == config.AppHTTP || a.Type == config.AppFastCGI || a.Type == config.AppCGI {
		c.App = &contract.App{Type: a.Type, Command: slices.Clone(a.Command), Env: maps.Clone(a.Env), Listen: a.Listen,
			HealthCheck: a.HealthCheck, StartTimeout: a.StartTimeout, StopSignal: a.StopSignal, StopTimeout: a.StopTimeout, ReadTimeout: a.ReadTimeout,
			SendfilePaths: slices.Clone(a.SendfilePaths), MaxBodySize: int64(a.MaxBodySize), BodyBufferSize: int64(a.BodyBufferSize),
			ResponseBufferSize: int64(a.ResponseBufferSize),
			MaxTempFileSize:    int64(a.MaxTempFileSize), FastCGIAddress: a.FastCGI.Address, FastCGIIndex: slices.Clone(a.FastCGI.Index),
			FastCGIExtensions: slices.Clone(a.FastCGI.Extensions), CGIPaths: maps.Clone(a.CGI.Paths), CGITimeout: a.CGI.Timeout}
	}
	opts := map[string]config.Listener{}
	for _, l := range cfg.Listen {
		opts[l.Address] = l
	}
	anyTLS := false
	for i, l := range m.lns.List() {
		cl := contract.Listener{Addr: l.Addr, File: files.Add(contract.ListenerFile(i), l.File), TLS: g.tls[l.Addr]}
		if o, ok := opts[l.Addr]; ok {
			cl.H2C, cl.RedirectHTTPS, cl.ProxyProtocol = o.H2C, o.RedirectHTTPS, o.ProxyProtocol
		}
		anyTLS = anyTLS || cl.TLS != nil
		c.Listeners = append(c.Listeners, cl)
	}
	if anyTLS {
		c.Tickets = files.Add(contract.FileTickets, m.tickets.File())
	}
	c.ACMEChallenges = g.acmeHTTP
	if m.access != nil {
		c.AccessLog = &contract.AccessLog{File: files.Add(contract.FileAccessLog, m.access), Format: cfg.AccessLog.Format}
	}
	return c, files
}

// childEnv is a child's environment: the master's own without what phased
// keeps for itself (contract.Environ), app.env, and GOMAXPROCS (see
// childProcs; no more than the child's CPUs when it is bound to some,
// cpus, empty when not). The contract's variable is added by spawn.
func (m *Master) childEnv(g *generation, cpus cpuset.Set) []string {
	env := contract.Environ(os.Environ())
	keys := make([]string, 0, len(g.cfg.App.Env))
	for k := range g.cfg.App.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+g.cfg.App.Env[k])
	}
	if _, set := g.cfg.App.Env["GOMAXPROCS"]; !set && os.Getenv("GOMAXPROCS") == "" {
		n := childProcs(g.limits)
		if c := cpus.Count(); c > 0 && n > c {
			n = c // Go's default for a bound process, when n is 0
		}
		if n > 0 {
			env = append(env, "GOMAXPROCS="+strconv.Itoa(n))
		}
	}
	return env
}

// childHooks are the generation's child-init and child-exit exec hooks, in
// the order they run.
func childHooks(g *generation) []contract.Hook {
	var hooks []contract.Hook
	for _, ph := range []phases.Phase{phases.ChildInit, phases.ChildExit} {
		for _, s := range g.plan.Steps(ph) {
			if len(s.Exec) > 0 {
				hooks = append(hooks, contract.Hook{Name: s.Name, Phase: ph, Argv: s.Exec, Dir: g.cfg.ServerRoot, Timeout: s.Timeout})
			}
		}
	}
	return hooks
}

// appDir makes the folder child id of g in slot owns for its app server:
// its socket and temporary files, private to the child's user. It is
// removed when the child has exited.
func (m *Master) appDir(g *generation, slot int, id supervisor.ChildID) (string, error) {
	dir := filepath.Join(m.rundir, fmt.Sprintf("app-%d-%d-%d", g.num, slot, id))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("the app's folder: %w", err)
	}
	if g.who != nil {
		if err := os.Chown(dir, int(g.who.UID), int(g.who.GID)); err != nil {
			os.Remove(dir)
			return "", fmt.Errorf("the app's folder: %w", err)
		}
	}
	return dir, nil
}
