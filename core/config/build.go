package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/v2"

	"github.com/phasedhq/phased/internal/clientip"
	"github.com/phasedhq/phased/internal/cpuset"
)

// Defaults a hook gets when it leaves order or timeout out.
const (
	defaultHookOrder   = "middle"
	defaultHookTimeout = 30 * time.Second
)

// maxSocketPath is the longest path a unix socket can bind to on Linux
// (sun_path is 108 bytes, NUL included).
const maxSocketPath = 107

// build checks each layer, merges them, decodes, resolves paths and
// validates. errs are problems found while reading the layers.
func build(ls layers, cwd, file string, errs []error) (*Config, error) {
	for _, l := range ls {
		errs = append(errs, checkLayer(l)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	dropDefaultMPMSettings(ls)

	merged := koanf.New(".")
	for _, l := range ls {
		if err := merged.Merge(l.k); err != nil {
			return nil, fmt.Errorf("merging %s: %w", l.name, err)
		}
	}
	c := new(Config)
	if err := merged.UnmarshalWithConf("", c, koanf.UnmarshalConf{DecoderConfig: decoderConfig(c)}); err != nil {
		return nil, decodeError(ls, err)
	}
	c.File = file
	derived := c.finish(ls, cwd)
	if errs := c.validate(ls, derived); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// dropDefaultMPMSettings removes the embedded default's MPM settings when a
// higher layer names another MPM, which may not know them.
func dropDefaultMPMSettings(ls layers) {
	if len(ls) == 0 || ls[0].kind != kindDefault {
		return
	}
	def := ls[0]
	name := def.k.String("mpm.name")
	for _, l := range ls[1:] {
		if l.k.Exists("mpm.name") && l.k.String("mpm.name") != name {
			def.k.Delete("mpm")
			_ = def.k.Set("mpm.name", name) // setting a plain key cannot fail
			def.data = def.k.Raw()
			return
		}
	}
}

// decodeError rewrites an error from the merged decode, which the per-layer
// checks should have made impossible, into an *Error naming a source.
func decodeError(ls layers, err error) error {
	var de *mapstructure.DecodeError
	if errors.As(err, &de) {
		key := de.Name()
		return &Error{Source: ls.source(key), Key: key, Err: de.Unwrap()}
	}
	return &Error{Msg: "decoding configuration", Err: err}
}

// finish fills what Load derives: hook defaults, ServerRoot and every path
// made absolute, the control socket. It reports whether ControlSocket was
// derived from PidFile.
func (c *Config) finish(ls layers, cwd string) (derived bool) {
	base := cwd
	if c.File != "" {
		base = filepath.Dir(c.File)
	}
	switch root := c.ServerRoot; {
	case root == "":
		c.ServerRoot = base
	case !filepath.IsAbs(root):
		// Relative in the file: from the file's folder. Typed in the
		// environment or a -c flag: from where the user stands.
		from := cwd
		if l := ls.setter("server_root"); l != nil && l.kind == kindFile {
			from = base
		}
		c.ServerRoot = filepath.Join(from, root)
	}
	c.ServerRoot = filepath.Clean(c.ServerRoot)

	c.PidFile = c.abs(c.PidFile)
	c.DocumentRoot = c.abs(c.DocumentRoot)
	c.App.RestartFile = c.abs(c.App.RestartFile)
	for i, p := range c.App.SendfilePaths {
		c.App.SendfilePaths[i] = c.abs(p)
	}
	if c.ControlSocket == "" && c.PidFile != "" {
		c.ControlSocket = strings.TrimSuffix(c.PidFile, filepath.Ext(c.PidFile)) + ".sock"
		derived = true
	}
	c.ControlSocket = c.abs(c.ControlSocket)
	c.ErrorLog.Path = c.logPath(c.ErrorLog.Path)
	c.AccessLog.Path = c.logPath(c.AccessLog.Path)
	for i := range c.Hooks {
		if len(c.Hooks[i].Settings) == 0 {
			c.Hooks[i].Settings = nil // none, however it was decoded
		}
	}
	if strings.Contains(c.MPM.Name, "/") {
		c.MPM.Name = c.abs(c.MPM.Name)
	}
	if c.MPM.Settings == nil {
		c.MPM.Settings = map[string]any{}
	}
	c.finishApp()
	if c.Hooks == nil {
		c.Hooks = []Hook{}
	}
	for i := range c.Hooks {
		h := &c.Hooks[i]
		h.Exec = c.command(h.Exec)
		h.Plugin = c.abs(h.Plugin)
		if h.Order == "" {
			h.Order = defaultHookOrder
		}
		if h.Timeout == 0 {
			h.Timeout = defaultHookTimeout
		}
		if h.Before == nil {
			h.Before = []string{}
		}
		if h.After == nil {
			h.After = []string{}
		}
	}
	c.finishListen()
	if c.Health.Allow == nil {
		c.Health.Allow = []string{}
	}
	if c.TrustedProxies == nil {
		c.TrustedProxies = []string{}
	}
	return derived
}

// abs makes p absolute against ServerRoot; "" stays "".
func (c *Config) abs(p string) string {
	if p == "" {
		return ""
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.ServerRoot, p)
	}
	return filepath.Clean(p)
}

// logPath is abs for a log file, leaving "", "stderr" and "stdout" alone.
func (c *Config) logPath(p string) string {
	if p == "" || p == "stderr" || p == "stdout" {
		return p
	}
	return c.abs(p)
}

// command makes argv[0] absolute when it is a path (contains "/"); a bare
// name is left for $PATH. nil becomes empty.
func (c *Config) command(argv []string) []string {
	if argv == nil {
		return []string{}
	}
	if len(argv) > 0 && strings.Contains(argv[0], "/") {
		argv[0] = c.abs(argv[0])
	}
	return argv
}

var (
	logLevels        = []string{"debug", "info", "notice", "warn", "error"}
	errorLogFormats  = []string{"auto", "text", "json"}
	accessLogFormats = []string{"common", "combined", "json", "common_duration", "combined_duration"} // internal/accesslog's names
	builtinMPMs      = []string{"prefork", "worker", "event"}
	hookPhases       = []string{"configure", "open-logs", "post-config", "child-init", "child-exit", "shutdown"}
)

// validator collects validation errors, each attributed to the highest layer
// that set its key.
type validator struct {
	ls   layers
	errs []error
}

func (v *validator) errorf(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{Source: v.ls.source(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) oneOf(key, value string, allowed []string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.errorf(key, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.errorf(key, "must be greater than 0, got %s", formatDuration(d))
	}
}

// cidrs checks a list of networks in CIDR form.
func (v *validator) cidrs(key string, list []string) {
	for i, cidr := range list {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			v.errorf(fmt.Sprintf("%s[%d]", key, i), "%q is not a network in CIDR form (such as 10.0.0.0/8 or ::1/128)", cidr)
		}
	}
}

// path checks a URL path a child answers at: "" (off) or starting with
// "/", and none answered twice.
func (v *validator) path(key, p string, seen map[string]string) {
	switch {
	case p == "":
	case !strings.HasPrefix(p, "/"):
		v.errorf(key, "%q must start with / (or be empty to turn it off)", p)
	case seen[p] != "":
		v.errorf(key, "%q is already %s", p, seen[p])
	default:
		seen[p] = key
	}
}

// validateHealth checks the health endpoints, the trusted proxies and the
// real-IP header.
func (c *Config) validateHealth(v *validator) {
	seen := map[string]string{}
	v.path("status.path", c.Status.Path, seen)
	v.path("status.metrics", c.Status.Metrics, seen)
	v.path("health.liveness_path", c.Health.LivenessPath, seen)
	v.path("health.readiness_path", c.Health.ReadinessPath, seen)
	v.cidrs("health.allow", c.Health.Allow)
	if c.Health.DrainDelay < 0 {
		v.errorf("health.drain_delay", "must not be negative, got %s", formatDuration(c.Health.DrainDelay))
	}
	v.cidrs("trusted_proxies", c.TrustedProxies)
	if !slices.ContainsFunc(clientip.Headers, func(h string) bool { return strings.EqualFold(h, c.RealIPHeader) }) {
		v.errorf("real_ip_header", "%q is not one of %s", c.RealIPHeader, strings.Join(clientip.Headers, ", "))
	}
}

func (v *validator) notEmpty(key, value string) {
	if value == "" {
		v.errorf(key, "must not be empty")
	}
}

// validate checks the decoded, resolved configuration.
func (c *Config) validate(ls layers, derivedSocket bool) []error {
	v := &validator{ls: ls}

	c.validateListen(v)
	if c.ListenBacklog < 1 || c.ListenBacklog > 65535 {
		v.errorf("listen_backlog", "must be between 1 and 65535, got %d", c.ListenBacklog)
	}
	v.notEmpty("pid_file", c.PidFile)
	if len(c.ControlSocket) > maxSocketPath {
		key := "control_socket"
		if derivedSocket {
			key = "pid_file"
		}
		v.errorf(key, "control socket %q is too long for a unix socket (%d bytes, at most %d); set control_socket to a shorter path",
			c.ControlSocket, len(c.ControlSocket), maxSocketPath)
	}
	v.notEmpty("document_root", c.DocumentRoot)
	v.positive("graceful_shutdown_timeout", c.GracefulShutdownTimeout)
	v.oneOf("sigterm", c.SIGTERM, []string{"stop", "graceful-stop"})
	v.positive("timeouts.read_header", c.Timeouts.ReadHeader)
	v.positive("timeouts.read", c.Timeouts.Read)
	v.positive("timeouts.write", c.Timeouts.Write)
	v.positive("timeouts.idle", c.Timeouts.Idle)
	if c.Timeouts.MinRate < 0 {
		v.errorf("timeouts.min_rate", "must be 0 (off) or more bytes a second, got %d", c.Timeouts.MinRate)
	}
	if c.WorkerConnections < 0 {
		v.errorf("worker_connections", "must be 0 (from the descriptor limit) or more, got %d", c.WorkerConnections)
	}
	if allowed, err := cpuset.Allowed(); err != nil {
		v.errorf("worker_cpu_affinity", "reading the CPUs phased may run on: %v", err)
	} else if _, err := cpuset.Parse(c.WorkerCPUAffinity, allowed); err != nil {
		v.errorf("worker_cpu_affinity", `must be none, auto or a CPU list per child slot ("0-3 4-7"): %v`, err)
	}

	if c.ErrorLog.Path == "" {
		v.errorf("error_log.path", `must not be empty (use "stderr", "stdout" or a file)`)
	}
	v.oneOf("error_log.level", c.ErrorLog.Level, logLevels)
	v.oneOf("error_log.format", c.ErrorLog.Format, errorLogFormats)
	v.oneOf("access_log.format", c.AccessLog.Format, accessLogFormats)
	v.cidrs("status.allow", c.Status.Allow)
	c.validateHealth(v)

	switch name := c.MPM.Name; {
	case name == "":
		v.errorf("mpm.name", "must not be empty (prefork, worker, event or the path of an MPM plugin)")
	case !strings.Contains(name, "/") && !contains(builtinMPMs, name):
		v.errorf("mpm.name", `%q is not prefork, worker or event; a third-party MPM is given by a path containing "/", as in "./bin/my-mpm"`, name)
	}
	for _, key := range sortedKeys(c.MPM.Settings) {
		if !finite(c.MPM.Settings[key]) {
			v.errorf("mpm."+key, "must be a finite number")
		}
	}

	c.validateApp(v)

	names := map[string]int{}
	for i, h := range c.Hooks {
		key := fmt.Sprintf("hooks[%d]", i)
		switch j, dup := names[h.Name]; {
		case h.Name == "":
			v.errorf(key+".name", "must not be empty")
		case dup:
			v.errorf(key+".name", "duplicate hook name %q (also hooks[%d])", h.Name, j)
		default:
			names[h.Name] = i
		}
		if h.Phase == "" {
			v.errorf(key+".phase", "must be one of %s", strings.Join(hookPhases, ", "))
		} else {
			v.oneOf(key+".phase", h.Phase, hookPhases)
		}
		switch {
		case len(h.Exec) == 0 && h.Plugin == "":
			v.errorf(key, "needs exec (a command) or plugin (a hook plugin's path)")
		case len(h.Exec) > 0 && h.Plugin != "":
			v.errorf(key, "has both exec and plugin; a hook is one or the other")
		case len(h.Exec) > 0 && h.Exec[0] == "":
			v.errorf(key+".exec[0]", "must not be empty")
		}
		if len(h.Settings) > 0 && h.Plugin == "" {
			v.errorf(key+".settings", "only a hook plugin has settings (an exec hook reads its arguments)")
		}
		for k, s := range h.Settings {
			if !finite(s) {
				v.errorf(key+".settings."+k, "must be a finite number")
			}
		}
		if h.Timeout < 0 {
			v.errorf(key+".timeout", "must not be negative, got %s", formatDuration(h.Timeout))
		}
	}
	return v.errs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// finite reports whether v holds no infinity or NaN, which JSON cannot carry.
func finite(v any) bool {
	switch x := v.(type) {
	case float64:
		return !math.IsInf(x, 0) && !math.IsNaN(x)
	case float32:
		return finite(float64(x))
	case []any:
		for _, e := range x {
			if !finite(e) {
				return false
			}
		}
	case map[string]any:
		for _, e := range x {
			if !finite(e) {
				return false
			}
		}
	}
	return true
}

// checkListen checks one listen address. It returns an identity for
// duplicate detection ("" for port 0, which may repeat) or a message saying
// what is wrong.
func checkListen(addr string) (id, msg string) {
	if strings.TrimSpace(addr) == "" {
		return "", "empty address"
	}
	q := strconv.Quote(addr)
	var host, port string
	if strings.HasPrefix(addr, "[") {
		end := strings.IndexByte(addr, ']')
		if end < 0 {
			return "", q + `: missing "]" after the IPv6 address`
		}
		host, port = addr[1:end], addr[end+1:]
		if !strings.HasPrefix(port, ":") {
			return "", q + `: missing port, as in "[::1]:8080"`
		}
		port = port[1:]
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return "", fmt.Sprintf("%s: %q is not an IPv6 address (only IPv6 addresses go in brackets)", q, host)
		}
		host = ip.String()
	} else {
		i := strings.LastIndexByte(addr, ':')
		if i < 0 {
			return "", q + `: missing port, as in "127.0.0.1:8080"`
		}
		host, port = addr[:i], addr[i+1:]
		switch {
		case strings.Contains(host, ":"):
			return "", q + `: an IPv6 address needs brackets, as in "[::1]:8080"`
		case host == "":
			// every interface
		default:
			if ip, err := netip.ParseAddr(host); err == nil {
				host = ip.String()
			} else if numeric(host) {
				return "", fmt.Sprintf("%s: %q is not a valid IPv4 address", q, host)
			} else if !hostname(host) {
				return "", fmt.Sprintf("%s: %q is not a valid host name", q, host)
			}
		}
	}
	if port == "" {
		return "", q + `: missing port, as in "127.0.0.1:8080"`
	}
	if !numeric(port) || strings.Contains(port, ".") {
		return "", fmt.Sprintf("%s: port %q is not a number", q, port)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", q + ": port out of range"
	}
	if n == 0 {
		return "", ""
	}
	return strings.ToLower(host) + ":" + strconv.FormatUint(n, 10), ""
}

// numeric reports whether s is made of digits and dots only.
func numeric(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return true
}

// hostname reports whether s is a valid DNS name: dot-separated labels of
// letters, digits, "-" and "_", 1 to 63 bytes each, 253 in all.
func hostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
