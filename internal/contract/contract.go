// Package contract is the master-child contract: one typed, versioned
// description of everything a master gives a child, encoded by the master
// (Encode) and decoded by the child (Read) here and nowhere else.
//
// The story: to start a child, the master fills a Child (its generation and
// slot, the child model, timeouts, logs, status settings, exec hooks, and
// the descriptors it inherits by name: each listener, the scoreboard, the
// counters, the events pipe, the access log), and Encode writes it as JSON
// into a sealed memory file. The child inherits that file and the named
// descriptors, and exactly one environment variable, Env, names the
// contract's descriptor. Read reads it, closes it, and checks it: a contract
// of another Version, a malformed one or one that names a descriptor the
// child did not get is an error naming what is wrong, never a zero value.
// The memory file keeps secrets a later version will carry (TLS keys) out of
// the environment, which every process a child starts would inherit.
//
// Any change to Child bumps Version: a child refuses a contract of a version
// it does not know, naming both, and exits at once.
//
// The lines a child writes back on its events pipe (Event) and the signals
// and exit status the two sides agree on are part of the contract too.
package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/phasedhq/phased/internal/loglevel"
	"github.com/phasedhq/phased/internal/phase"
)

// Version is the contract version this build writes and reads.
const Version = 5

// Env is the one environment variable a master gives a child: the number of
// the descriptor that carries the child's contract.
const Env = "PHASED_CHILD_CONTRACT"

// ChildArg is the argument with which the master starts the phased binary
// as its own child (static files), when app.command is empty.
const ChildArg = "--internal-child"

// ErrNotChild is returned by Read when the process was not started by a
// phased master (Env is unset).
var ErrNotChild = errors.New("not running under a phased master")

// The child models.
const (
	ModelPrefork = "prefork"
	ModelWorker  = "worker"
	ModelEvent   = "event"
)

// Child is everything a master gives one child.
type Child struct {
	// Version is the contract's version; Read refuses any but Version.
	Version int `json:"version"`
	// Generation is the child's generation (1 at first start).
	Generation int `json:"generation"`
	// Pass is the configuration pass that made the generation.
	Pass int `json:"pass"`
	// Slot is the child's process slot in its generation (0-based).
	Slot int `json:"slot"`
	// MasterPID is the master's pid: a child whose parent is another
	// process knows its master is gone.
	MasterPID int `json:"master_pid"`
	// MasterStart is when the master started; GenerationStart when the
	// generation began (Apache's RestartTime).
	MasterStart     time.Time `json:"master_start"`
	GenerationStart time.Time `json:"generation_start"`
	// ConfigPath is the effective configuration as JSON, for exec hooks
	// (PHASED_CONFIG).
	ConfigPath string `json:"config_path"`
	// MPM is the MPM's name, for the status page.
	MPM string `json:"mpm"`
	// ServerVersion is the version of the phased the master runs, as
	// released ("v1.2.3", set at link time) or as Go's build information
	// records it (a pseudo-version); "" for a development build. The
	// status page prints it as Apache's ServerVersion.
	ServerVersion string `json:"server_version,omitempty"`
	// Model is how the child serves: prefork, worker or event.
	Model string `json:"model"`
	// Threads is the number of worker slots (threads_per_child; 1 for
	// prefork).
	Threads int `json:"threads"`
	// MaxConnections retires the child after that many connections
	// (max_connections_per_child, jitter applied); 0 = never.
	MaxConnections int `json:"max_connections"`
	// WorkerConnections bounds the connections an event child holds at
	// once (worker_connections); 0 = from its descriptor limit.
	WorkerConnections int `json:"worker_connections,omitempty"`
	// AcceptMutex, when set, is a path prefix: the child accepts on
	// listener i only while it holds an flock on PREFIX.i.
	AcceptMutex string `json:"accept_mutex,omitempty"`
	// AcceptWakeOne, when AcceptMutex is empty, makes the child wait for
	// connections in an epoll set of its own with EPOLLEXCLUSIVE (the
	// kernel wakes one waiting child per connection) instead of Go's
	// netpoller (which every child's runtime is woken for).
	AcceptWakeOne bool `json:"accept_wake_one,omitempty"`
	// Listeners are the listening sockets, in the order of the listen key.
	Listeners []Listener `json:"listeners"`
	// Scoreboard, Counters and Events name the descriptors of the
	// generation's scoreboard, the master's counter block and the pipe the
	// child reports on; "" = none.
	Scoreboard string `json:"scoreboard,omitempty"`
	Counters   string `json:"counters,omitempty"`
	Events     string `json:"events,omitempty"`
	// AccessLog is the shared access log; nil = off.
	AccessLog *AccessLog `json:"access_log,omitempty"`
	// Log is the error log's format and level; the child writes it on
	// stderr, which the master points at its error log.
	Log Log `json:"log"`
	// Timeouts bound slow clients and the drain.
	Timeouts Timeouts `json:"timeouts"`
	// Status is where the status page and the metrics are served.
	Status Status `json:"status"`
	// Health is where the liveness and readiness probes are answered.
	Health Health `json:"health"`
	// TrustedProxies are the networks (CIDRs) whose RealIPHeader, and
	// PROXY header on a listener with ProxyProtocol, is believed.
	TrustedProxies []string `json:"trusted_proxies,omitempty"`
	// RealIPHeader is the header a trusted proxy names the client in.
	RealIPHeader string `json:"real_ip_header,omitempty"`
	// Hooks are the child-init and child-exit exec hooks, in run order.
	Hooks []Hook `json:"hooks,omitempty"`
	// Static is the built-in child's static files; nil for Go app
	// children.
	Static *Static `json:"static,omitempty"`
	// Tickets names the descriptor of the session ticket keys every child
	// of the master shares (internal/tickets), so that a TLS session
	// resumes on any child of any generation; "" = none.
	Tickets string `json:"tickets,omitempty"`
	// ACMEChallenges is the folder where the master puts ACME HTTP-01
	// challenge answers, which every plain listener serves under
	// /.well-known/acme-challenge/; "" = none.
	ACMEChallenges string `json:"acme_challenges,omitempty"`
	// App is the app the built-in child serves (an app server, FastCGI,
	// CGI); nil for static files and Go app children.
	App *App `json:"app,omitempty"`
	// Files maps descriptor names to their numbers in the child.
	Files map[string]int `json:"files"`
}

// Listener is one listening socket.
type Listener struct {
	// Addr is the address as configured ("127.0.0.1:8080"), or the bound
	// address of a socket systemd passed.
	Addr string `json:"addr"`
	// File names its descriptor.
	File string `json:"file"`
	// TLS makes it speak HTTPS; nil is plain HTTP.
	TLS *TLS `json:"tls,omitempty"`
	// H2C serves HTTP/2 without TLS on a plain listener.
	H2C bool `json:"h2c,omitempty"`
	// RedirectHTTPS, on a plain listener, answers every request with a 301
	// to HTTPS on this port ("443": none in the URL).
	RedirectHTTPS string `json:"redirect_https,omitempty"`
	// ProxyProtocol requires a PROXY protocol header (v1 or v2) at the
	// start of every connection, before TLS.
	ProxyProtocol bool `json:"proxy_protocol,omitempty"`
}

// TLS is a listener's HTTPS, with the certificates the master read (so a
// child running as another user never reads a key file).
type TLS struct {
	// Certificates are PEM certificate chains and keys; the first answers
	// when no SNI name matches.
	Certificates []Certificate `json:"certificates"`
	// MinVersion is crypto/tls's version number (tls.VersionTLS12 ...).
	MinVersion uint16 `json:"min_version"`
	// Ciphers are TLS 1.2 cipher suite IDs; empty means Go's defaults.
	Ciphers []uint16 `json:"ciphers,omitempty"`
	// HTTP2 offers h2 by ALPN.
	HTTP2 bool `json:"http2"`
	// Challenges is the folder where the master puts ACME TLS-ALPN-01
	// challenge certificates ("" = no ACME).
	Challenges string `json:"challenges,omitempty"`
	// ClientCAs are the PEM certificates of the authorities client
	// certificates must chain to, and ClientAuth "optional" or "require"
	// ("" = no client certificates).
	ClientCAs  []byte `json:"client_cas,omitempty"`
	ClientAuth string `json:"client_auth,omitempty"`
}

// Certificate is one certificate chain and its key, PEM.
type Certificate struct {
	// File and KeyFile name where the master read them, for messages.
	File    string `json:"file"`
	KeyFile string `json:"key_file"`
	Cert    []byte `json:"cert"`
	Key     []byte `json:"key"`
}

// AccessLog is the shared access log.
type AccessLog struct {
	// File names its descriptor.
	File string `json:"file"`
	// Format is common, combined, json, common_duration or
	// combined_duration.
	Format string `json:"format"`
}

// Log is the error log's format and level.
type Log struct {
	// Format is json or text.
	Format string `json:"format"`
	// Level is debug, info, notice, warn or error.
	Level string `json:"level"`
}

// Timeouts bound slow clients and a graceful drain.
type Timeouts struct {
	ReadHeader time.Duration `json:"read_header"`
	Read       time.Duration `json:"read"`
	Write      time.Duration `json:"write"`
	Idle       time.Duration `json:"idle"`
	// MinRate is the slowest a request's header or body may arrive, in
	// bytes a second (timeouts.min_rate); 0 = no minimum.
	MinRate int `json:"min_rate,omitempty"`
	// Drain bounds a graceful drain (graceful_shutdown_timeout).
	Drain time.Duration `json:"drain"`
}

// Status is where a child answers the status page and the metrics.
type Status struct {
	// Path is the status page's path; "" = no status page.
	Path string `json:"path,omitempty"`
	// Allow are the networks (CIDRs) that may read the page and metrics.
	Allow []string `json:"allow,omitempty"`
	// Metrics is the Prometheus metrics' path; "" = off.
	Metrics string `json:"metrics,omitempty"`
	// SlowRequest is the duration above which a request counts as slow;
	// 0 = off.
	SlowRequest time.Duration `json:"slow_request,omitempty"`
}

// Health is where a child answers liveness and readiness probes.
type Health struct {
	// Liveness and Readiness are the paths; "" = off.
	Liveness  string `json:"liveness,omitempty"`
	Readiness string `json:"readiness,omitempty"`
	// Allow are the networks (CIDRs) that may ask.
	Allow []string `json:"allow,omitempty"`
}

// Hook is a child-init or child-exit exec hook.
type Hook struct {
	Name    string        `json:"name"`
	Phase   phase.Phase   `json:"phase"`
	Argv    []string      `json:"argv"`
	Dir     string        `json:"dir,omitempty"`
	Timeout time.Duration `json:"timeout"`
}

// Static is the built-in child's static file handler.
type Static struct {
	// Root is the document root.
	Root string `json:"root"`
	// Listing reports whether folders without an index are listed.
	Listing bool `json:"listing"`
}

// App is what the built-in child serves besides static files: an app
// server it starts and forwards to (http), a FastCGI server (its own or an
// external one), or CGI scripts.
type App struct {
	// Type is http, fastcgi or cgi.
	Type string `json:"type"`
	// Command is the app server's argv, placeholders ({socket}, {port},
	// {threads}, {slot}, {generation}) not yet substituted; empty for cgi
	// and an external FastCGI server.
	Command []string `json:"command,omitempty"`
	// Env is added to the app server's environment.
	Env map[string]string `json:"env,omitempty"`
	// Dir is a folder the child owns: its app server's socket, its
	// temporary files. The master makes it and removes it when the child
	// has exited.
	Dir string `json:"dir"`
	// Listen is socket or port.
	Listen string `json:"listen"`
	// HealthCheck is a path that must answer 2xx before the child
	// accepts; "" = the socket accepting is enough.
	HealthCheck string `json:"health_check,omitempty"`
	// StartTimeout bounds the app server's start; StopTimeout its stop
	// after StopSignal (a name: TERM, QUIT ...), then SIGKILL.
	StartTimeout time.Duration `json:"start_timeout"`
	StopSignal   string        `json:"stop_signal"`
	StopTimeout  time.Duration `json:"stop_timeout"`
	// ReadTimeout bounds the wait for an HTTP app's answer to begin, and
	// each read from a FastCGI server; 0 = none.
	ReadTimeout time.Duration `json:"read_timeout,omitempty"`
	// SendfilePaths are the folders whose files an HTTP app may name in
	// X-Sendfile; none: the header passes through.
	SendfilePaths []string `json:"sendfile_paths,omitempty"`
	// MaxBodySize bounds a request body (413 above); BodyBufferSize is
	// how much of it stays in memory. ResponseBufferSize is how much of a
	// response is read ahead in memory, MaxTempFileSize how much more in a
	// temporary file.
	MaxBodySize        int64 `json:"max_body_size"`
	BodyBufferSize     int64 `json:"body_buffer_size"`
	ResponseBufferSize int64 `json:"response_buffer_size"`
	MaxTempFileSize    int64 `json:"max_temp_file_size"`
	// FastCGI: an external server's address ("unix:/path" or host:port;
	// "" = the child's own), the index files and the script extensions.
	FastCGIAddress    string   `json:"fastcgi_address,omitempty"`
	FastCGIIndex      []string `json:"fastcgi_index,omitempty"`
	FastCGIExtensions []string `json:"fastcgi_extensions,omitempty"`
	// CGIPaths maps URL prefixes to script folders; CGITimeout bounds one
	// script's run.
	CGIPaths   map[string]string `json:"cgi_paths,omitempty"`
	CGITimeout time.Duration     `json:"cgi_timeout,omitempty"`
}

// The app types a child serves.
const (
	AppHTTP    = "http"
	AppFastCGI = "fastcgi"
	AppCGI     = "cgi"
)

// The descriptor names a master gives.
const (
	FileScoreboard = "scoreboard"
	FileCounters   = "counters"
	FileEvents     = "events"
	FileAccessLog  = "access_log"
	FileTickets    = "tickets"
)

// ListenerFile is the descriptor name of listener i.
func ListenerFile(i int) string { return "listener/" + strconv.Itoa(i) }

// Files collects the descriptors a child will inherit, each under a name.
// The zero value is empty and ready to use.
type Files struct {
	list  []*os.File
	names map[string]int
	err   error // the first bad Add, reported by Encode
}

// Add adds f under name and returns name. A nil file or a name added twice
// makes Encode fail.
func (fs *Files) Add(name string, f *os.File) string {
	if fs.names == nil {
		fs.names = map[string]int{}
	}
	_, dup := fs.names[name]
	switch {
	case fs.err != nil:
	case f == nil:
		fs.err = fmt.Errorf("descriptor %q: no file", name)
	case dup:
		fs.err = fmt.Errorf("descriptor %q added twice", name)
	default:
		fs.names[name] = 3 + len(fs.list) // exec.Cmd.ExtraFiles start at 3
		fs.list = append(fs.list, f)
	}
	return name
}

// Names returns the descriptor numbers by name, as a child will see them.
func (fs *Files) Names() map[string]int {
	out := make(map[string]int, len(fs.names))
	for n, fd := range fs.names {
		out[n] = fd
	}
	return out
}

// Encoded is a description ready for an exec: a contract for a child, or
// any other description Pack carries (a binary upgrade's).
type Encoded struct {
	// ExtraFiles are the descriptors the process inherits, for
	// exec.Cmd.ExtraFiles: the named ones, then the description itself.
	ExtraFiles []*os.File
	// Env is the environment entry ("PHASED_CHILD_CONTRACT=N") that
	// names the description's descriptor.
	Env string

	memfd *os.File
}

// Close closes the sender's copy of the description; call it once the
// process has started (or failed to).
func (e *Encoded) Close() error { return e.memfd.Close() }

// Encode writes c, with Version and the names of files, into a sealed
// memory file and returns what the child's exec needs.
func Encode(c Child, files *Files) (*Encoded, error) {
	if files.err != nil {
		return nil, fmt.Errorf("encoding the child's contract: %w", files.err)
	}
	c.Version = Version
	c.Files = files.Names()
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding the child's contract: %w", err)
	}
	return Pack(Env, b, files)
}

// Pack writes the description b into a sealed memory file and returns
// what an exec needs to pass it, with files, to a process that reads it
// with Unpack(env). Encode uses it for a child's contract.
func Pack(env string, b []byte, files *Files) (*Encoded, error) {
	if files.err != nil {
		return nil, files.err
	}
	fd, err := unix.MemfdCreate("phased-"+strings.ToLower(env), unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("creating a memory file: %w", err)
	}
	f := os.NewFile(uintptr(fd), env)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing a memory file: %w", err)
	}
	// Sealed: nobody changes it after the sender wrote it.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing a memory file: %w", err)
	}
	extra := append(slices.Clone(files.list), f)
	return &Encoded{ExtraFiles: extra, Env: env + "=" + strconv.Itoa(3+len(files.list)), memfd: f}, nil
}

// Read reads, checks and returns the contract the master gave this
// process, and closes its descriptor (the named descriptors stay open until
// the child takes them with File). It returns ErrNotChild when Env is unset.
func Read() (*Child, error) {
	b, err := Unpack(Env)
	if err != nil {
		return nil, err
	}
	return Decode(b)
}

// Unpack returns the description whose descriptor the variable env names,
// closes that descriptor and removes env from the environment, so nothing
// the process starts sees either. It returns ErrNotChild when env is unset.
func Unpack(env string) ([]byte, error) {
	v, ok := os.LookupEnv(env)
	if !ok {
		return nil, ErrNotChild
	}
	os.Unsetenv(env)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q: not a descriptor number", env, v)
	}
	f := os.NewFile(uintptr(fd), env)
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<24))
	if err != nil {
		return nil, fmt.Errorf("reading %s (descriptor %d): %w", env, fd, err)
	}
	return b, nil
}

// Decode parses and checks a contract. A contract of another version is an
// error naming both versions; unknown fields, missing required ones and
// descriptors it names but does not number are errors naming them.
func Decode(b []byte) (*Child, error) {
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	if v.Version == nil {
		return nil, errors.New("contract: no version")
	}
	if *v.Version != Version {
		return nil, fmt.Errorf("contract version %d from the master, but this child knows only version %d: build the child with the same phased version as the master", *v.Version, Version)
	}
	var c Child
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	return &c, nil
}

// check reports the first thing wrong with c.
func (c *Child) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Generation < 1 {
		bad("generation %d: must be at least 1", c.Generation)
	}
	if c.Slot < 0 {
		bad("slot %d: must not be negative", c.Slot)
	}
	switch c.Model {
	case ModelPrefork, ModelWorker, ModelEvent:
	default:
		bad("model %q: want prefork, worker or event", c.Model)
	}
	if c.Threads < 1 {
		bad("threads %d: must be at least 1", c.Threads)
	}
	if c.WorkerConnections < 0 {
		bad("worker_connections %d: must not be negative", c.WorkerConnections)
	}
	if c.MaxConnections < 0 {
		bad("max_connections %d: must not be negative", c.MaxConnections)
	}
	if len(c.Listeners) == 0 {
		bad("listeners: none")
	}
	for fd, n := range c.Files {
		if n < 3 {
			bad("files[%q] = %d: not an inherited descriptor", fd, n)
		}
	}
	named := func(what, name string) {
		if _, ok := c.Files[name]; !ok {
			bad("%s names descriptor %q, which files does not number", what, name)
		}
	}
	for i, l := range c.Listeners {
		if l.Addr == "" {
			bad("listeners[%d]: no address", i)
		}
		named(fmt.Sprintf("listeners[%d]", i), l.File)
		if t := l.TLS; t != nil && len(t.Certificates) == 0 && t.Challenges == "" {
			bad("listeners[%d].tls: no certificate", i)
		}
	}
	if c.Tickets != "" {
		named("tickets", c.Tickets)
	}
	for what, name := range map[string]string{"scoreboard": c.Scoreboard, "counters": c.Counters, "events": c.Events} {
		if name != "" {
			named(what, name)
		}
	}
	if c.AccessLog != nil {
		named("access_log", c.AccessLog.File)
		if c.AccessLog.Format == "" {
			bad("access_log: no format")
		}
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format %q: want json or text", c.Log.Format)
	}
	if _, err := loglevel.Parse(c.Log.Level); err != nil {
		bad("log.level: %w", err)
	}
	t := c.Timeouts
	if t.ReadHeader < 0 || t.Read < 0 || t.Write < 0 || t.Idle < 0 || t.Drain < 0 || t.MinRate < 0 {
		bad("timeouts %+v: must not be negative", t)
	}
	if a := c.App; a != nil {
		switch a.Type {
		case AppHTTP, AppFastCGI, AppCGI:
		default:
			bad("app.type %q: want http, fastcgi or cgi", a.Type)
		}
		if a.Dir == "" {
			bad("app.dir: none")
		}
		if (a.Type == AppHTTP || a.Type == AppFastCGI && a.FastCGIAddress == "") && len(a.Command) == 0 {
			bad("app.command: none")
		}
		if a.Listen != "socket" && a.Listen != "port" {
			bad("app.listen %q: want socket or port", a.Listen)
		}
		if a.StartTimeout <= 0 || a.StopTimeout <= 0 || a.MaxBodySize <= 0 || a.BodyBufferSize <= 0 || a.ResponseBufferSize <= 0 || a.MaxTempFileSize < 0 {
			bad("app: a bound is not positive")
		}
		if _, ok := Signals[a.StopSignal]; !ok {
			bad("app.stop_signal %q: unknown", a.StopSignal)
		}
	}
	for i, h := range c.Hooks {
		if !h.Phase.InChild() {
			bad("hooks[%d] (%q): phase %q does not run in children", i, h.Name, h.Phase)
		}
		if len(h.Argv) == 0 {
			bad("hooks[%d] (%q): no command", i, h.Name)
		}
	}
	return errors.Join(errs...)
}

// File returns the descriptor the contract names name, which the caller
// owns from then on (see OpenFile).
func (c *Child) File(name string) (*os.File, error) { return OpenFile(c.Files, name) }

// OpenFile returns the descriptor files numbers under name, which the
// caller owns from then on; it is kept from whatever the process execs. An
// unknown name, or a number that is not an open descriptor, is an error
// naming both.
func OpenFile(files map[string]int, name string) (*os.File, error) {
	fd, ok := files[name]
	if !ok {
		return nil, fmt.Errorf("contract: no descriptor %q", name)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("contract: descriptor %q (%d): %w", name, fd, err)
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name), nil
}

// Event is a line a child writes to its master on the events pipe.
type Event string

// The events.
const (
	// EventReady: the child accepts.
	EventReady Event = "ready"
	// EventRetireRequest asks the master to retire this child, which goes
	// on accepting until the master has a replacement ready and then sends
	// DrainSignal: an operator's SIGUSR1 or SIGTERM to one child.
	EventRetireRequest Event = "retire-request"
	// EventRetireMaxConnections is the same request from a child that
	// reached max_connections_per_child, so that the master counts the
	// recycle under its cause.
	EventRetireMaxConnections Event = "retire-request max-connections"
	// EventRetiring: the child drains, whoever asked.
	EventRetiring Event = "retiring"
	// EventClosed follows EventRetiring once the child has stopped
	// accepting: the master waits for it from every child of a generation
	// before telling them to cut their connections (a hard restart or stop).
	EventClosed Event = "closed"
)

// ParseEvent returns the event a line carries, or false for a line that is
// none (it is ignored: a newer child may say more).
func ParseEvent(line string) (Event, bool) {
	switch e := Event(strings.TrimSpace(line)); e {
	case EventReady, EventRetireRequest, EventRetireMaxConnections, EventRetiring, EventClosed:
		return e, true
	}
	return "", false
}

// initFailed starts the line of a child whose child-init failed, before it
// exits with ExitChildInit; the rest of the line says why. The master adds
// the reason to the child's exit status, so that a restart that fails for
// it (an app server that never answered) says so.
const initFailed = "init-failed "

// maxInitFailure bounds the reason a child gives: an app server's last
// lines can be long.
const maxInitFailure = 2000

// InitFailedLine is the event line that tells the master why a child's
// child-init failed: one line, at most maxInitFailure bytes of why.
func InitFailedLine(why string) string {
	why = strings.Join(strings.Fields(why), " ")
	if len(why) > maxInitFailure {
		why = strings.ToValidUTF8(why[:maxInitFailure], "") + " ..."
	}
	return initFailed + why
}

// ParseInitFailed returns the reason an InitFailedLine carries, or false
// for another line.
func ParseInitFailed(line string) (string, bool) {
	why, ok := strings.CutPrefix(strings.TrimSpace(line), initFailed)
	return why, ok
}

// DrainSignal is the signal with which the master tells a child to drain
// now (Apache's graceful-stop signal for children). SIGUSR1 and SIGTERM from
// anyone else are requests to retire, answered by the master with
// DrainSignal once the child's replacement is ready.
const DrainSignal = syscall.SIGWINCH

// Signals are the stop signals an app may be given, by name.
var Signals = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "HUP": syscall.SIGHUP,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "WINCH": syscall.SIGWINCH,
}

// StopSignal tells a child to stop at once, cutting what is in flight.
const StopSignal = syscall.SIGINT

// ExitChildInit is the exit status of a child whose child-init failed
// (Apache's APEXIT_CHILDINIT): the master backs off before replacing it.
const ExitChildInit = 3

// Environ returns environ without what phased keeps for itself: its
// configuration (PHASED_*, which would otherwise configure a phased that a
// hook or an app runs) and systemd's per-service variables (NOTIFY_SOCKET,
// WATCHDOG_*, LISTEN_*), which belong to the master alone. It is the
// environment the master hands down to children and hooks.
func Environ(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "PHASED_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") &&
			!strings.HasPrefix(kv, "WATCHDOG_") && !strings.HasPrefix(kv, "LISTEN_") {
			out = append(out, kv)
		}
	}
	return out
}
