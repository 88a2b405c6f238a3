package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phasedhq/phased/internal/procfs"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// apacheTime is mod_status's time format.
const apacheTime = "Monday, 02-Jan-2006 15:04:05 MST"

// Scoreboard is what the status module reads of a generation's scoreboard
// (internal/scoreboard's Board).
type Scoreboard interface {
	// Snapshot copies every slot.
	Snapshot() scoreboard.Snapshot
	// Procs is the number of process slots (server_limit).
	Procs() int
	// ThreadsPerProc is the number of worker slots per process.
	ThreadsPerProc() int
}

// Counters is what the status module reads of the master's running totals
// (internal/scoreboard's Counters).
type Counters interface {
	// Get returns one counter.
	Get(scoreboard.Counter) uint64
	// Queue returns listener i's accept-queue depth and limit, MaxQueue
	// its deepest since the master started.
	Queue(i int) (depth, limit int)
	MaxQueue(i int) int
	// Durations returns the request-duration histogram.
	Durations() (cumulative []uint64, count uint64, sum time.Duration)
	// Generations returns the children of each generation by life stage.
	Generations() []scoreboard.GenerationChildren
}

// Options configures a Module.
type Options struct {
	// Path is where the status page answers (mod_status's page, ?auto,
	// ?json); "" = no page.
	Path string
	// MetricsPath is where the Prometheus metrics answer; "" = none.
	MetricsPath string
	// Allow are the networks (CIDRs) that may read both.
	Allow []string
	// Version is phased's version as the master gives it ("v1.2.3", a
	// Go pseudo-version, or "" for a development build); the page shows
	// it as ServerVersion (see ServerVersion).
	Version string
	// MPM is the MPM's name; Async reports whether children serve with
	// the event model (?auto then carries mod_status's async block).
	MPM   string
	Async bool
	// MasterPID is the master's pid (its CPU time counts); 0 = none.
	MasterPID int
	// Generation is the reading child's generation; MasterStart and
	// GenerationStart are when the master and the generation started.
	Generation      int
	MasterStart     time.Time
	GenerationStart time.Time
	// Listeners are the listen addresses, in order: listener i's queue is
	// Counters' queue i.
	Listeners []string
	// Board is the generation's scoreboard. Required.
	Board Scoreboard
	// Counters are the master's running totals. Required.
	Counters Counters
	// Certificates are the TLS certificates the child's listeners serve.
	Certificates []Certificate
}

// Module is the status module a child mounts: the status page and the
// metrics, answered from shared memory, so that whichever child a request
// reaches answers for the whole server.
type Module struct {
	path      string
	metrics   string
	prom      http.Handler
	allow     []*net.IPNet
	mpm       string
	async     bool // the event model: ?auto carries mod_status's async block
	masterPID int
	start     time.Time // the master's start
	restart   time.Time // the generation's start
	gen       int
	board     Scoreboard
	counts    Counters
	addrs     []string
	built     string
	certs     []Certificate
	version   string // ServerVersion's value
}

// New returns the module o describes, or nil when it answers nothing (no
// path and no metrics path). A bad network in Allow is an error naming it.
func New(o Options) (*Module, error) {
	if o.Path == "" && o.MetricsPath == "" {
		return nil, nil
	}
	if o.Board == nil || o.Counters == nil {
		return nil, errors.New("status: no scoreboard or counters")
	}
	m := &Module{path: o.Path, metrics: o.MetricsPath, mpm: o.MPM, async: o.Async, masterPID: o.MasterPID,
		gen: o.Generation, board: o.Board, counts: o.Counters, addrs: o.Listeners, built: built(),
		start: o.MasterStart, restart: o.GenerationStart, certs: o.Certificates, version: ServerVersion(o.Version)}
	for _, a := range o.Allow {
		_, n, err := net.ParseCIDR(a)
		if err != nil {
			return nil, fmt.Errorf("status.allow: %w", err)
		}
		m.allow = append(m.allow, n)
	}
	if m.metrics != "" {
		m.prom = metricsHandler(m)
	}
	return m, nil
}

// Serves reports whether path is one the module answers: a child's fast
// path must leave it to the handler Wrap returns.
func (m *Module) Serves(path string) bool {
	return m != nil && path != "" && (path == m.path || path == m.metrics)
}

// ServerVersion is the status page's ServerVersion for phased version v,
// in Apache's form, product/X.Y.Z and a comment ("Apache/2.4.71 (Debian)"):
// "phased/1.2.3 (Go go1.26.8; linux)". What follows X.Y.Z in v (a
// pre-release, a Go pseudo-version's time and commit, build metadata)
// goes first into the comment, since tools that read the page expect
// three dot-separated numbers after the slash and nothing else until the
// space: apache_exporter turns them into apache_version, and fails the
// scrape on anything else. A development build ("", or a v that is no
// version) is 0.0.0 with "dev" in the comment.
func ServerVersion(v string) string {
	core, extra := strings.TrimPrefix(v, "v"), ""
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		core, extra = core[:i], strings.TrimLeft(core[i:], "-+")
	}
	if !semverCore(core) {
		core, extra = "0.0.0", "dev"
	}
	// Only what a version may hold: nothing that would end the comment or
	// the line.
	extra = strings.Map(func(r rune) rune {
		if r < 0x80 && (r >= '0' && r <= '9' || r|0x20 >= 'a' && r|0x20 <= 'z' || strings.ContainsRune(".+-_~", r)) {
			return r
		}
		return -1
	}, extra)
	comment := "Go " + runtime.Version() + "; " + runtime.GOOS
	if extra != "" {
		comment = extra + "; " + comment
	}
	return "phased/" + core + " (" + comment + ")"
}

// semverCore reports whether s is three dot-separated decimal numbers.
func semverCore(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// built is when the binary was built, as Apache's "Server Built": the VCS
// time recorded in the binary, else the executable's modification time.
func built() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t.UTC().Format("2006-01-02T15:04:05")
				}
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		if fi, err := os.Stat(exe); err == nil {
			return fi.ModTime().UTC().Format("2006-01-02T15:04:05")
		}
	}
	return "unknown"
}

// Wrap answers the status page and the metrics at their paths, to the
// allowed networks (403 to others), and passes every other request to next.
func (m *Module) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case m.path:
			if !m.allowed(r.RemoteAddr) {
				http.Error(w, "403 Forbidden: the status page is not open to your address", http.StatusForbidden)
				return
			}
			m.page(w, r)
		case m.metrics:
			if !m.allowed(r.RemoteAddr) {
				http.Error(w, "403 Forbidden: metrics are not open to your address", http.StatusForbidden)
				return
			}
			m.prom.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// page answers the status page in the form the query asks for.
func (m *Module) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	st := m.collect(r)
	switch {
	case r.URL.Query().Has("auto"):
		w.Header().Set("Content-Type", "text/plain; charset=ISO-8859-1")
		st.writeAuto(w)
	case r.URL.Query().Has("json"):
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		st.writeHTML(w)
	}
}

func (p *Module) allowed(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, n := range p.allow {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// Status is the status page's data (its ?json form).
type Status struct {
	Host          string    `json:"host"`
	Version       string    `json:"server_version"`
	MPM           string    `json:"mpm"`
	Built         string    `json:"server_built"`
	Now           time.Time `json:"current_time"`
	Started       time.Time `json:"start_time"`
	Restarted     time.Time `json:"restart_time"`
	Generation    int       `json:"generation"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	Load          [3]string `json:"load"`
	TotalAccesses uint64    `json:"total_accesses"`
	// TotalDurationMs and Timed come from the request-duration histogram
	// (every request since the master started).
	TotalDurationMs int64  `json:"total_duration_ms"`
	Timed           uint64 `json:"timed_requests"`
	TotalBytes      uint64 `json:"total_bytes"`
	// CPU seconds, as mod_status adds them up: the master's and the current
	// generation's children's own (user, system) and those of the processes
	// they waited for (children user, children system).
	CPUUser           float64 `json:"cpu_user"`
	CPUSystem         float64 `json:"cpu_system"`
	CPUChildrenUser   float64 `json:"cpu_children_user"`
	CPUChildrenSystem float64 `json:"cpu_children_system"`
	// CPULoad is the CPU time above as a percentage of the uptime.
	CPULoad float64 `json:"cpu_load"`
	// BusyWorkers, GracefulWorkers and IdleWorkers count the workers of
	// live, accepting children as mod_status does: busy is every state but
	// dead, starting, idle, idle-kill and graceful; idle needs the current
	// generation.
	BusyWorkers     int    `json:"busy_workers"`
	IdleWorkers     int    `json:"idle_workers"`
	GracefulWorkers int    `json:"graceful_workers"`
	Processes       int    `json:"processes"`
	MaxProcesses    int    `json:"max_processes"`     // server_limit: the scoreboard's process slots
	ThreadsPerChild int    `json:"threads_per_child"` // worker slots per child
	MaxWorkers      int    `json:"max_workers"`       // max_processes x threads_per_child
	Scoreboard      string `json:"scoreboard"`
	// PHP-FPM's pool status fields, over all children of the master. A
	// PHP-FPM process serves one request at a time, as a phased worker
	// does: its idle, active and total processes are phased's idle and
	// busy workers and their sum.
	AcceptedConn    uint64 `json:"accepted_conn"`
	ListenQueue     int    `json:"listen_queue"`
	MaxListenQueue  int    `json:"max_listen_queue"`
	ListenQueueLen  int    `json:"listen_queue_len"`
	IdleProcesses   int    `json:"idle_processes"`
	ActiveProcesses int    `json:"active_processes"`
	TotalProcesses  int    `json:"total_processes"`
	SlowRequests    uint64 `json:"slow_requests"`
	MaxChildren     uint64 `json:"max_children_reached"`
	// Async is mod_status's event MPM block; nil for the other models.
	Async     *AsyncStatus   `json:"async,omitempty"`
	Listeners []ListenStatus `json:"listeners"`
	// Children are the generation's live children, with the app server
	// each owns.
	Children []ProcessStatus `json:"children"`
	Workers  []WorkerStatus  `json:"workers"`
	// Certificates are the TLS certificates served, with their expiry.
	Certificates []Certificate `json:"certificates,omitempty"`

	ticks cpuTicks // the CPU figures as mod_status reads them, for ?auto
}

// AsyncStatus is what mod_status shows for Apache's event MPM, over the
// current generation's children: the connections each holds without a
// worker, as it counts them on its process slot. ConnsWaitIO are reading a
// request's header (waiting for its bytes in the netpoller: an event child
// gives a connection a worker only once its request's header is in),
// ConnsWriting writing a response their worker is done with, ConnsKeepAlive
// idle between requests, ConnsClosing being closed; ConnsTunnel are
// WebSockets past their 101 (mod_status has no such count: Apache's
// tunnels hold a worker, or none it counts).
type AsyncStatus struct {
	Processes      int `json:"processes"`
	Stopping       int `json:"stopping"`
	ConnsTotal     int `json:"conns_total"`
	ConnsWaitIO    int `json:"conns_async_wait_io"`
	ConnsWriting   int `json:"conns_async_writing"`
	ConnsKeepAlive int `json:"conns_async_keep_alive"`
	ConnsClosing   int `json:"conns_async_closing"`
	ConnsTunnel    int `json:"conns_async_tunnel"`
}

// ListenStatus is one listening socket's accept queue.
type ListenStatus struct {
	Addr     string `json:"addr"`
	Queue    int    `json:"queue"`
	MaxQueue int    `json:"max_queue"`
	Limit    int    `json:"limit"`
}

// ProcessStatus is one live child of the generation.
type ProcessStatus struct {
	Slot       int `json:"slot"`
	PID        int `json:"pid"`
	Generation int `json:"generation"`
	// AppPID is the app server the child owns (app.type http), 0 when it
	// owns none; AppMemory is that app server's memory with its own
	// processes (PSS, or RSS), in bytes.
	AppPID    int   `json:"app_pid,omitempty"`
	AppMemory int64 `json:"app_memory_bytes,omitempty"`
	// Connections is how many connections the child holds (Apache's
	// event status table's "Connections total"), KeepAlive how many of
	// them wait for their next request.
	Connections int `json:"connections"`
	KeepAlive   int `json:"keep_alive"`
}

// WorkerStatus is one worker slot that has served or is serving.
type WorkerStatus struct {
	Slot       string  `json:"slot"` // "process-thread", as Apache's Srv
	PID        int     `json:"pid"`
	Generation int     `json:"generation"`
	State      string  `json:"state"`
	Requests   uint64  `json:"requests"`
	Bytes      uint64  `json:"bytes"`
	SinceLast  float64 `json:"seconds_since_last_request"`
	LastMillis int64   `json:"last_request_ms"`
	// Client is the address of the current (or last) request's client,
	// the real one behind a PROXY header or a trusted proxy; "" if unknown.
	Client      string `json:"client"`
	RequestLine string `json:"request"`
}

func (p *Module) collect(r *http.Request) Status {
	snap := p.board.Snapshot()
	sum := snap.Summary()
	now := time.Now()
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	st := Status{
		Host: host, Version: p.version, MPM: p.mpm, Built: p.built, Now: now, Started: p.start, Restarted: p.restart,
		Generation: p.gen, UptimeSeconds: int64(now.Sub(p.start).Seconds()), Load: loadavg(),
		TotalAccesses: sum.Requests, TotalBytes: sum.Bytes, Processes: sum.Procs, MaxWorkers: sum.Slots,
		BusyWorkers: sum.Busy, IdleWorkers: sum.Idle, GracefulWorkers: sum.Graceful,
		MaxProcesses: p.board.Procs(), ThreadsPerChild: p.board.ThreadsPerProc(),
		Scoreboard: snap.Letters(),
	}
	var sumDur time.Duration
	_, st.Timed, sumDur = p.counts.Durations()
	st.TotalDurationMs = sumDur.Milliseconds()
	st.AcceptedConn = p.counts.Get(scoreboard.Accepted)
	st.SlowRequests = p.counts.Get(scoreboard.SlowRequests)
	st.MaxChildren = p.counts.Get(scoreboard.MaxChildrenReached)
	for i, a := range p.addrs {
		depth, limit := p.counts.Queue(i)
		ls := ListenStatus{Addr: a, Queue: depth, MaxQueue: p.counts.MaxQueue(i), Limit: limit}
		st.Listeners = append(st.Listeners, ls)
		st.ListenQueue += ls.Queue
		st.MaxListenQueue = max(st.MaxListenQueue, ls.MaxQueue)
		st.ListenQueueLen += ls.Limit
	}
	if p.masterPID > 0 {
		st.ticks.add(readCPUTicks(p.masterPID))
	}
	if p.async {
		st.Async = &AsyncStatus{}
	}
	for i, proc := range snap.Procs {
		if proc.PID != 0 {
			st.ticks.add(readCPUTicks(proc.PID))
			ps := ProcessStatus{Slot: i, PID: proc.PID, Generation: proc.Generation, AppPID: proc.AppPID,
				Connections: proc.Conns, KeepAlive: proc.ConnsKeepAlive}
			if ps.AppPID != 0 {
				ps.AppMemory = procfs.TreeMemory(ps.AppPID)
			}
			st.Children = append(st.Children, ps)
		}
		for j, w := range snap.Workers[i] {
			if w.Requests == 0 && (w.State == scoreboard.Dead || w.State == scoreboard.Idle) {
				continue
			}
			ws := WorkerStatus{Slot: fmt.Sprintf("%d-%d", i, j), PID: proc.PID, Generation: proc.Generation,
				State: string(w.State.Letter()), Requests: w.Requests, Bytes: w.Bytes,
				LastMillis: w.LastDuration.Milliseconds(), RequestLine: w.RequestLine}
			if w.Client.IsValid() {
				ws.Client = w.Client.String()
			}
			if !w.LastUsed.IsZero() {
				ws.SinceLast = now.Sub(w.LastUsed).Round(time.Millisecond).Seconds()
			}
			st.Workers = append(st.Workers, ws)
		}
		if st.Async != nil && proc.PID != 0 {
			a := st.Async
			a.Processes++
			if proc.Quiescing {
				a.Stopping++
			}
			// The connections the child holds, as it counts them on its
			// process slot: no look at the kernel's tables, whose cost
			// grows with every socket on the machine.
			a.ConnsTotal += proc.Conns
			a.ConnsWaitIO += proc.ConnsReading
			a.ConnsWriting += proc.ConnsWriting
			a.ConnsKeepAlive += proc.ConnsKeepAlive
			a.ConnsClosing += proc.ConnsClosing
			a.ConnsTunnel += proc.Tunnels
		}
	}
	st.Certificates = p.certificates(now)
	st.IdleProcesses, st.ActiveProcesses = st.IdleWorkers, st.BusyWorkers
	st.TotalProcesses = st.IdleWorkers + st.BusyWorkers
	t := st.ticks
	st.CPUUser, st.CPUSystem = float64(t.user)/clockTicks, float64(t.system)/clockTicks
	st.CPUChildrenUser, st.CPUChildrenSystem = float64(t.childUser)/clockTicks, float64(t.childSystem)/clockTicks
	if cpu := t.total(); cpu > 0 && st.UptimeSeconds > 0 {
		st.CPULoad = float64(cpu) / clockTicks / float64(st.UptimeSeconds) * 100
	}
	return st
}

func loadavg() [3]string {
	b, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if err != nil || len(f) < 3 {
		return [3]string{"0.00", "0.00", "0.00"}
	}
	return [3]string{f[0], f[1], f[2]}
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times on Linux
// (sysconf(_SC_CLK_TCK), mod_status's tick).
const clockTicks = 100

// cpuTicks is CPU time in clock ticks, as times(2) and mod_status count it.
type cpuTicks struct{ user, system, childUser, childSystem uint64 }

func (t *cpuTicks) add(u cpuTicks) {
	t.user += u.user
	t.system += u.system
	t.childUser += u.childUser
	t.childSystem += u.childSystem
}

func (t cpuTicks) total() uint64 { return t.user + t.system + t.childUser + t.childSystem }

// readCPUTicks returns a process's CPU times (utime, stime, cutime, cstime
// of /proc/PID/stat); zero when it cannot be read.
func readCPUTicks(pid int) cpuTicks {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return cpuTicks{}
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return cpuTicks{}
	}
	n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
	// f[0] is field 3 (state): utime is field 14.
	return cpuTicks{user: n(11), system: n(12), childUser: n(13), childSystem: n(14)}
}

// uptime formats seconds for the HTML page: "1 day 2 hours 3 minutes 4
// seconds", "0 seconds" when zero.
func uptime(secs int64) string {
	if secs <= 0 {
		return "0 seconds"
	}
	return strings.TrimPrefix(apacheUptime(secs), " ")
}

// apacheUptime is mod_status's show_time: each non-zero unit with a
// leading space (" 1 day 2 hours 4 seconds"), nothing at all for zero.
func apacheUptime(secs int64) string {
	var b strings.Builder
	unit := func(n int64, name string) {
		if n == 0 {
			return
		}
		fmt.Fprintf(&b, " %d %s", n, name)
		if n != 1 {
			b.WriteByte('s')
		}
	}
	unit(secs/86400, "day")
	unit(secs%86400/3600, "hour")
	unit(secs%3600/60, "minute")
	unit(secs%60, "second")
	return b.String()
}

// writeAuto writes the ?auto form exactly as Apache 2.4's mod_status (with
// ExtendedStatus On) writes it: its keys, in its order, with its
// arithmetic (single-precision floats, kilobytes before rates) and APR's
// number format. Keys appear on the same conditions: CPULoad once there is
// CPU time, ReqPerSec and BytesPerSec once the uptime is a second or more,
// BytesPerReq and DurationPerReq once a request was served, the async block
// for the event model only.
func (st Status) writeAuto(w io.Writer) {
	const tick = float32(clockTicks)
	up := st.UptimeSeconds
	kb := st.TotalBytes / 1024
	count := st.TotalAccesses
	t := st.ticks
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", st.Host)
	fmt.Fprintf(&b, "ServerVersion: %s\n", st.Version)
	fmt.Fprintf(&b, "ServerMPM: %s\n", st.MPM)
	fmt.Fprintf(&b, "Server Built: %s\n", st.Built)
	fmt.Fprintf(&b, "CurrentTime: %s\n", st.Now.Format(apacheTime))
	fmt.Fprintf(&b, "RestartTime: %s\n", st.Restarted.Format(apacheTime))
	fmt.Fprintf(&b, "ParentServerConfigGeneration: %d\n", st.Generation)
	fmt.Fprintf(&b, "ParentServerMPMGeneration: %d\n", st.Generation-1)
	fmt.Fprintf(&b, "ServerUptimeSeconds: %d\n", up)
	fmt.Fprintf(&b, "ServerUptime:%s\n", apacheUptime(up))
	fmt.Fprintf(&b, "Load1: %s\nLoad5: %s\nLoad15: %s\n", st.Load[0], st.Load[1], st.Load[2])
	fmt.Fprintf(&b, "Total Accesses: %d\n", count)
	fmt.Fprintf(&b, "Total kBytes: %d\n", kb)
	fmt.Fprintf(&b, "Total Duration: %d\n", st.TotalDurationMs)
	fmt.Fprintf(&b, "CPUUser: %s\nCPUSystem: %s\nCPUChildrenUser: %s\nCPUChildrenSystem: %s\n",
		aprG(float64(float32(t.user)/tick)), aprG(float64(float32(t.system)/tick)),
		aprG(float64(float32(t.childUser)/tick)), aprG(float64(float32(t.childSystem)/tick)))
	if cpu := t.total(); cpu > 0 && up > 0 {
		// Apache divides by a zero uptime too, and prints garbage.
		fmt.Fprintf(&b, "CPULoad: %s\n", aprG(float64(float32(cpu)/tick/float32(up))*100))
	}
	fmt.Fprintf(&b, "Uptime: %d\n", up)
	if up > 0 {
		fmt.Fprintf(&b, "ReqPerSec: %s\n", aprG(float64(float32(count)/float32(up))))
		fmt.Fprintf(&b, "BytesPerSec: %s\n", aprG(float64(1024*float32(kb)/float32(up))))
	}
	if count > 0 {
		// Apache's duration and count cover the same requests; ours come
		// from the duration histogram, which counts its own.
		perReq := float32(0)
		if st.Timed > 0 {
			perReq = float32(st.TotalDurationMs) / float32(st.Timed)
		}
		fmt.Fprintf(&b, "BytesPerReq: %s\n", aprG(float64(1024*float32(kb)/float32(count))))
		fmt.Fprintf(&b, "DurationPerReq: %s\n", aprG(float64(perReq)))
	}
	fmt.Fprintf(&b, "BusyWorkers: %d\nGracefulWorkers: %d\nIdleWorkers: %d\n", st.BusyWorkers, st.GracefulWorkers, st.IdleWorkers)
	if a := st.Async; a != nil {
		fmt.Fprintf(&b, "Processes: %d\nStopping: %d\nConnsTotal: %d\nConnsAsyncWaitIO: %d\nConnsAsyncWriting: %d\nConnsAsyncKeepAlive: %d\nConnsAsyncClosing: %d\n",
			a.Processes, a.Stopping, a.ConnsTotal, a.ConnsWaitIO, a.ConnsWriting, a.ConnsKeepAlive, a.ConnsClosing)
	}
	fmt.Fprintf(&b, "Scoreboard: %s\n", st.Scoreboard)
	io.WriteString(w, b.String())
}

func (st Status) writeHTML(w io.Writer) {
	e := html.EscapeString
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>phased status</title>\n")
	b.WriteString("<style>body{font-family:system-ui,sans-serif;margin:2em}pre{font-size:1.2em;letter-spacing:.1em;white-space:pre-wrap;word-break:break-all;max-width:64ch}" +
		"table{border-collapse:collapse;margin-bottom:1em}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right}</style>\n")
	fmt.Fprintf(&b, "</head><body>\n<h1>phased server status for %s</h1>\n<dl>\n", e(st.Host))
	fmt.Fprintf(&b, "<dt>Server Version: %s</dt>\n<dt>Server MPM: %s</dt>\n<dt>Server Built: %s</dt>\n", e(st.Version), e(st.MPM), e(st.Built))
	fmt.Fprintf(&b, "<dt>Current Time: %s</dt>\n<dt>Restart Time: %s</dt>\n", st.Now.Format(apacheTime), st.Restarted.Format(apacheTime))
	fmt.Fprintf(&b, "<dt>Generation: %d</dt>\n<dt>Server uptime: %s</dt>\n", st.Generation, uptime(st.UptimeSeconds))
	fmt.Fprintf(&b, "<dt>Server load: %s %s %s</dt>\n", st.Load[0], st.Load[1], st.Load[2])
	fmt.Fprintf(&b, "<dt>Total accesses: %d - Total Traffic: %d kB</dt>\n", st.TotalAccesses, st.TotalBytes/1024)
	fmt.Fprintf(&b, "<dt>CPU Usage: u%s s%s cu%s cs%s - %.3g%% CPU load</dt>\n",
		gnum(st.CPUUser), gnum(st.CPUSystem), gnum(st.CPUChildrenUser), gnum(st.CPUChildrenSystem), st.CPULoad)
	fmt.Fprintf(&b, "<dt id=\"summary\">%d requests currently being processed, %d workers gracefully restarting, %d idle workers</dt>\n",
		st.BusyWorkers, st.GracefulWorkers, st.IdleWorkers)
	b.WriteString("</dl>\n")

	// PHP-FPM's pool fields, then the configured maxima they are measured
	// against.
	row := func(id, name string, v any) {
		fmt.Fprintf(&b, "<tr id=\"%s\"><th>%s</th><td class=\"n\">%v</td></tr>\n", id, name, v)
	}
	b.WriteString("<h2>Pool</h2>\n<table id=\"pool\">\n")
	row("accepted-conn", "accepted conn", st.AcceptedConn)
	row("listen-queue", "listen queue", st.ListenQueue)
	row("max-listen-queue", "max listen queue", st.MaxListenQueue)
	row("listen-queue-len", "listen queue len", st.ListenQueueLen)
	row("idle-processes", "idle processes", st.IdleProcesses)
	row("active-processes", "active processes", st.ActiveProcesses)
	row("total-processes", "total processes", st.TotalProcesses)
	row("max-children-reached", "max children reached", st.MaxChildren)
	row("slow-requests", "slow requests", st.SlowRequests)
	b.WriteString("</table>\n<h2>Configured maxima</h2>\n<table id=\"maxima\">\n")
	row("max-processes", "processes (server_limit)", st.MaxProcesses)
	row("threads-per-child", "workers per child (threads_per_child)", st.ThreadsPerChild)
	row("max-workers", "workers", st.MaxWorkers)
	for _, l := range st.Listeners {
		row("backlog-"+e(l.Addr), "accept queue of "+e(l.Addr)+" (listen_backlog)", l.Limit)
	}
	b.WriteString("</table>\n")
	if a := st.Async; a != nil {
		b.WriteString("<h2>Connections</h2>\n<table id=\"async\">\n")
		row("processes", "processes", a.Processes)
		row("stopping", "stopping", a.Stopping)
		row("conns-total", "connections", a.ConnsTotal)
		row("conns-reading", "reading a request (no worker)", a.ConnsWaitIO)
		row("conns-writing", "writing (no worker)", a.ConnsWriting)
		row("conns-keep-alive", "keep-alive (no worker)", a.ConnsKeepAlive)
		row("conns-closing", "closing", a.ConnsClosing)
		row("conns-tunnel", "tunnels: WebSockets (no worker)", a.ConnsTunnel)
		b.WriteString("</table>\n")
	}

	if slices.ContainsFunc(st.Children, func(p ProcessStatus) bool { return p.AppPID != 0 }) {
		b.WriteString("<h2>App servers</h2>\n<table id=\"apps\"><tr><th>Srv</th><th>PID</th><th>Gen</th><th>App PID</th><th>App memory</th></tr>\n")
		for _, p := range st.Children {
			fmt.Fprintf(&b, "<tr><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td class=\"n\">%d kB</td></tr>\n",
				p.Slot, p.PID, p.Generation, p.AppPID, p.AppMemory/1024)
		}
		b.WriteString("</table>\n")
	}

	if len(st.Certificates) > 0 {
		b.WriteString("<h2>TLS certificates</h2>\n<table id=\"certificates\"><tr><th>Listener</th><th>Names</th><th>File</th><th>Expires</th><th>Days left</th></tr>\n")
		for _, c := range st.Certificates {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td class=\"n\">%s</td></tr>\n",
				e(c.Listener), e(strings.Join(c.Names, ", ")), e(c.File), c.NotAfter.UTC().Format(apacheTime), daysLeft(c.SecondsLeft))
		}
		b.WriteString("</table>\n")
	}

	fmt.Fprintf(&b, "<pre id=\"scoreboard\">%s</pre>\n", e(st.Scoreboard))
	b.WriteString("<p>Scoreboard Key: <code>_</code> waiting for connection, <code>S</code> starting up, <code>R</code> reading request, " +
		"<code>W</code> sending reply, <code>K</code> keepalive, <code>C</code> closing connection, <code>L</code> logging, " +
		"<code>G</code> gracefully finishing, <code>I</code> idle cleanup, <code>.</code> open slot with no current process</p>\n")
	b.WriteString("<table id=\"workers\"><tr><th>Srv</th><th>PID</th><th>Gen</th><th>Acc</th><th>M</th><th>SS</th><th>Req</th><th>Bytes</th><th>Client</th><th>Request</th></tr>\n")
	for _, ws := range st.Workers {
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%d</td><td>%d</td><td><b>%s</b></td><td>%.0f</td><td>%d</td><td>%d</td><td>%s</td><td>%s</td></tr>\n",
			ws.Slot, ws.PID, ws.Generation, ws.Requests, e(ws.State), ws.SinceLast, ws.LastMillis, ws.Bytes, e(ws.Client), e(ws.RequestLine))
	}
	b.WriteString("</table>\n<hr /><address>phased</address>\n</body></html>\n")
	io.WriteString(w, b.String())
}

// gnum formats a float as C's %g, for the HTML page.
func gnum(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }
