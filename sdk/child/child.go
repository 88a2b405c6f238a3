package child

import (
	"context"
	"encoding/json"
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
	"github.com/phasedhq/phased/internal/exechook"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// The environment a master gives its children.
const (
	// EnvListeners lists the configured listen addresses, comma-separated;
	// the sockets are file descriptors 3, 4, ... in that order.
	EnvListeners = "PHASED_CHILD_LISTENERS"
	// EnvEventsFD is the descriptor of the pipe on which the child reports
	// "ready" and "retiring" lines to the master.
	EnvEventsFD = "PHASED_CHILD_EVENTS_FD"
	// EnvAccessLogFD is the descriptor of the shared access log; unset = off.
	EnvAccessLogFD = "PHASED_CHILD_ACCESS_LOG_FD"
	// EnvAccessLogFormat is common, combined or json.
	EnvAccessLogFormat = "PHASED_CHILD_ACCESS_LOG_FORMAT"
	// EnvLogFormat is the error log format: json or text.
	EnvLogFormat = "PHASED_CHILD_LOG_FORMAT"
	// EnvLogLevel is the error log level: debug, info, notice, warn or error.
	EnvLogLevel = "PHASED_CHILD_LOG_LEVEL"
	// EnvMasterPID is the master's pid.
	EnvMasterPID = "PHASED_CHILD_MASTER_PID"
	// EnvDrainTimeout bounds a graceful drain (a Go duration).
	EnvDrainTimeout = "PHASED_CHILD_DRAIN_TIMEOUT"
	// EnvTimeouts holds the server timeouts as
	// "read_header=10s,read=60s,write=60s,idle=5s".
	EnvTimeouts = "PHASED_CHILD_TIMEOUTS"
	// EnvGeneration is the child's generation number (1 at first start).
	EnvGeneration = "PHASED_GENERATION"
	// EnvSlot is the child's slot in its generation (0-based).
	EnvSlot = "PHASED_SLOT"
	// EnvConfig is the path of the master's effective configuration as JSON.
	EnvConfig = "PHASED_CONFIG"
	// EnvPass is the configuration pass that made the child's generation.
	EnvPass = "PHASED_PASS"
	// EnvHooks holds the child-init and child-exit exec hooks as a JSON
	// list of ExecHook, in the order they run.
	EnvHooks = "PHASED_CHILD_HOOKS"
	// EnvModel is the child model: prefork, worker or event.
	EnvModel = "PHASED_CHILD_MODEL"
	// EnvThreads is the number of slots (threads_per_child).
	EnvThreads = "PHASED_CHILD_THREADS"
	// EnvScoreboardFD is the descriptor of the generation's scoreboard; the
	// child writes process slot PHASED_SLOT and its worker slots.
	EnvScoreboardFD = "PHASED_CHILD_SCOREBOARD_FD"
	// EnvMaxConnections retires the child after that many connections
	// (max_connections_per_child, jitter applied); 0 or unset = never.
	EnvMaxConnections = "PHASED_CHILD_MAX_CONNECTIONS"
	// EnvAcceptMutex, when set, is a path prefix: the child accepts on
	// listener i only while it holds an flock on PREFIX.i (Apache's
	// AcceptMutex), instead of letting every child wake for every
	// connection.
	EnvAcceptMutex = "PHASED_CHILD_ACCEPT_MUTEX"
)

// ExitChildInit is the exit status of a child whose child-init failed
// (Apache's APEXIT_CHILDINIT): the master backs off before replacing it.
const ExitChildInit = 3

// ErrChildInit is returned by Serve when a child-init hook failed.
var ErrChildInit = errors.New("child-init failed")

// ExecHook is a child-init or child-exit exec hook passed down by the master.
type ExecHook struct {
	Name    string        `json:"name"`
	Phase   string        `json:"phase"`
	Argv    []string      `json:"argv"`
	Dir     string        `json:"dir,omitempty"`
	Timeout time.Duration `json:"timeout"`
}

// Event lines a child writes to the master.
const (
	EventReady = "ready"
	// EventRetireRequest asks the master to retire this child, which goes
	// on accepting until the master has a replacement ready and then sends
	// DrainSignal: an operator's SIGUSR1 or SIGTERM to one child.
	EventRetireRequest = "retire-request"
	// EventRetireMaxConnections is the same request from a child that
	// reached max_connections_per_child, so that the master counts the
	// recycle under its cause. (A master also takes a plain
	// EventRetireRequest after the limit, as children of older SDKs send.)
	EventRetireMaxConnections = "retire-request max-connections"
	EventRetiring             = "retiring"
	// EventClosed follows EventRetiring once the child has stopped
	// accepting: the master waits for it from every child of a generation
	// before telling them to cut their connections (a hard restart or stop).
	EventClosed = "closed"
)

// DrainSignal is the signal with which the master tells a child to drain
// now (Apache's graceful-stop signal for children). SIGUSR1 and SIGTERM from
// anyone else are requests to retire, answered by the master with
// DrainSignal once the child's replacement is ready.
const DrainSignal = syscall.SIGWINCH

// retireRequestBound is how long a child that asked to retire waits for the
// master's DrainSignal before it drains on its own. The master answers
// within its own hand-over bound (the replacement's start, child-init
// included), which is shorter.
const retireRequestBound = 30 * time.Second

// levelNotice is Apache's notice level, as the master's logging uses it.
const levelNotice = slog.LevelInfo + 2

// quietPeriod is how long a keep-alive connection must stay idle during a
// drain before the child closes it. A client that sends its next request
// within it gets an answer with "Connection: close" instead of a reset.
const quietPeriod = 500 * time.Millisecond

// ErrNotChild is returned by Current when the process was not started by a
// phased master.
var ErrNotChild = errors.New("not running under a phased master")

// Timeouts bound slow clients.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// Runtime is a child's view of what its master gave it.
type Runtime struct {
	// Generation is the child's generation (1 at first start).
	Generation int
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
	// Fast, when set, answers the plainest requests without net/http (see
	// FastResponder); the handler Serve is given answers all others.
	Fast FastResponder

	listeners []net.Listener
	addrs     []string
	hooks     []ExecHook
	board     *scoreboard.Board
	counters  *scoreboard.Counters
	status    *statusPage
	events    *os.File
	access    *accesslog.Writer
	format    accesslog.Format
}

// Current reads the runtime from the environment and inherited descriptors.
// It returns ErrNotChild outside phased.
func Current() (*Runtime, error) {
	addrs := os.Getenv(EnvListeners)
	if addrs == "" {
		return nil, ErrNotChild
	}
	r := &Runtime{
		Generation:   atoi(os.Getenv(EnvGeneration)),
		Slot:         atoi(os.Getenv(EnvSlot)),
		MasterPID:    atoi(os.Getenv(EnvMasterPID)),
		DrainTimeout: 30 * time.Second,
		Timeouts:     Timeouts{ReadHeader: 10 * time.Second, Read: 60 * time.Second, Write: 60 * time.Second, Idle: 5 * time.Second},
		addrs:        strings.Split(addrs, ","),
	}
	r.Log = newLogger(os.Stderr, os.Getenv(EnvLogFormat), os.Getenv(EnvLogLevel)).With(
		"pid", os.Getpid(), "generation", r.Generation, "slot", r.Slot)
	if d, err := time.ParseDuration(os.Getenv(EnvDrainTimeout)); err == nil && d > 0 {
		r.DrainTimeout = d
	}
	if err := r.Timeouts.parse(os.Getenv(EnvTimeouts)); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvTimeouts, err)
	}
	r.Model = Model(os.Getenv(EnvModel))
	switch r.Model {
	case "":
		r.Model = ModelWorker
	case ModelPrefork, ModelWorker, ModelEvent:
	default:
		return nil, fmt.Errorf("%s: unknown child model %q", EnvModel, r.Model)
	}
	r.Threads = atoi(os.Getenv(EnvThreads))
	if r.Model == ModelPrefork {
		r.Threads = 1
	}
	r.MaxConnections = uint64(max(atoi(os.Getenv(EnvMaxConnections)), 0))
	if fd := atoi(os.Getenv(EnvScoreboardFD)); fd > 0 {
		b, err := scoreboard.Open(os.NewFile(uintptr(fd), "scoreboard"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvScoreboardFD, err)
		}
		if r.Slot >= b.Procs() || r.Threads > b.ThreadsPerProc() {
			return nil, fmt.Errorf("%s: slot %d x %d threads does not fit a %d x %d scoreboard", EnvScoreboardFD, r.Slot, r.Threads, b.Procs(), b.ThreadsPerProc())
		}
		r.board = b
	}
	if fd := atoi(os.Getenv(EnvCountersFD)); fd > 0 {
		c, err := scoreboard.OpenCounters(os.NewFile(uintptr(fd), "counters"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvCountersFD, err)
		}
		r.counters = c
	}
	var err error
	if r.status, err = newStatusPage(r); err != nil {
		return nil, err
	}
	if h := os.Getenv(EnvHooks); h != "" {
		if err := json.Unmarshal([]byte(h), &r.hooks); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvHooks, err)
		}
	}
	mutex := os.Getenv(EnvAcceptMutex)
	for i, a := range r.addrs {
		f := os.NewFile(uintptr(3+i), "listener:"+a)
		var ln net.Listener
		var err error
		if mutex != "" {
			ln, err = acceptmutex.Listen(f, mutex+"."+strconv.Itoa(i))
		} else {
			ln, err = net.FileListener(f)
		}
		f.Close()
		if err != nil {
			r.closeListeners()
			return nil, fmt.Errorf("inherited listener %s (fd %d): %w", a, 3+i, err)
		}
		r.listeners = append(r.listeners, ln)
	}
	if fd := atoi(os.Getenv(EnvEventsFD)); fd > 0 {
		r.events = os.NewFile(uintptr(fd), "events")
	}
	if fd := atoi(os.Getenv(EnvAccessLogFD)); fd > 0 {
		format, err := accesslog.ParseFormat(os.Getenv(EnvAccessLogFormat))
		if err != nil {
			r.closeListeners()
			return nil, fmt.Errorf("%s: %w", EnvAccessLogFormat, err)
		}
		r.format = format
		r.access = accesslog.NewWriter(os.NewFile(uintptr(fd), "access-log"), accesslog.WriterOptions{})
	}
	return r, nil
}

func (t *Timeouts) parse(s string) error {
	if s == "" {
		return nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		switch k {
		case "read_header":
			t.ReadHeader = d
		case "read":
			t.Read = d
		case "write":
			t.Write = d
		case "idle":
			t.Idle = d
		default:
			return fmt.Errorf("unknown timeout %q", k)
		}
	}
	return nil
}

// String formats t as EnvTimeouts expects it.
func (t Timeouts) String() string {
	return fmt.Sprintf("read_header=%s,read=%s,write=%s,idle=%s", t.ReadHeader, t.Read, t.Write, t.Idle)
}

func (r *Runtime) closeListeners() {
	for _, ln := range r.listeners {
		ln.Close()
	}
}

func (r *Runtime) event(name string) {
	if r.events == nil {
		return
	}
	if _, err := r.events.WriteString(name + "\n"); err != nil {
		r.Log.Debug("could not tell the master", "event", name, "err", err)
	}
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
	if err := r.runHooks("child-init"); err != nil {
		r.closeListeners()
		r.Log.Error("child-init failed; this child exits", "err", err)
		return fmt.Errorf("%w: %w", ErrChildInit, err)
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
	}
	errc := make(chan error, len(s.gates))
	for _, ln := range s.gates {
		if s.fast != nil {
			go func() { errc <- s.acceptFast(ln) }()
		} else {
			go func() { errc <- s.srv.Serve(ln) }()
		}
	}
	if s.fast != nil {
		go s.srv.Serve(s.handoff)
	}
	s.setProc(scoreboard.Idle)
	r.event(EventReady)
	r.Log.Debug("child serving", "listen", strings.Join(r.addrs, ","), "model", string(r.Model), "threads", r.Threads)
	var asked <-chan time.Time // set once this child asked the master to retire it
	askToRetire := func(event, why string, attrs ...any) {
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
				askToRetire(EventRetireMaxConnections, "child reached max_connections_per_child; asking to retire", "connections", r.MaxConnections)
				continue
			}
			r.Log.Info("child reached max_connections_per_child; retiring", "connections", r.MaxConnections)
			return r.drain(s, r.DrainTimeout, sigs)
		case <-asked:
			r.Log.Warn("the master did not answer the retire request; draining now", "waited", retireRequestBound)
			return r.drain(s, r.DrainTimeout, sigs)
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
				r.event(EventRetiring)
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
					// An operator's signal (seed 000's SIGUSR1 to one
					// process, without its 500).
					askToRetire(EventRetireRequest, "child asked to retire", "signal", sig.String())
					continue
				}
				r.Log.Debug("child retiring gracefully", "signal", sig.String())
				return r.drain(s, bound, sigs)
			}
		}
	}
}

func (r *Runtime) finish() {
	if err := r.runHooks("child-exit"); err != nil {
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
	r.event(EventRetiring)
	s.draining.Store(true)
	s.setProc(scoreboard.Graceful)
	s.closeGates()
	r.event(EventClosed)
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
	conns    sync.Map // net.Conn -> *connInfo
	draining atomic.Bool

	model    Model
	cap      *capacity // nil when the child has no slot limit
	counters *scoreboard.Counters
	slow     time.Duration
	gates    []net.Listener
	board    *scoreboard.Board
	proc     int

	// The fast path (fast.go): the responder, the listener through which
	// it hands connections to srv, the status page's path, the timeouts.
	fast     FastResponder
	handoff  *handoff
	status   string
	timeouts Timeouts
	alog     *accesslog.Logger // nil without an access log
	alogJSON bool
	log      *slog.Logger
}

func newServer(r *Runtime, h http.Handler) *server {
	s := &server{log: r.Log, model: r.Model, board: r.board, proc: r.Slot, counters: r.counters}
	s.slow, _ = time.ParseDuration(os.Getenv(EnvSlowRequest))
	if r.status != nil {
		h = r.status.wrap(h)
		s.status = r.status.path
	}
	if r.Fast != nil && len(r.listeners) > 0 {
		s.fast, s.timeouts = r.Fast, r.Timeouts
		s.handoff = newHandoff(r.listeners[0].Addr())
		if r.access != nil {
			s.alog, s.alogJSON = accesslog.NewLogger(r.access, r.format), r.format == accesslog.FormatJSON
		}
	}
	if r.access != nil {
		h = accesslog.Middleware(h, r.access, r.format)
	}
	s.gates = r.listeners
	if r.Threads > 0 {
		maxConns := 0
		if r.Model == ModelEvent {
			maxConns = r.Threads * (1 + asyncFactor)
		}
		s.cap = newCapacity(r.Threads, maxConns, r.MaxConnections)
		if r.board != nil && maxConns > 0 {
			proc := r.board.Proc(r.Slot)
			s.cap.onFull = proc.SetFull
		}
		s.gates = nil
		for _, ln := range r.listeners {
			s.gates = append(s.gates, &gate{Listener: ln, model: r.Model, cap: s.cap, board: r.board, counters: r.counters, proc: r.Slot})
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
	s.srv = &http.Server{
		Handler:           s.scored(h),
		ConnContext:       connContext,
		ReadHeaderTimeout: r.Timeouts.ReadHeader,
		ReadTimeout:       r.Timeouts.Read,
		WriteTimeout:      r.Timeouts.Write,
		IdleTimeout:       r.Timeouts.Idle,
		ConnState:         s.track,
		ErrorLog:          slog.NewLogLogger(r.Log.Handler(), slog.LevelDebug),
	}
	return s
}

func (s *server) track(c net.Conn, st http.ConnState) {
	if sc := connSlot(c); sc != nil {
		if w := sc.worker(); w != nil {
			switch st {
			case http.StateActive:
				w.SetState(scoreboard.Reading)
			case http.StateIdle:
				w.SetState(scoreboard.KeepAlive)
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

func newLogger(w io.Writer, format, level string) *slog.Logger {
	lv := slog.LevelInfo
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "notice":
		lv = levelNotice
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey {
			if l, ok := a.Value.Any().(slog.Level); ok && l == levelNotice {
				return slog.String(slog.LevelKey, "NOTICE")
			}
		}
		return a
	}}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// runHooks runs the exec hooks of phase in order, stopping at the first
// failure.
func (r *Runtime) runHooks(phase string) error {
	var env []string
	for _, h := range r.hooks {
		if h.Phase != phase {
			continue
		}
		if env == nil {
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "PHASED_CHILD_") {
					env = append(env, kv)
				}
			}
			env = append(env, "PHASED_PHASE="+phase, "PHASED_DRY_RUN=0")
		}
		err := exechook.Run(context.Background(), exechook.Spec{
			Hook: h.Name, Phase: phase, Argv: h.Argv, Dir: h.Dir, Env: env, Timeout: h.Timeout, Log: r.Log,
		})
		if err != nil {
			return err
		}
	}
	return nil
}
