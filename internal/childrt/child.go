package childrt

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/phasedhq/phased/internal/acceptmutex"
	"github.com/phasedhq/phased/internal/accesslog"
	"github.com/phasedhq/phased/internal/clientip"
	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/exechook"
	"github.com/phasedhq/phased/internal/h2"
	"github.com/phasedhq/phased/internal/loglevel"
	"github.com/phasedhq/phased/internal/phase"
	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/internal/sockconn"
	"github.com/phasedhq/phased/internal/status"
	"github.com/phasedhq/phased/internal/tickets"
)

// ErrChildInit is returned by Serve when a child-init hook failed: the
// process should exit with contract.ExitChildInit, so that the master backs
// off before replacing it.
var ErrChildInit = errors.New("child-init failed")

// DrainSignal is the signal with which the master tells a child to drain
// now; see contract.DrainSignal.
const DrainSignal = contract.DrainSignal

// retireRequestBound is how long a child that asked to retire waits for the
// master's DrainSignal before it drains on its own. The master answers
// within its own hand-over bound (the replacement's start, child-init
// included), which is shorter.
const retireRequestBound = 30 * time.Second

// quietPeriod is how long a keep-alive connection must stay idle during a
// drain before the child closes it. A client that sends its next request
// within it gets an answer with "Connection: close" instead of a reset.
const quietPeriod = 500 * time.Millisecond

// ErrNotChild is returned by Current when the process was not started by a
// phased master.
var ErrNotChild = contract.ErrNotChild

// Timeouts bound slow clients. MinRate is the slowest, in bytes a second,
// a request's header or body may arrive once half of ReadHeader is past
// (from the header's first byte; mod_reqtimeout's MinRate); 0 turns it off.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
	MinRate                       int
}

// Runtime is a child's view of what its master gave it.
type Runtime struct {
	// Generation is the child's generation (1 at first start).
	Generation int
	// Pass is the configuration pass that made the generation.
	Pass int
	// Slot is the child's slot within its generation.
	Slot int
	// MasterPID is the master's pid.
	MasterPID int
	// Log is the child's error log (stderr, which the master points at its
	// error log), tagged with pid, generation and slot.
	Log *slog.Logger
	// Timeouts are the server timeouts.
	Timeouts Timeouts
	// DrainTimeout bounds a graceful drain.
	DrainTimeout time.Duration
	// Model is the child model; ModelWorker when the master names none.
	Model Model
	// Threads is the number of slots; 0 means no limit (no scoreboard).
	Threads int
	// MaxConnections retires the child after that many connections; 0 =
	// never.
	MaxConnections uint64
	// WorkerConnections bounds the connections an event child holds at
	// once (nginx's worker_connections); 0 derives it from the descriptor
	// limit (defaultWorkerConnections). The worker and prefork models hold
	// one connection per slot.
	WorkerConnections int
	// Fast, when set, answers the plainest requests without net/http (see
	// FastResponder); the handler Serve is given answers all others.
	Fast FastResponder
	// Forward, when set (and Fast is not), forwards the plainest requests
	// to an app server without net/http (see FastForwarder).
	Forward FastForwarder
	// Files, with Forward, are the files in front of the app: the fast
	// path serves what they hold and forwards what they do not (see
	// FastFiles).
	Files FastFiles
	// Contract is what the master gave the child; nil in tests and outside
	// phased.
	Contract *contract.Child

	listeners  []net.Listener
	addrs      []string
	lopts      []contract.Listener // each listener's TLS and options, from the contract
	tickets    *tickets.Keys       // the TLS session ticket keys all children share
	acmeDir    string              // ACME HTTP-01 answers, "" = none
	hooks      []contract.Hook
	board      *scoreboard.Board
	counters   *scoreboard.Counters
	status     *status.Module
	health     *health
	realIP     *clientip.Resolver
	trusted    clientip.Nets // trusted_proxies
	events     *os.File
	access     *accesslog.Writer
	format     accesslog.Format
	slow       time.Duration
	failed     chan error // Fail's errors
	cpuProfile *os.File   // CPUProfileEnv's, while it is written

	acceptMu    sync.Mutex
	acceptWaits []acceptmutex.Wait // each listener's, for watchAccept
}

// watchAccept returns what listener i of n reports its accept loop's state
// to: the scoreboard records the most telling state of any listener (one
// holding the lock over one waiting), with the time, so that the master can
// tell a child stopped in its accept loop.
func (r *Runtime) watchAccept(i, n int) func(acceptmutex.Wait) {
	r.acceptMu.Lock()
	if len(r.acceptWaits) < n {
		r.acceptWaits = make([]acceptmutex.Wait, n)
	}
	r.acceptMu.Unlock()
	return func(w acceptmutex.Wait) {
		if r.board == nil {
			return
		}
		r.acceptMu.Lock()
		defer r.acceptMu.Unlock()
		r.acceptWaits[i] = w
		most := acceptmutex.NotWaiting
		for _, w := range r.acceptWaits {
			most = max(most, w)
		}
		sw := scoreboard.NotAccepting
		switch most {
		case acceptmutex.Waiting:
			sw = scoreboard.AcceptWaiting
		case acceptmutex.WaitingLocked:
			sw = scoreboard.AcceptHoldingLock
		}
		r.board.Proc(r.Slot).SetAcceptWait(sw)
	}
}

// Current reads the runtime from the contract the master gave the process
// (contract.Read) and takes its descriptors. It returns ErrNotChild outside
// phased; any other error names what is wrong, and the child should exit.
func Current() (*Runtime, error) {
	c, err := contract.Read()
	if err != nil {
		return nil, err
	}
	return fromContract(c)
}

// fromContract builds a runtime from c, taking the descriptors it names.
func fromContract(c *contract.Child) (r *Runtime, err error) {
	r = &Runtime{
		Generation:   c.Generation,
		Pass:         c.Pass,
		Slot:         c.Slot,
		MasterPID:    c.MasterPID,
		DrainTimeout: c.Timeouts.Drain,
		Timeouts: Timeouts{ReadHeader: c.Timeouts.ReadHeader, Read: c.Timeouts.Read, Write: c.Timeouts.Write, Idle: c.Timeouts.Idle,
			MinRate: c.Timeouts.MinRate},
		WorkerConnections: c.WorkerConnections,
		Model:             Model(c.Model),
		Threads:           c.Threads,
		MaxConnections:    uint64(c.MaxConnections),
		Contract:          c,
		hooks:             c.Hooks,
		slow:              c.Status.SlowRequest,
		failed:            make(chan error, 1),
	}
	if r.DrainTimeout <= 0 {
		r.DrainTimeout = 30 * time.Second
	}
	if r.Model == ModelPrefork {
		r.Threads = 1
	}
	level, _ := loglevel.Parse(c.Log.Level) // the contract checked it
	r.Log = newLogger(os.Stderr, c.Log.Format, level).With("pid", os.Getpid(), "generation", r.Generation, "slot", r.Slot)
	defer func() {
		if err != nil {
			r.closeListeners()
		}
	}()
	if c.Scoreboard != "" {
		f, err := c.File(c.Scoreboard)
		if err != nil {
			return nil, err
		}
		b, err := scoreboard.Open(f)
		if err != nil {
			return nil, fmt.Errorf("scoreboard: %w", err)
		}
		if r.Slot >= b.Procs() || r.Threads > b.ThreadsPerProc() {
			return nil, fmt.Errorf("scoreboard: slot %d x %d threads does not fit a %d x %d scoreboard", r.Slot, r.Threads, b.Procs(), b.ThreadsPerProc())
		}
		r.board = b
	}
	if c.Counters != "" {
		f, err := c.File(c.Counters)
		if err != nil {
			return nil, err
		}
		if r.counters, err = scoreboard.OpenCounters(f); err != nil {
			return nil, fmt.Errorf("counters: %w", err)
		}
	}
	for i, l := range c.Listeners {
		f, err := c.File(l.File)
		if err != nil {
			return nil, err
		}
		var ln net.Listener
		var am *acceptmutex.Listener
		switch {
		case c.AcceptMutex != "":
			am, err = acceptmutex.Listen(f, c.AcceptMutex+"."+strconv.Itoa(i))
		case c.AcceptWakeOne:
			am, err = acceptmutex.ListenWakeOne(f)
		default:
			// A TCP socket: sockconn's accept sets no options per
			// connection (the listening socket's are inherited); any
			// other (a unix socket): net's. A TCP socket sockconn
			// refuses (a setsockopt that failed) is served by net's
			// too, with a warning: the same service, more system calls.
			sl, serr := sockconn.Listen(f)
			if serr == nil {
				ln = sl
				break
			}
			if !errors.Is(serr, sockconn.ErrNotTCP) {
				r.Log.Warn("listener served by Go's accept instead of phased's", "listen", l.Addr, "err", serr)
			}
			ln, err = net.FileListener(f)
		}
		if am != nil {
			am.Watch(r.watchAccept(i, len(c.Listeners)))
			ln = am
		}
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("inherited listener %s (%s): %w", l.Addr, l.File, err)
		}
		r.listeners = append(r.listeners, ln)
		r.addrs = append(r.addrs, l.Addr)
		r.lopts = append(r.lopts, l)
	}
	if r.board != nil && r.counters != nil {
		r.status, err = status.New(status.Options{Path: c.Status.Path, MetricsPath: c.Status.Metrics, Allow: c.Status.Allow,
			Certificates: certificates(c.Listeners),
			Version:      c.ServerVersion, MPM: c.MPM, Async: r.Model == ModelEvent, MasterPID: r.MasterPID, Generation: r.Generation,
			MasterStart: c.MasterStart, GenerationStart: c.GenerationStart, Listeners: r.addrs, Board: r.board, Counters: r.counters})
		if err != nil {
			return nil, err
		}
	}
	allow, err := clientip.ParseNets(c.Health.Allow)
	if err != nil {
		return nil, fmt.Errorf("health.allow: %w", err)
	}
	r.health = newHealth(c.Health.Liveness, c.Health.Readiness, allow, r.board)
	if r.trusted, err = clientip.ParseNets(c.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted_proxies: %w", err)
	}
	if r.realIP, err = clientip.NewResolver(r.trusted, cmp.Or(c.RealIPHeader, clientip.XForwardedFor)); err != nil {
		return nil, fmt.Errorf("real_ip_header: %w", err)
	}
	if c.Tickets != "" {
		f, err := c.File(c.Tickets)
		if err != nil {
			return nil, err
		}
		if r.tickets, err = tickets.Open(f); err != nil {
			return nil, err
		}
	}
	r.acmeDir = c.ACMEChallenges
	if c.Events != "" {
		if r.events, err = c.File(c.Events); err != nil {
			return nil, err
		}
	}
	if al := c.AccessLog; al != nil {
		format, err := accesslog.ParseFormat(al.Format)
		if err != nil {
			return nil, fmt.Errorf("access log: %w", err)
		}
		f, err := c.File(al.File)
		if err != nil {
			return nil, err
		}
		r.format = format
		counters := r.counters
		path := f.Name()
		if p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err == nil {
			path = p // the file the master opened, for the error log
		}
		r.access = accesslog.NewWriter(f, accesslog.WriterOptions{
			BufferSize: accessLogBatch(f),
			Log:        r.Log.With("access_log", path),
			OnDrop: func(lines int, _ error) {
				counters.Add(scoreboard.AccessLogDroppedLines, uint64(lines))
				counters.Add(scoreboard.AccessLogWriteErrors, 1)
			},
		})
	}
	return r, nil
}

// pipeBuf is Linux's PIPE_BUF: a write to a pipe of at most this many
// bytes reaches it whole, never interleaved with another writer's.
const pipeBuf = 4096

// accessLogBatch is the largest batch of access-log lines a child writes
// at once to f: the Writer's default for a file (Linux makes each write to
// an O_APPEND file atomic), pipeBuf for a pipe or anything else (the
// master's stdout that a container's log collector reads), where a larger
// write may be split and interleaved with another child's lines.
func accessLogBatch(f *os.File) int {
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		return 0
	}
	return pipeBuf
}

// Fail makes a serving child stop at once and Serve return err: something
// it cannot serve without (its app server) is gone. Only the first call
// counts.
func (r *Runtime) Fail(err error) {
	if r.failed == nil {
		return
	}
	select {
	case r.failed <- err:
	default:
	}
}

// SetAppPID records in the scoreboard the app server the child owns, for
// the status page and `phased status`.
func (r *Runtime) SetAppPID(pid int) {
	if r.board != nil {
		r.board.Proc(r.Slot).SetAppPID(pid)
	}
}

func (r *Runtime) closeListeners() {
	for _, ln := range r.listeners {
		ln.Close()
	}
}

func (r *Runtime) event(name contract.Event) {
	if r.events == nil {
		return
	}
	if _, err := r.events.WriteString(string(name) + "\n"); err != nil {
		r.Log.Debug("could not tell the master", "event", name, "err", err)
	}
}

// failInit ends a child whose child-init failed: it stops listening, logs
// why, tells the master (which adds the reason to the child's exit status,
// so a restart that fails for it says why), and returns err wrapped in
// ErrChildInit.
func (r *Runtime) failInit(err error) error {
	r.closeListeners()
	r.Log.Error("child-init failed; this child exits", "err", err)
	r.event(contract.Event(contract.InitFailedLine(err.Error())))
	return fmt.Errorf("%w: %w", ErrChildInit, err)
}

// Serve serves h on the inherited listeners until the child is told to stop,
// then drains as the package documentation describes. It returns nil after a
// clean drain.
func (r *Runtime) Serve(h http.Handler) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGWINCH, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	return r.serve(h, sigs)
}

func (r *Runtime) serve(h http.Handler, sigs <-chan os.Signal) error {
	if err := r.runHooks(phase.ChildInit); err != nil {
		return r.failInit(err)
	}
	s := newServer(r, h)
	// With a master, a child that wants to go (max_connections_per_child,
	// an operator's SIGUSR1 or SIGTERM) asks it and goes on accepting until
	// its replacement is ready: retiring never leaves fewer children
	// accepting.
	withMaster := r.events != nil && r.MasterPID != 0
	var limit <-chan struct{}
	if s.cap != nil {
		limit = s.cap.limitHit
		s.cap.pastLimit = withMaster // before any accept
		if r.Model != ModelEvent {
			rl := &reclaimLog{counters: r.counters, log: r.Log, slots: r.Threads, warn: warnEvery{every: reclaimWarn}}
			atLimit := func() uint64 { return r.counters.Get(scoreboard.MaxChildrenReached) }
			go s.cap.reclaimer(queuedAll(r.listeners), atLimit, rl.reclaimed)
		}
	}
	errc := make(chan error, len(s.gates))
	// The goroutines that accept are part of the start: the start's pages
	// of the binary are let go once they wait in Accept (memory.go).
	var accepting startGroup
	if s.fastOn() {
		// net/http's server for connections the fast path hands over,
		// started before the accept loops. Its stack grown first: see
		// stack.go.
		l := accepting.add(handoffListener{s})
		go func() { growStack(); s.srv.Serve(l) }()
	}
	for i, ln := range s.gates {
		if s.fastOn() && !s.slowPath[i] {
			l := accepting.add(ln)
			go func() { errc <- s.acceptFast(l) }()
		} else {
			l := accepting.add(framingListener{ln})
			go func() { growStack(); errc <- s.srv.Serve(l) }()
		}
	}
	s.setProc(scoreboard.Idle)
	r.event(contract.EventReady)
	accepting.wait(startWaitBound)
	r.afterReady()
	r.Log.Debug("child serving", "listen", strings.Join(r.addrs, ","), "model", string(r.Model), "threads", r.Threads)
	var asked <-chan time.Time // set once this child asked the master to retire it
	askToRetire := func(event contract.Event, why string, attrs ...any) {
		if asked == nil {
			r.Log.Info(why+"; serving until the replacement is ready", attrs...)
			r.event(event)
			asked = time.After(retireRequestBound)
		}
	}

	for {
		select {
		case <-limit:
			limit = nil
			if withMaster {
				askToRetire(contract.EventRetireMaxConnections, "child reached max_connections_per_child; asking to retire", "connections", r.MaxConnections)
				continue
			}
			r.Log.Info("child reached max_connections_per_child; retiring", "connections", r.MaxConnections)
			return r.drain(s, r.DrainTimeout, sigs)
		case <-asked:
			r.Log.Warn("the master did not answer the retire request; draining now", "waited", retireRequestBound)
			return r.drain(s, r.DrainTimeout, sigs)
		case err := <-r.failed:
			// Something the child cannot serve without is gone (its app
			// server): stop now, and exit with the error, which the
			// master counts as a crash and replaces.
			n := s.stopNow()
			r.finish()
			r.Log.Error("child cannot serve; exiting", "err", err, "connections_closed", n)
			return err
		case err := <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.Log.Error("accept failed; child retiring", "err", err)
				return r.drain(s, r.DrainTimeout, sigs)
			}
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				continue // the master's business, not a child's
			case syscall.SIGINT:
				r.event(contract.EventRetiring)
				n := s.stopNow()
				r.finish()
				if n > 0 {
					r.Log.Info("child stopped immediately", "connections_closed", n)
				}
				return nil
			default:
				bound := r.DrainTimeout
				masterGone := r.MasterPID != 0 && os.Getppid() != r.MasterPID
				if masterGone {
					bound = min(bound, 2*time.Second)
					r.Log.Warn("master is gone; draining briefly", "bound", bound)
				} else if sig != DrainSignal && withMaster {
					// An operator's signal (SIGUSR1 to one process, to
					// recycle it, without a 500 to anyone).
					askToRetire(contract.EventRetireRequest, "child asked to retire", "signal", sig.String())
					continue
				}
				r.Log.Debug("child retiring gracefully", "signal", sig.String())
				return r.drain(s, bound, sigs)
			}
		}
	}
}

func (r *Runtime) finish() {
	r.stopCPUProfile()
	if err := r.runHooks(phase.ChildExit); err != nil {
		r.Log.Error("child-exit failed", "err", err)
	}
	if r.access != nil {
		r.access.Close()
	}
	if r.events != nil {
		r.events.Close()
	}
}

// drain stops accepting and lets connections finish, bounded by bound. A
// SIGINT while draining cuts what is left at once.
func (r *Runtime) drain(s *server, bound time.Duration, sigs <-chan os.Signal) error {
	r.event(contract.EventRetiring)
	s.draining.Store(true)
	s.setProc(scoreboard.Graceful)
	s.closeGates()
	r.event(contract.EventClosed)
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case sig := <-sigs:
			if sig != syscall.SIGINT {
				continue
			}
			if n := s.stopNow(); n > 0 {
				r.Log.Info("child stopped immediately", "connections_closed", n)
			}
			break wait
		case <-tick.C:
			if s.closeQuiet() == 0 {
				break wait
			}
			if time.Now().After(deadline) {
				n := s.count()
				s.srv.Close()
				s.counters.Add(scoreboard.ConnectionsCut, uint64(n))
				r.Log.Warn("drain timed out; connections cut", "connections_cut", n, "bound", bound)
				break wait
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	r.finish()
	return nil
}

// connInfo is what the child knows of an open connection: its state and,
// once idle, since when. Requests update it without a lock.
type connInfo struct {
	state atomic.Int32 // an http.ConnState
	since atomic.Int64 // Unix nanoseconds of the last move to idle
}

func (ci *connInfo) get() http.ConnState { return http.ConnState(ci.state.Load()) }

type server struct {
	srv      *http.Server
	slowPath []bool        // listeners the fast path must leave to net/http (TLS, redirects)
	stopTLS  chan struct{} // ends the ticket key watchers
	stopOnce sync.Once
	conns    sync.Map // net.Conn -> *connInfo
	draining atomic.Bool

	model    Model
	cap      *capacity // nil when the child has no slot limit
	counters *scoreboard.Counters
	slow     time.Duration
	gates    []net.Listener
	board    *scoreboard.Board
	proc     int

	// realIP finds the client behind trusted proxies (nil: none are);
	// health answers the liveness and readiness probes (nil: off).
	realIP *clientip.Resolver
	health *health

	// The fast path (fast.go): the responder, the listener through which
	// it hands connections to srv, the status module (whose paths it leaves
	// to srv), the timeouts.
	fast     FastResponder
	fwd      FastForwarder // when fast is nil
	files    FastFiles     // in front of fwd, or nil
	h2       *h2.Server    // HTTP/2 on the fast path's TLS listeners (h2.go)
	acme     bool          // ACME answers come first (acmePrefix): not fwd's
	handoff  *handoff
	status   *status.Module
	timeouts Timeouts
	alog     *accesslog.Logger // nil without an access log
	alogJSON bool
	log      *slog.Logger
}

func newServer(r *Runtime, h http.Handler) *server {
	s := &server{log: r.Log, model: r.Model, board: r.board, proc: r.Slot, counters: r.counters, health: r.health, realIP: r.realIP}
	s.slow = r.slow
	if r.status != nil {
		h = r.status.Wrap(h)
		s.status = r.status
	}
	if (r.Fast != nil || r.Forward != nil) && len(r.listeners) > 0 {
		s.fast, s.timeouts = r.Fast, r.Timeouts
		if r.Fast == nil {
			s.fwd, s.files, s.acme = r.Forward, r.Files, r.acmeDir != ""
		}
		s.handoff = newHandoff(r.listeners[0].Addr())
		if r.access != nil {
			s.alog, s.alogJSON = accesslog.NewLogger(r.access, r.format), r.format == accesslog.FormatJSON
		}
	}
	// ACME's HTTP-01 answers come before redirect_https's redirect: the
	// CA asks on port 80, and a listener that sends everything to HTTPS
	// must still answer it there.
	h = s.perListener(r, h)
	if r.acmeDir != "" {
		h = acmeHTTPHandler(r.acmeDir, h)
	}
	if r.access != nil {
		h = accesslog.Middleware(h, r.access, r.format)
	}
	s.gates = r.listeners
	if r.Threads > 0 {
		maxConns := 0
		if r.Model == ModelEvent {
			limit := defaultWorkerConnections(r.Threads)
			maxConns = cmp.Or(r.WorkerConnections, limit)
			if r.WorkerConnections > limit {
				// As nginx's "worker_connections exceed open file resource
				// limit": past the limit, accepts fail (EMFILE) instead of
				// the child marking itself full for the master to spread
				// connections to others.
				r.Log.Warn("worker_connections is above this child's descriptor limit; connections past it will fail to be accepted",
					"worker_connections", r.WorkerConnections, "descriptor_limit_less_reserve", limit, "reserve", fdReserve)
			}
		}
		s.cap = newCapacity(r.Threads, maxConns, r.MaxConnections)
		if r.board != nil && maxConns > 0 {
			proc := r.board.Proc(r.Slot)
			s.cap.onFull = proc.SetFull
		}
		s.gates = nil
		for _, ln := range r.listeners {
			// An HTTP/2 connection leaves these bounds to its server when
			// it turns out to be one (leaveH2Bounds, takeH2).
			lim := connLimits{readHeader: r.Timeouts.ReadHeader, idle: r.Timeouts.Idle, minRate: int64(r.Timeouts.MinRate)}
			s.gates = append(s.gates, &gate{Listener: ln, model: r.Model, cap: s.cap, board: r.board, counters: r.counters, proc: r.Slot, limits: lim})
		}
		// A worker child speaking HTTP/2 keeps no slot for its next
		// connection either: an HTTP/2 connection's streams may take
		// every slot (h2slots.go).
		if r.Model != ModelEvent && (len(r.listeners) > 1 || r.Model == ModelWorker && speaksH2(r.lopts)) {
			s.cap.listeners = deadliners(r.listeners)
		}
	}
	if s.board != nil {
		p := s.board.Proc(s.proc)
		p.SetPID(os.Getpid())
		p.SetGeneration(r.Generation)
		p.SetQuiescing(false)
		p.SetState(scoreboard.Starting)
		for j := range r.Threads {
			s.board.Worker(s.proc, j).SetState(scoreboard.Starting)
		}
	}
	s.wrapProxy(r)
	s.wrapTLS(r)
	s.srv = &http.Server{
		Protocols:         s.protocols(r),
		Handler:           s.scored(h),
		ConnContext:       connContext,
		ReadHeaderTimeout: r.Timeouts.ReadHeader,
		ReadTimeout:       r.Timeouts.Read,
		WriteTimeout:      r.Timeouts.Write,
		IdleTimeout:       r.Timeouts.Idle,
		ConnState:         s.track,
		ErrorLog:          slog.NewLogLogger(r.Log.Handler(), slog.LevelDebug),
		// HTTP/2 frames no larger than the protocol's default, 16 KiB (Go
		// would take 1 MiB): a client that sends a bigger one gets the
		// FRAME_SIZE_ERROR RFC 9113 asks for, as h2spec checks, and a
		// request's header block costs the child no more than nginx's.
		HTTP2: &http.HTTP2Config{MaxReadFrameSize: 16 << 10},
	}
	if speaksH2(r.lopts) {
		s.h2 = s.newH2(r)
		s.takeH2()
	}
	return s
}

// deadliners returns the listeners as deadliners, or nil if one cannot
// have its Accept stopped by a deadline.
func deadliners(ls []net.Listener) []deadliner {
	var ds []deadliner
	for _, l := range ls {
		d, ok := l.(deadliner)
		if !ok {
			return nil
		}
		ds = append(ds, d)
	}
	return ds
}

func (s *server) track(c net.Conn, st http.ConnState) { s.trackConn(c, st, true) }

// trackH2 is track for the HTTP/2 server's connections, whose slot's state
// is their streams' (h2slots.go): a stream that runs on another slot must
// not leave the connection's "reading".
func (s *server) trackH2(c net.Conn, st http.ConnState) { s.trackConn(c, st, false) }

func (s *server) trackConn(c net.Conn, st http.ConnState, slotState bool) {
	if sc := connSlot(c); sc != nil {
		if w := sc.worker(); w != nil && slotState {
			switch st {
			case http.StateActive:
				w.SetState(scoreboard.Reading)
			case http.StateIdle:
				w.SetState(scoreboard.KeepAlive)
			}
		}
		// net/http's connections (the fast path marks its own itself):
		// the header is in, or the response is out.
		switch c.(type) {
		case *framingConn, *tls.Conn, *tlsReplayConn:
			switch st {
			case http.StateActive:
				sc.headerIn()
			case http.StateIdle:
				sc.responded(time.Now())
			}
		}
	}
	switch st {
	case http.StateNew:
		ci := new(connInfo)
		ci.state.Store(int32(st))
		s.conns.Store(c, ci)
	case http.StateClosed, http.StateHijacked:
		s.conns.Delete(c)
	default:
		if v, ok := s.conns.Load(c); ok {
			ci := v.(*connInfo)
			if st == http.StateIdle {
				ci.since.Store(time.Now().UnixNano())
			}
			ci.state.Store(int32(st))
		}
	}
}

// fastOn reports whether the fast path serves (fast.go).
func (s *server) fastOn() bool { return s.fast != nil || s.fwd != nil }

func (s *server) isDraining() bool { return s.draining.Load() }

// setProc marks the child's process slot, and its worker slots when it
// becomes idle or graceful.
func (s *server) setProc(st scoreboard.State) {
	if s.board == nil {
		return
	}
	p := s.board.Proc(s.proc)
	p.SetState(st)
	switch st {
	case scoreboard.Idle:
		for j := range s.board.ThreadsPerProc() {
			if w := s.board.Worker(s.proc, j); w.State() == scoreboard.Starting {
				w.SetState(scoreboard.Idle)
			}
		}
	case scoreboard.Graceful:
		p.SetQuiescing(true)
	}
}

// closeGates stops accepting on every listener.
func (s *server) closeGates() {
	for _, g := range s.gates {
		g.Close()
	}
	s.stopOnce.Do(func() {
		if s.stopTLS != nil {
			close(s.stopTLS)
		}
	})
}

// acceptedBound is how long a child told to stop now still answers
// connections it had accepted but not yet read a request from.
const acceptedBound = time.Second

// stopNow is SIGINT: stop accepting, cut the requests in flight and the idle
// connections, but answer connections that were accepted and not read yet,
// with "Connection: close", for up to acceptedBound. Those are clients that
// reconnected after a cut and were accepted before this child saw the
// signal: cutting them too would lose more than what was in flight. It
// returns how many connections were cut.
func (s *server) stopNow() int {
	s.closeGates()
	s.draining.Store(true)
	cut, inFlight := 0, 0
	s.conns.Range(func(k, v any) bool {
		if st := v.(*connInfo).get(); st != http.StateNew {
			if st == http.StateActive {
				inFlight++
			}
			k.(net.Conn).Close()
			s.conns.Delete(k)
			cut++
		}
		return true
	})
	for deadline := time.Now().Add(acceptedBound); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		waiting := 0
		s.conns.Range(func(_, v any) bool {
			if st := v.(*connInfo).get(); st == http.StateNew || st == http.StateActive {
				waiting++
			}
			return true
		})
		if waiting == 0 {
			break
		}
	}
	unread := s.count() // accepted, still not read after acceptedBound
	cut += unread
	s.counters.Add(scoreboard.ConnectionsCut, uint64(inFlight+unread))
	s.srv.Close()
	return cut
}

// closeQuiet closes keep-alive connections that stayed idle for the quiet
// period and returns how many connections remain open.
func (s *server) closeQuiet() int {
	now := time.Now().UnixNano()
	open := 0
	s.conns.Range(func(k, v any) bool {
		ci := v.(*connInfo)
		if ci.get() == http.StateIdle && now-ci.since.Load() >= int64(quietPeriod) {
			k.(net.Conn).Close()
			s.conns.Delete(k)
		} else {
			open++
		}
		return true
	})
	return open
}

func (s *server) count() int {
	n := 0
	s.conns.Range(func(_, _ any) bool { n++; return true })
	return n
}

// newLogger is a child's error log: JSON or text on w, at level, with
// notice passed whatever the level (loglevel's rule, as in the master).
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: min(level, loglevel.Notice), ReplaceAttr: loglevel.ReplaceAttr}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(loglevel.Handler(h, level))
}

// runHooks runs the exec hooks of ph in order, stopping at the first
// failure. They get the master's environment as the child got it, and
// phase.Info's PHASED_* variables.
func (r *Runtime) runHooks(ph phase.Phase) error {
	var env []string
	for _, h := range r.hooks {
		if h.Phase != ph {
			continue
		}
		if env == nil {
			info := phase.Info{Phase: ph, Pass: r.Pass, Generation: r.Generation, Slot: r.Slot}
			if r.Contract != nil {
				info.ConfigPath = r.Contract.ConfigPath
			}
			env = append(contract.Environ(os.Environ()), info.Env()...)
		}
		err := exechook.Run(context.Background(), exechook.Spec{
			Hook: h.Name, Phase: string(ph), Argv: h.Argv, Dir: h.Dir, Env: env, Timeout: h.Timeout, Log: r.Log,
		})
		if err != nil {
			return err
		}
	}
	return nil
}
