package master

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/core/listen"
	"github.com/phasedhq/phased/core/privdrop"
	"github.com/phasedhq/phased/core/supervisor"
	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/cpuset"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/phases"
	"github.com/phasedhq/phased/plugins/host"
	"github.com/phasedhq/phased/sdk/mpm"
)

// generation is what a generation of children holds, as the executor
// sees it: what its pass made. Its life (ready, draining, done) is the
// supervisor's.
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
	// oldLns and removed are the listener set before the pass that made
	// the generation and the sockets it no longer wants: put back if the
	// generation never serves, closed once it does.
	oldLns  []*listen.Listener
	removed []*listen.Listener
	// tls is each TLS listener's certificates and settings, by address.
	tls map[string]*contract.TLS
	// acmeHTTP is where ACME's HTTP-01 answers are, "" = none.
	acmeHTTP string
	// cpus is worker_cpu_affinity, of the CPUs allowed when the generation
	// was made.
	cpus    cpuset.Spec
	allowed cpuset.Set
}

// proc is a child process.
type proc struct {
	id     supervisor.ChildID
	pid    int
	gen    *generation
	slot   int
	cmd    *exec.Cmd
	appDir string // the folder its app server uses; removed when it has exited
	// initErr is why its child-init failed, as it said before exiting.
	initErr string
	// baseRequests and baseBytes are the slot's counters when the child
	// was spawned: what earlier children in the slot served.
	baseRequests, baseBytes uint64
}

// newGeneration takes what pass p made as a new generation.
func (m *Master) newGeneration(p *pass) *generation {
	g := &generation{num: p.gen, started: time.Now(), pass: p.num, cfg: p.cfg, cfgPath: p.cfgPath, plan: p.plan,
		who: p.who, launch: p.launch, hooks: p.hooks, plugin: p.plugin, policy: p.policy, limits: p.limits, board: p.board,
		oldLns: p.oldLns, removed: p.removed, tls: p.tls, acmeHTTP: p.acmeHTTP}
	p.board, p.plugin, p.hooks = nil, nil, nil // the generation owns them now
	g.board.Beat(time.Now())
	if m.stopping {
		g.board.SetStopping() // a restart that ends during a drain delay
	}
	if g.limits.AcceptMutex == "flock" {
		g.mutex = m.acceptLocks(g)
	}
	g.affinity(m.log)
	m.gens[g.num] = g
	m.newestGen = max(m.newestGen, g.num)
	return g
}

// affinity reads worker_cpu_affinity for g's children. The configuration
// was checked against the CPUs allowed then; should they have changed
// since (a container's cpuset), the children are not bound.
func (g *generation) affinity(log *slog.Logger) {
	var err error
	if g.allowed, err = cpuset.Allowed(); err == nil {
		g.cpus, err = cpuset.Parse(g.cfg.WorkerCPUAffinity, g.allowed)
	}
	if err != nil {
		log.Warn("worker_cpu_affinity: children not bound to CPUs", "generation", g.num, "err", err)
		g.cpus = cpuset.None
	}
}

// childCPUs is the CPUs g's child in slot is bound to; ok false: none.
func (g *generation) childCPUs(slot int) (set cpuset.Set, ok bool) {
	return g.cpus.For(slot, g.limits.StartServers, g.allowed)
}

// spec is the generation as the supervisor sees it. Children that run an
// app server (app.type http or fastcgi with a command) get its
// app.start_timeout to become ready, and its app.stop_timeout to exit once
// told to stop, before SIGKILL.
func (g *generation) spec() supervisor.GenSpec {
	var start, stop time.Duration
	if a := g.cfg.App; (a.Type == config.AppHTTP || a.Type == config.AppFastCGI) && len(a.Command) > 0 {
		start, stop = a.StartTimeout, a.StopTimeout
	}
	return supervisor.GenSpec{Num: g.num, StartServers: g.limits.StartServers, ServerLimit: g.limits.ServerLimit,
		ThreadsPerChild: g.limits.ThreadsPerChild, DrainTimeout: g.cfg.GracefulShutdownTimeout, DrainDelay: g.cfg.Health.DrainDelay,
		StartTimeout: start,
		StopTimeout:  stop, MPM: g.mpmName(), Plugin: g.plugin.Name(), PluginPID: g.plugin.PID()}
}

// mpmName is what the generation's MPM is called in logs, metrics and
// status: see MPMName.
func (g *generation) mpmName() string { return MPMName(g.cfg.MPM.Name, g.limits) }

// MPMName is what an MPM is called in the log, the status page's
// ServerMPM, metrics' labels and `phased status`: the name the plugin gives
// itself in its ConfigureResponse, or else a built-in's mpm.name, or a
// plugin file's base name (mpm.name is its path).
func MPMName(name string, limits *mpm.ConfigureResponse) string {
	if limits != nil && limits.Name != "" {
		return limits.Name
	}
	if strings.Contains(name, "/") {
		return filepath.Base(name)
	}
	return name
}

// beat tells every generation's children the master's event loop runs
// (their liveness probe reads it).
func (m *Master) beat(now time.Time) {
	for _, g := range m.gens {
		g.board.Beat(now)
	}
}

// beatWhile runs f, which holds up the event loop (a configuration pass
// whose hooks may run for minutes), beating for the loop meanwhile: the
// master is busy, not wedged, and its children stay live.
func (m *Master) beatWhile(f func()) {
	boards := make([]*scoreboard.Board, 0, len(m.gens))
	for _, g := range m.gens {
		boards = append(boards, g.board) // released only by the loop, which waits for f
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				for _, b := range boards {
					b.Beat(now)
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()
	f()
}

// release lets go of what a finished generation held.
func (g *generation) release() {
	os.Remove(g.cfgPath)
	g.board.Close()
	g.hooks.kill()
	go g.plugin.Kill()
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

// childProcs is the GOMAXPROCS a child of an MPM with these limits gets
// when neither the master's environment nor app.env sets one; 0 leaves the
// Go default (every core). A prefork child serves one connection at a
// time: one P is all it can use, and dozens of children each running a
// scheduler for every core only contend for the cores.
//
// A threaded child (worker, event) gets its share of the cores,
// ceil(cores / start_servers), where cores is the master's own GOMAXPROCS
// (the cores it may run on, a container's CPU limit included): its siblings serve about as many
// connections as it does (an event child well above the sibling with
// fewest waits before it accepts, gate.balance; a worker child takes no
// more connections than it has threads), so together they use every
// core, and a child whose threads do not outnumber its share wakes fewer
// of them per connection it accepts (a P with nothing to run parks its
// thread, and the next goroutine made wakes one): with 2 children on 2
// cores, one P each cut the CPU time of a `Connection: close` request by
// about a tenth, keep-alive throughput unchanged. One child alone keeps
// every core.
func childProcs(l *mpm.ConfigureResponse) int {
	switch {
	case l.Model == mpm.Prefork:
		return 1
	case l.StartServers > 1:
		cores := runtime.GOMAXPROCS(0)
		return (cores + l.StartServers - 1) / l.StartServers
	}
	return 0
}
