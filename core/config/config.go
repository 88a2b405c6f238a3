package config

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

//go:embed default.yaml
var defaultYAML []byte

// Config is phased's effective configuration: every layer merged, every
// relative path made absolute against ServerRoot, every value validated.
// The koanf tags are the keys users write; the json and yaml tags carry the
// same names, but use YAML, JSON and FromJSON to serialize a Config, since
// they write durations as "30s" and the mpm section flat.
type Config struct {
	// ServerRoot is the base of every relative path. Relative in the config
	// file, it is taken from the file's folder; relative in the environment
	// or a -c override, from the working directory. Unset, it is the config
	// file's folder, or the working directory for the embedded default.
	// Always absolute after Load.
	ServerRoot string `koanf:"server_root" json:"server_root" yaml:"server_root"`

	// Listen lists the sockets the master listens on, one each: an
	// address "host:port" (host is an IPv4 address, an IPv6 address in
	// brackets, a name such as localhost, or empty for every interface;
	// port is 0 to 65535), or a mapping with the address and the
	// listener's TLS and other options (see Listener). At least one, no
	// duplicate addresses (port 0 may repeat). Default ["127.0.0.1:8080"].
	Listen []Listener `koanf:"listen" json:"listen" yaml:"listen"`

	// ListenBacklog is the listen(2) backlog, 1 to 65535 (Linux caps it
	// at net.core.somaxconn). Default 511.
	ListenBacklog int `koanf:"listen_backlog" json:"listen_backlog" yaml:"listen_backlog"`

	// PidFile is where the master writes its pid. Default "phased.pid".
	PidFile string `koanf:"pid_file" json:"pid_file" yaml:"pid_file"`

	// ControlSocket is the unix socket the -k verbs and status talk to. Set
	// to "" in the config, Load derives it from PidFile with the extension
	// replaced by ".sock", so after Load it is never "".
	ControlSocket string `koanf:"control_socket" json:"control_socket" yaml:"control_socket"`

	// DocumentRoot is the built-in static handler's root; with an HTTP app,
	// the files served before it (Passenger's public folder). Default
	// "public".
	DocumentRoot string `koanf:"document_root" json:"document_root" yaml:"document_root"`

	// DirectoryListing reports whether the static handler lists
	// directories without an index file. Default false.
	DirectoryListing bool `koanf:"directory_listing" json:"directory_listing" yaml:"directory_listing"`

	// User is the user children run as when the master is root; "" keeps
	// the master's user. Default "".
	User string `koanf:"user" json:"user" yaml:"user"`

	// Group is the group children run as when the master is root; "" keeps
	// the master's group. Default "".
	Group string `koanf:"group" json:"group" yaml:"group"`

	// DoubleStart reports whether phased rehearses a restart at start by
	// running the config pass twice. Default true.
	DoubleStart bool `koanf:"double_start" json:"double_start" yaml:"double_start"`

	// GracefulShutdownTimeout bounds how long an old generation may drain
	// before it is told to stop now (SIGINT), then killed (SIGKILL). Greater than 0. Default 30s.
	GracefulShutdownTimeout time.Duration `koanf:"graceful_shutdown_timeout" json:"graceful_shutdown_timeout" yaml:"graceful_shutdown_timeout"`

	// SIGTERM is what SIGTERM to the master means: "stop" (Apache's: stop
	// now, cutting requests in flight) or "graceful-stop" (stop accepting,
	// let requests finish, bounded by GracefulShutdownTimeout), which is
	// what container runtimes and Kubernetes want, since SIGTERM is the
	// only stop they send. SIGINT always stops now, SIGWINCH always stops
	// gracefully. Default "stop".
	SIGTERM string `koanf:"sigterm" json:"sigterm" yaml:"sigterm"`

	// TrustedProxies lists the networks (CIDRs) of the proxies and load
	// balancers whose word on the client's address is believed: the
	// RealIPHeader of a request from one of them, and the PROXY header on
	// a listener with proxy_protocol (nginx's set_real_ip_from, Apache's
	// RemoteIPTrustedProxy). Default none: every request's client is its
	// connection's peer (or what a PROXY header says, on such a listener).
	TrustedProxies []string `koanf:"trusted_proxies" json:"trusted_proxies" yaml:"trusted_proxies"`

	// RealIPHeader is the header a trusted proxy names the client in:
	// X-Forwarded-For, Forwarded (RFC 7239) or X-Real-IP (nginx's
	// real_ip_header, Apache's RemoteIPHeader). Read from the right, the
	// first address that is not a trusted proxy's is the client (nginx's
	// real_ip_recursive on). Default X-Forwarded-For.
	RealIPHeader string `koanf:"real_ip_header" json:"real_ip_header" yaml:"real_ip_header"`

	// Health is the liveness and readiness endpoints every child answers,
	// for load balancers and Kubernetes probes.
	Health Health `koanf:"health" json:"health" yaml:"health"`

	// WorkerConnections bounds the connections an event child holds at
	// once, reading, served or idle (nginx's worker_connections); a worker
	// or prefork child holds one per thread. 0 derives it from the child's
	// descriptor limit. At least 0. Default 0.
	WorkerConnections int `koanf:"worker_connections" json:"worker_connections" yaml:"worker_connections"`

	// WorkerCPUAffinity binds each child, and every process it starts (its
	// app server above all), to CPUs (nginx's worker_cpu_affinity): none
	// (the default), auto (the children a generation starts with share
	// the CPUs out in groups, a later child sharing a group), or one CPU
	// list per child slot separated by spaces ("0-3 4-7"), taken in turn.
	WorkerCPUAffinity string `koanf:"worker_cpu_affinity" json:"worker_cpu_affinity" yaml:"worker_cpu_affinity"`

	// Timeouts are the children's HTTP server timeouts.
	Timeouts Timeouts `koanf:"timeouts" json:"timeouts" yaml:"timeouts"`

	// ErrorLog is the master's and children's log.
	ErrorLog ErrorLog `koanf:"error_log" json:"error_log" yaml:"error_log"`

	// AccessLog is the request log.
	AccessLog AccessLog `koanf:"access_log" json:"access_log" yaml:"access_log"`

	// Status is the server-status page the children answer.
	Status Status `koanf:"status" json:"status" yaml:"status"`

	// MPM names the process model and carries its settings.
	MPM MPM `koanf:"mpm" json:"mpm" yaml:"mpm"`

	// App says what the children run.
	App App `koanf:"app" json:"app" yaml:"app"`

	// Hooks are the startup scripts and hook plugins, in config order.
	// Default none.
	Hooks []Hook `koanf:"hooks" json:"hooks" yaml:"hooks"`

	// File is the absolute path of the config file Load read, or "" for the
	// embedded default and for FromJSON. It is not a configuration key.
	File string `koanf:"-" json:"-" yaml:"-"`
}

// Timeouts are the HTTP server timeouts of a child; each is greater than 0.
type Timeouts struct {
	// ReadHeader bounds reading a request's header. Default 10s.
	ReadHeader time.Duration `koanf:"read_header" json:"read_header" yaml:"read_header"`

	// Read bounds reading a whole request. Default 60s.
	Read time.Duration `koanf:"read" json:"read" yaml:"read"`

	// Write bounds writing a response. Default 60s.
	Write time.Duration `koanf:"write" json:"write" yaml:"write"`

	// Idle is how long a keep-alive connection may wait for its next
	// request (Apache's KeepAliveTimeout). Default 5s.
	Idle time.Duration `koanf:"idle" json:"idle" yaml:"idle"`

	// MinRate is the slowest, in bytes a second, a request's header or
	// body may arrive once half of ReadHeader is past, from the header's
	// first byte or the body's start (mod_reqtimeout's MinRate); 0 turns
	// it off. At least 0. Default 500.
	MinRate int `koanf:"min_rate" json:"min_rate" yaml:"min_rate"`
}

// ErrorLog configures the error log.
type ErrorLog struct {
	// Path is "stderr", "stdout" or a file. Default "stderr".
	Path string `koanf:"path" json:"path" yaml:"path"`

	// Level is debug, info, notice, warn or error. Default info.
	Level string `koanf:"level" json:"level" yaml:"level"`

	// Format is auto (coloured text on a terminal, JSON otherwise), text
	// or json. Default auto.
	Format string `koanf:"format" json:"format" yaml:"format"`
}

// AccessLog configures the request log.
type AccessLog struct {
	// Path is "" (no access log), "stderr", "stdout" or a file. Default "".
	Path string `koanf:"path" json:"path" yaml:"path"`

	// Format is common, combined or json. Default combined.
	Format string `koanf:"format" json:"format" yaml:"format"`
}

// Status configures the server-status page (Apache's mod_status).
type Status struct {
	// Path is where children answer it; "" turns it off. Default
	// "/server-status".
	Path string `koanf:"path" json:"path" yaml:"path"`

	// Allow lists the client networks (CIDRs) that may read it; others get
	// 403. Default loopback only: ["127.0.0.0/8", "::1/128"].
	Allow []string `koanf:"allow" json:"allow" yaml:"allow"`

	// Metrics is where children answer Prometheus metrics, to the same
	// networks; "" turns it off. Default "/metrics".
	Metrics string `koanf:"metrics" json:"metrics" yaml:"metrics"`

	// SlowRequest counts a request as slow (PHP-FPM's slow requests) when it
	// takes longer; 0 turns the count off. Default 5s.
	SlowRequest time.Duration `koanf:"slow_request" json:"slow_request" yaml:"slow_request"`
}

// Health configures the liveness and readiness endpoints. Every child
// answers them from shared memory the master writes, without asking the
// master, and before the access log: a probe costs no log line.
type Health struct {
	// LivenessPath answers 200 while the master runs (its event loop was
	// heard from within the last 10 s) and a generation serves (a child
	// answered), 503 otherwise: what a Kubernetes livenessProbe or a
	// Docker HEALTHCHECK asks. "" turns it off. Default "/livez".
	LivenessPath string `koanf:"liveness_path" json:"liveness_path" yaml:"liveness_path"`

	// ReadinessPath answers 200 while phased takes new requests, and 503
	// from the moment a graceful stop (or a stop) begins: during
	// DrainDelay requests are still served, so a load balancer that
	// checks this path stops sending before the listeners close. What a
	// Kubernetes readinessProbe or HAProxy's option httpchk asks. "" turns
	// it off. Default "/readyz".
	ReadinessPath string `koanf:"readiness_path" json:"readiness_path" yaml:"readiness_path"`

	// Allow lists the client networks (CIDRs) that may ask; others get
	// 403. Default loopback only: ["127.0.0.0/8", "::1/128"].
	Allow []string `koanf:"allow" json:"allow" yaml:"allow"`

	// DrainDelay is how long a graceful stop (phased -k graceful-stop,
	// SIGWINCH, SIGTERM with sigterm: graceful-stop) answers readiness
	// with 503 while still accepting and serving, before the listeners
	// close and the children drain: the preStop sleep of a Kubernetes pod,
	// built in. Set it above the balancer's check interval times its fall
	// count. 0 or more. Default 0s.
	DrainDelay time.Duration `koanf:"drain_delay" json:"drain_delay" yaml:"drain_delay"`
}

// MPM names the process model and carries its settings. Users write it flat,
// name beside the settings:
//
//	mpm:
//	  name: worker
//	  start_servers: 2
//
// and YAML, JSON and FromJSON keep that shape.
type MPM struct {
	// Name is prefork, worker, event, or the path of a third-party MPM
	// plugin (any name containing "/", made absolute against ServerRoot).
	// Default worker.
	Name string `koanf:"name" json:"name" yaml:"name"`

	// Settings holds every other key of the mpm section, verbatim, for the
	// MPM to validate: config does not know them. Values are what YAML
	// gives (int, float64, bool, string, lists, maps); values from the
	// environment or -c are read as YAML scalars, so "4" arrives as int 4.
	// The embedded default's settings (start_servers: 2) apply only while
	// Name stays the default's. Never nil after Load.
	Settings map[string]any `koanf:",remain" json:"-" yaml:",inline"`
}

// App says what the children run.
type App struct {
	// Type is what each child runs: "static" (phased's own static files
	// from DocumentRoot and the status page), "go" (Command is a Go program
	// serving through phased's sdk/child), "http" (each child starts one
	// app server from Command, such as gunicorn, puma, Starman or node, and
	// forwards requests to it), "fastcgi" (each child starts a FastCGI
	// server from Command, such as php-cgi, or uses FastCGI.Address; PHP
	// scripts and static files from DocumentRoot) or "cgi" (scripts under
	// CGI.Paths run per request). Default: "static" without a command, "go"
	// with one.
	Type string `koanf:"type" json:"type" yaml:"type"`

	// Command is the child's argv (go) or the app server's (http, fastcgi);
	// empty for static and cgi. Command[0] is made absolute against
	// ServerRoot when it contains "/". In an app server's arguments
	// {socket} is the unix socket it must listen on, {port} the loopback
	// port (Listen says which), {threads} threads_per_child, {slot} and
	// {generation} the child's. Default empty.
	Command []string `koanf:"command" json:"command" yaml:"command"`

	// Env is added to the children's and the app servers' environment.
	// Default empty.
	Env map[string]string `koanf:"env" json:"env" yaml:"env"`

	// Listen is how an app server is reached: "socket" (a unix socket its
	// child owns: {socket} in Command, PHASED_APP_SOCKET in its environment)
	// or "port" (127.0.0.1 and a free port: {port}, PORT). Default "socket".
	Listen string `koanf:"listen" json:"listen" yaml:"listen"`

	// HealthCheck is a path an app server must answer with 2xx before its
	// child accepts; "" means its socket accepting is enough. Default "".
	HealthCheck string `koanf:"health_check" json:"health_check" yaml:"health_check"`

	// StartTimeout bounds an app server's start, until it answers
	// (Passenger's passenger_start_timeout). Default 60s.
	StartTimeout time.Duration `koanf:"start_timeout" json:"start_timeout" yaml:"start_timeout"`

	// StopSignal is what an app server gets once its child has drained:
	// TERM, INT, QUIT, HUP, USR1, USR2 or WINCH (unicorn and Starman stop
	// gracefully on QUIT). Default TERM.
	StopSignal string `koanf:"stop_signal" json:"stop_signal" yaml:"stop_signal"`

	// StopTimeout bounds an app server's stop; then it is killed. Default
	// 30s.
	StopTimeout time.Duration `koanf:"stop_timeout" json:"stop_timeout" yaml:"stop_timeout"`

	// ReadTimeout bounds how long an app server speaking HTTP may take to
	// begin its answer once it has the request (nginx's
	// proxy_read_timeout, Apache's ProxyTimeout); past it the client gets
	// 504 and the app's connection is closed. A body that has begun flows
	// without a bound (a stream may pause); a WebSocket silent both ways
	// for as long is closed. For a FastCGI server it bounds
	// each wait for its next bytes (nginx's fastcgi_read_timeout). 0 = no
	// bound. Default 60s.
	ReadTimeout time.Duration `koanf:"read_timeout" json:"read_timeout" yaml:"read_timeout"`

	// RestartFile is a file whose change (a newer modification time, or
	// its appearing) restarts the children gracefully, as touching
	// Passenger's tmp/restart.txt restarts an app: a deploy touches it.
	// Relative to ServerRoot; looked at once a second. Default "" (none).
	RestartFile string `koanf:"restart_file" json:"restart_file" yaml:"restart_file"`

	// SendfilePaths are the folders an HTTP or FastCGI app may name in an X-Sendfile
	// answer header (Apache's mod_xsendfile, XSendFilePath): the child
	// then sends that file itself, the app's status and headers with it,
	// and tells the app it may (X-Sendfile-Type: X-Sendfile on each
	// request, which Rack::Sendfile and the like read). Relative to
	// ServerRoot. Default none: X-Sendfile passes through as any header.
	SendfilePaths []string `koanf:"sendfile_paths" json:"sendfile_paths" yaml:"sendfile_paths"`

	// MaxBodySize is the largest request body a child takes for an app
	// (413 above; nginx's client_max_body_size). Default 100M.
	MaxBodySize Size `koanf:"max_body_size" json:"max_body_size" yaml:"max_body_size"`

	// BodyBufferSize is how much of a request body a child keeps in memory
	// before it writes the rest to a temporary file; the whole body is in
	// before the request reaches the app. Default 1M.
	BodyBufferSize Size `koanf:"body_buffer_size" json:"body_buffer_size" yaml:"body_buffer_size"`

	// ResponseBufferSize is how much of a response a child reads ahead of
	// a slow client in memory; MaxTempFileSize how much more in a temporary
	// file, past which the rest flows at the client's pace (nginx's
	// proxy_buffers and proxy_max_temp_file_size). Defaults 1M and 1G.
	ResponseBufferSize Size `koanf:"response_buffer_size" json:"response_buffer_size" yaml:"response_buffer_size"`
	MaxTempFileSize    Size `koanf:"max_temp_file_size" json:"max_temp_file_size" yaml:"max_temp_file_size"`

	// FastCGI configures the fastcgi type.
	FastCGI FastCGI `koanf:"fastcgi" json:"fastcgi" yaml:"fastcgi"`

	// CGI configures the cgi type.
	CGI CGI `koanf:"cgi" json:"cgi" yaml:"cgi"`
}

// FastCGI configures apps served over FastCGI.
type FastCGI struct {
	// Address is an external FastCGI server (a php-fpm pool):
	// "unix:/run/php/php-fpm.sock" or "127.0.0.1:9000"; "" means each
	// child's own, from Command. Default "".
	Address string `koanf:"address" json:"address" yaml:"address"`

	// Index are the files a folder's request is served with. Default
	// [index.php].
	Index []string `koanf:"index" json:"index" yaml:"index"`

	// Extensions are the file extensions that are scripts; other files
	// are served as static files. Default [.php].
	Extensions []string `koanf:"extensions" json:"extensions" yaml:"extensions"`
}

// CGI configures CGI scripts.
type CGI struct {
	// Paths maps URL prefixes to the folders whose executables are run
	// (Apache's ScriptAlias): {"/cgi-bin/": "cgi-bin"}. Default empty.
	Paths map[string]string `koanf:"paths" json:"paths" yaml:"paths"`

	// Timeout bounds one script's run. Default 60s.
	Timeout time.Duration `koanf:"timeout" json:"timeout" yaml:"timeout"`
}

// The app types.
const (
	AppStatic  = "static"
	AppGo      = "go"
	AppHTTP    = "http"
	AppFastCGI = "fastcgi"
	AppCGI     = "cgi"
)

// Hook is a startup script (Exec) or hook plugin (Plugin) run at a phase.
// config checks the fields one by one; the phases package checks how hooks
// relate (order, before, after).
type Hook struct {
	// Name identifies the hook in logs, errors and before/after lists.
	// Required and unique.
	Name string `koanf:"name" json:"name" yaml:"name"`

	// Phase is configure, open-logs, post-config, child-init, child-exit or
	// shutdown. Required.
	Phase string `koanf:"phase" json:"phase" yaml:"phase"`

	// Exec is the argv of a script; Exec[0] is made absolute against
	// ServerRoot when it contains "/". Exactly one of Exec and Plugin.
	Exec []string `koanf:"exec" json:"exec" yaml:"exec"`

	// Plugin is the path of a go-plugin hook plugin, made absolute against
	// ServerRoot. Exactly one of Exec and Plugin.
	Plugin string `koanf:"plugin" json:"plugin" yaml:"plugin"`

	// Order is really-first, first, middle, last, really-last or an integer
	// (written as a number or a string), kept as written for the phases
	// package to interpret. Default "middle".
	Order string `koanf:"order" json:"order" yaml:"order"`

	// Before names hooks of the same phase this one runs before.
	Before []string `koanf:"before" json:"before" yaml:"before"`

	// After names hooks of the same phase this one runs after.
	After []string `koanf:"after" json:"after" yaml:"after"`

	// Timeout bounds one run of the hook; 0 or unset means 30s.
	Timeout time.Duration `koanf:"timeout" json:"timeout" yaml:"timeout"`

	// Settings are the hook plugin's own settings, verbatim, for the
	// plugin to read and validate (as an MPM does its mpm: keys): config
	// does not know them. The master passes them with Describe and every
	// phase (plugin protocol 3); a plugin rejects one with an error naming
	// hooks[i].settings.KEY. Plugin hooks only.
	Settings map[string]any `koanf:"settings" json:"settings,omitempty" yaml:"settings,omitempty"`
}

// LoadOptions says where configuration comes from. Layers apply in this
// order, each over the one before: the embedded default, File, Env,
// Overrides.
type LoadOptions struct {
	// File is the YAML config file (phased -f). "" uses the embedded default
	// alone.
	File string

	// Env is the environment as os.Environ returns it. Its PHASED_*
	// entries are configuration (the names phased sets for hooks and
	// children aside, see the package documentation), and the file's
	// ${VAR} and ${VAR:-default} references are resolved from all of it.
	// nil reads no environment; pass os.Environ() to read the process's.
	Env []string

	// Overrides are "key=value" pairs from -c flags, dotted keys
	// ("mpm.start_servers=4"), applied in order so the last one of a key
	// wins. nil means none.
	Overrides []string
}

// Load reads the configuration from the embedded default, opts.File, the
// PHASED_* environment in opts.Env and the -c overrides in opts.Overrides,
// each layer over the one before, and returns it validated with every
// relative path made absolute.
//
// A file that cannot be read is returned as the *fs.PathError from opening
// it. Every other problem is an *Error naming the source and the key at
// fault; Load reports all it finds, joined with errors.Join.
func Load(opts LoadOptions) (*Config, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("finding the working directory: %w", err)
	}
	return load(opts, cwd)
}

// Default returns the embedded default configuration (the worker MPM on
// 127.0.0.1:8080) with paths resolved against the working directory, or
// against "/" if the working directory cannot be found. It panics only if
// the embedded default itself is broken, which the package's tests rule out.
func Default() *Config {
	cwd, err := os.Getwd()
	if err != nil {
		cwd = string(filepath.Separator)
	}
	c, err := load(LoadOptions{}, cwd)
	if err != nil {
		panic("config: embedded default.yaml is invalid: " + err.Error())
	}
	return c
}

// ControlSocket finds the control socket of the configuration opts names
// reading only server_root, pid_file and control_socket, and leaving every
// other key unchecked: a -k graceful or restart can then reach a master
// whose file has since been broken, and the master, re-reading the file,
// fails the pass, logs why and answers with the error. It fails when even
// those keys cannot be read (a file that is missing or is not YAML).
func ControlSocket(opts LoadOptions) (string, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the working directory: %w", err)
	}
	c, err := loadLayers(opts, cwd, func(l *layer) *layer {
		if l.kind == kindDefault {
			return l
		}
		kept := map[string]any{}
		for _, key := range []string{"server_root", "pid_file", "control_socket"} {
			if v, ok := l.data[key].(string); ok {
				kept[key] = v
			}
		}
		return newLayer(l.kind, l.name, kept, l.sources)
	})
	if err != nil {
		return "", err
	}
	return c.ControlSocket, nil
}

// load is Load with the working directory given.
func load(opts LoadOptions, cwd string) (*Config, error) {
	return loadLayers(opts, cwd, nil)
}

// loadLayers is load with each layer passed through keep, when set, before
// the layers are checked and merged; errors found while reading a layer
// are dropped then.
func loadLayers(opts LoadOptions, cwd string, keep func(*layer) *layer) (*Config, error) {
	var errs []error
	def, err := yamlLayer(kindDefault, "default", defaultYAML)
	if err != nil {
		return nil, err
	}
	layers := []*layer{def}
	file := ""
	if opts.File != "" {
		file = opts.File
		if !filepath.IsAbs(file) {
			file = filepath.Join(cwd, file)
		}
		file = filepath.Clean(file)
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		l, err := yamlLayer(kindFile, file, b)
		if err != nil {
			return nil, err
		}
		if xerrs := expandEnv(l.data, opts.Env, file); len(xerrs) > 0 {
			errs = append(errs, xerrs...)
		} else {
			l = newLayer(l.kind, l.name, l.data, l.sources)
		}
		layers = append(layers, l)
	}
	if opts.Env != nil {
		l, lerrs := envLayer(opts.Env)
		errs = append(errs, lerrs...)
		layers = append(layers, l)
	}
	if opts.Overrides != nil {
		l, lerrs := overrideLayer(opts.Overrides)
		errs = append(errs, lerrs...)
		layers = append(layers, l)
	}
	if keep != nil {
		for i, l := range layers {
			layers[i] = keep(l)
		}
		errs = nil
	}
	return build(layers, cwd, file, errs)
}
