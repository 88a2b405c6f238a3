package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// operation is one thing done to a running server under load.
type operation struct {
	name string
	// hard operations may lose the requests in flight (at most one per
	// client connection); routine ones must lose nothing.
	hard bool
	desc string
}

// server is one server instance, started fresh for one cell.
type server interface {
	start() error
	addr() string
	do(op string) (note string, err error)
	stop()
	logTail() string
}

// kind makes servers of one family and knows their operations.
type kind struct {
	name string
	ops  []operation
	make func(dir string, op string, conc int, keepAlive bool) server
}

// hold is how long the operations that have no end of their own (the
// baseline, recycling all along) let the load run; set from options.
var hold = 2 * time.Second

const docPath = "/hello.txt"

func writeDocRoot(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "public"), 0o755); err != nil {
		return err
	}
	os.Chmod(dir, 0o755) // Apache's and nginx's workers run as another user
	return os.WriteFile(filepath.Join(dir, "public", "hello.txt"), []byte("hello\n"), 0o644)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitServing(addr string, within time.Duration) error { return waitPath(addr, docPath, within) }

// waitPath waits until GET path on addr answers 200.
func waitPath(addr, path string, within time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(within)
	for {
		resp, err := c.Get("http://" + addr + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not serving after %s: %v", addr, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killTree ends pid (TERM, then KILL after grace) and every process that
// was below it, each by its pid.
func killTree(pid int, grace time.Duration) {
	if pid <= 0 {
		return
	}
	kids := e2e.Descendants(pid)
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for e2e.Alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	kids = append(kids, e2e.Descendants(pid)...)
	if e2e.Alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, k := range kids {
		if e2e.Alive(k) {
			syscall.Kill(k, syscall.SIGKILL)
		}
	}
}

// killSeen kills the pids seen below a server that still run one of
// cmdlines (so a pid reused by someone else's process is left alone).
func killSeen(pids []int, cmdlines ...string) {
	for _, k := range pids {
		if !e2e.Alive(k) {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", k))
		for _, c := range cmdlines {
			if c != "" && strings.Contains(string(b), c) {
				syscall.Kill(k, syscall.SIGKILL)
				break
			}
		}
	}
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	return lastLines(string(b), n)
}

// ---------------------------------------------------------------- phased

// baseline is the control cell of every server: the same load and no
// operation, so that a stall elsewhere can be told from what the machine
// does anyway.
var baseline = operation{name: "none (baseline)", desc: "no operation: the load alone, for comparison"}

var phasedOps = []operation{
	baseline,
	{name: "graceful x3", desc: "`phased -k graceful` three times, 300 ms apart"},
	{name: "HUP", desc: "`kill -HUP` to the master"},
	{name: "TERM one child", desc: "SIGTERM to one serving child (its replacement starts first)"},
	{name: "USR1 one child", desc: "SIGUSR1 to one serving child (the operator's way to recycle one child)"},
	{name: "recycle", desc: "`phased -k recycle` (rolling restart)"},
	{name: "MPM switch", desc: "config rewritten worker to event to prefork, `-k graceful` after each"},
	{name: "recycle every K conns", desc: "`max_connections_per_child`: children recycled all along; K = 50 without keep-alive, 1 with it (a keep-alive client opens a new connection only when a retiring child closes its own); a cell with no recycle fails"},
	{name: "recycle by memory", desc: "`max_memory_per_child: 1M`: children recycled all along"},
	{name: "kill -9 MPM plugin", desc: "SIGKILL to the MPM plugin process"},
	{name: "kill -9 hook plugin", desc: "SIGKILL to a hook plugin process (examples/hook-warmup)"},
	{name: "upgrade", desc: "`phased -k upgrade` (binary upgrade)"},
	{name: "log reopen", desc: "access and error logs renamed, then `-k graceful`"},
	{name: "restart (hard)", hard: true, desc: "`phased -k restart`"},
	{name: "kill -9 one child", hard: true, desc: "SIGKILL to one serving child"},
}

type phased struct {
	bin, hookBin string
	dir, conf    string
	address      string
	op           string
	conc         int
	keepAlive    bool
	cmd          *exec.Cmd
	master       int
	seen         []int // every pid ever seen below a master, for stop
}

func phasedKind(bin, hookBin string) kind {
	return kind{name: "phased", ops: phasedOps, make: func(dir, op string, conc int, keepAlive bool) server {
		return &phased{bin: bin, hookBin: hookBin, dir: dir, op: op, conc: conc, keepAlive: keepAlive}
	}}
}

func (p *phased) addr() string { return p.address }

// mpmSection is the mpm: block for name, sized so that conc keep-alive
// clients never wait for maintenance (prefork holds a child per connection).
func (p *phased) mpmSection(name string) string {
	extra := ""
	switch p.op {
	case "recycle every K conns":
		k := 50
		if p.keepAlive {
			k = 1
		}
		extra = fmt.Sprintf("  max_connections_per_child: %d\n  max_connections_per_child_jitter: 0\n", k)
	case "recycle by memory":
		extra = "  max_memory_per_child: 1M\n"
	}
	switch name {
	case "prefork":
		n := max(4, 2*p.conc)
		return fmt.Sprintf("mpm:\n  name: prefork\n  start_servers: %d\n  min_spare_servers: %d\n  max_spare_servers: %d\n%s", n, n/2, 2*n, extra)
	default:
		return fmt.Sprintf("mpm:\n  name: %s\n  start_servers: 2\n  threads_per_child: 25\n  min_spare_threads: 25\n  max_spare_threads: 75\n%s", name, extra)
	}
}

func (p *phased) config(mpm string) string {
	hooks := ""
	if p.op == "kill -9 hook plugin" {
		hooks = fmt.Sprintf("hooks:\n  - {name: warmup, plugin: %s, phase: post-config, timeout: 10s}\n", p.hookBin)
	}
	return fmt.Sprintf(`listen: [%q]
pid_file: run/phased.pid
document_root: public
graceful_shutdown_timeout: 5s
error_log: {path: logs/error.log, level: info, format: json}
access_log: {path: logs/access.log}
%s%s`, p.address, hooks, p.mpmSection(mpm))
}

func (p *phased) start() error {
	if err := writeDocRoot(p.dir); err != nil {
		return err
	}
	os.MkdirAll(filepath.Join(p.dir, "logs"), 0o755)
	os.MkdirAll(filepath.Join(p.dir, "run"), 0o755)
	var err error
	if p.address, err = freeAddr(); err != nil {
		return err
	}
	return p.launch(p.config("worker"), docPath, 20*time.Second)
}

// launch writes conf as the config, starts the master, and waits until
// path answers and every child of the first generation is up.
func (p *phased) launch(conf, path string, within time.Duration) error {
	p.conf = filepath.Join(p.dir, "phased.yaml")
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(p.dir, "stderr.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	p.cmd = exec.Command(p.bin, "-f", p.conf)
	p.cmd.Dir = p.dir
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.master = p.cmd.Process.Pid
	go p.cmd.Wait() // reap it whenever it ends (an upgrade ends it early)
	if err := waitPath(p.address, path, within); err != nil {
		return fmt.Errorf("%v; log: %s", err, p.logTail())
	}
	// Serving is not enough: every child of the first generation is up
	// (for 10 s at most: children recycled by memory all along may keep
	// the first generation from ever being whole).
	deadline := time.Now().Add(10 * time.Second)
	for p.count("resuming normal operations") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	p.remember()
	return nil
}

func (p *phased) remember() {
	for _, k := range e2e.Descendants(p.master) {
		if !slices.Contains(p.seen, k) {
			p.seen = append(p.seen, k)
		}
	}
}

func (p *phased) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "logs/error.log"))
	b1, _ := os.ReadFile(filepath.Join(p.dir, "logs/error.log.1"))
	return string(b1) + string(b)
}

func (p *phased) count(s string) int { return strings.Count(p.errorLog(), s) }

func (p *phased) waitCount(s string, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for p.count(s) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %q x%d in the error log", within, s, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (p *phased) logTail() string {
	return tail(filepath.Join(p.dir, "logs/error.log"), 8) + " | stderr: " + tail(filepath.Join(p.dir, "stderr.log"), 4)
}

func (p *phased) ctl(args ...string) (string, error) {
	cmd := exec.Command(p.bin, append([]string{"-f", p.conf}, args...)...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("phased %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (p *phased) graceful() error {
	n := p.count("graceful restart done")
	if _, err := p.ctl("-k", "graceful"); err != nil {
		return err
	}
	return p.waitCount("graceful restart done", n+1, 10*time.Second)
}

func (p *phased) do(op string) (string, error) {
	p.remember()
	defer p.remember()
	workers := e2e.Workers(p.master)
	switch op {
	case "graceful x3":
		for i := range 3 {
			if i > 0 {
				time.Sleep(300 * time.Millisecond)
			}
			if err := p.graceful(); err != nil {
				return "", err
			}
		}
	case "HUP":
		n := p.count("graceful restart done")
		syscall.Kill(p.master, syscall.SIGHUP)
		return "", p.waitCount("graceful restart done", n+1, 10*time.Second)
	case "TERM one child", "USR1 one child", "kill -9 one child":
		if len(workers) == 0 {
			return "", errors.New("no serving child")
		}
		sig := map[string]syscall.Signal{"TERM one child": syscall.SIGTERM, "USR1 one child": syscall.SIGUSR1, "kill -9 one child": syscall.SIGKILL}[op]
		syscall.Kill(workers[0], sig)
		return waitGone([]int{workers[0]}, 10*time.Second)
	case "recycle":
		out, err := p.ctl("-k", "recycle")
		return strings.TrimSpace(out), err
	case "MPM switch":
		for _, m := range []string{"event", "prefork"} {
			if err := os.WriteFile(p.conf, []byte(p.config(m)), 0o644); err != nil {
				return "", err
			}
			if err := p.graceful(); err != nil {
				return "", err
			}
			time.Sleep(300 * time.Millisecond)
		}
	case baseline.name, "recycle every K conns", "recycle by memory":
		time.Sleep(hold) // the recycling goes on all along the load
		n := 0
		switch op {
		case "recycle every K conns":
			n = p.count("reached max_connections_per_child")
		case "recycle by memory":
			n = p.count(`"reason":"memory"`)
		default:
			return "", nil
		}
		if n == 0 {
			return "", errors.New("no child was recycled: the cell proves nothing")
		}
		return fmt.Sprintf("%d recycles", n), nil
	case "kill -9 MPM plugin":
		pl := e2e.Plugins(p.master)
		if len(pl) != 1 {
			return "", fmt.Errorf("%d MPM plugin processes", len(pl))
		}
		n := p.count("MPM plugin relaunched")
		syscall.Kill(pl[0], syscall.SIGKILL)
		return "", p.waitCount("MPM plugin relaunched", n+1, 10*time.Second)
	case "kill -9 hook plugin":
		var hook []int
		for _, c := range e2e.Children(p.master) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
			if strings.HasPrefix(string(b), p.hookBin) {
				hook = append(hook, c)
			}
		}
		if len(hook) == 0 {
			return "", errors.New("no hook plugin process below the master")
		}
		syscall.Kill(hook[0], syscall.SIGKILL)
		time.Sleep(1 * time.Second)
		// The next graceful restart must still work (and load it again).
		if err := p.graceful(); err != nil {
			return "", fmt.Errorf("graceful after the hook plugin died: %v", err)
		}
		return "then -k graceful ok", nil
	case "upgrade":
		old := p.master
		out, err := p.ctl("-k", "upgrade")
		if err != nil {
			return "", err
		}
		if note, err := waitGone([]int{old}, 15*time.Second); err != nil {
			return note, err
		}
		p.master = readPid(filepath.Join(p.dir, "run/phased.pid"))
		if p.master == old || !e2e.Alive(p.master) {
			return "", fmt.Errorf("pid file names %d after the upgrade (old master %d)", p.master, old)
		}
		return lastLines(out, 1), nil
	case "log reopen":
		for _, f := range []string{"access.log", "error.log"} {
			path := filepath.Join(p.dir, "logs", f)
			if err := os.Rename(path, path+".1"); err != nil {
				return "", err
			}
		}
		if err := p.graceful(); err != nil {
			return "", err
		}
		time.Sleep(400 * time.Millisecond) // the access log flushes every 200 ms
		for _, f := range []string{"access.log", "error.log"} {
			if st, err := os.Stat(filepath.Join(p.dir, "logs", f)); err != nil || st.Size() == 0 {
				return "", fmt.Errorf("logs/%s not reopened: %v", f, err)
			}
		}
	case "restart (hard)":
		out, err := p.ctl("-k", "restart")
		return lastLines(out, 1), err
	default:
		return "", fmt.Errorf("unknown operation %q", op)
	}
	return "", nil
}

func waitGone(pids []int, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		alive := 0
		for _, p := range pids {
			if e2e.Alive(p) {
				alive++
			}
		}
		if alive == 0 {
			return "", nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("pids %v still alive after %s", pids, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *phased) stop() {
	p.remember()
	killTree(p.master, 10*time.Second)
	killSeen(p.seen, "phased", p.hookBin)
}

// ---------------------------------------------------------------- Apache

const (
	apacheBin     = "/usr/sbin/apache2"
	apacheModules = "/usr/lib/apache2/modules"
)

var apacheOps = []operation{
	baseline,
	{name: "graceful", desc: "`apache2 -k graceful` (Apache 2.4, event MPM as Debian ships it: StartServers 2, ThreadsPerChild 25, KeepAlive On)"},
	{name: "restart", hard: true, desc: "`apache2 -k restart`"},
}

// apache runs Debian's apache2 in the foreground (-DFOREGROUND) as our
// child, on its own config: event MPM (Debian's default), no access log.
type apache struct {
	dir, conf, address string
	cmd                *exec.Cmd
	seen               []int
}

func apacheKind() kind {
	return kind{name: "apache", ops: apacheOps, make: func(dir, op string, conc int, _ bool) server { return &apache{dir: dir} }}
}

func (a *apache) addr() string { return a.address }

func (a *apache) start() error {
	if err := writeDocRoot(a.dir); err != nil {
		return err
	}
	var err error
	if a.address, err = freeAddr(); err != nil {
		return err
	}
	a.conf = filepath.Join(a.dir, "httpd.conf")
	conf := apacheBase(a.dir, a.address) + fmt.Sprintf(`LoadModule mime_module %[3]s/mod_mime.so
TypesConfig /etc/mime.types
DocumentRoot %[1]s/public
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory %[1]s/public>
    Require all granted
</Directory>
HostnameLookups Off
KeepAlive On
KeepAliveTimeout 5
MaxKeepAliveRequests 0
Timeout 60
StartServers 2
ThreadsPerChild 25
MinSpareThreads 25
MaxSpareThreads 75
MaxRequestWorkers 150
`, a.dir, a.address, apacheModules)
	if err := os.WriteFile(a.conf, []byte(conf), 0o644); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(a.dir, "stderr.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	a.cmd = exec.Command(apacheBin, "-f", a.conf, "-DFOREGROUND")
	a.cmd.Stdout, a.cmd.Stderr = out, out
	if err := a.cmd.Start(); err != nil {
		return err
	}
	go a.cmd.Wait()
	if err := waitServing(a.address, 20*time.Second); err != nil {
		return fmt.Errorf("%v; %s", err, a.logTail())
	}
	a.seen = e2e.Descendants(a.cmd.Process.Pid)
	return nil
}

func (a *apache) do(op string) (string, error) {
	a.seen = append(a.seen, e2e.Descendants(a.cmd.Process.Pid)...)
	if op == baseline.name {
		time.Sleep(hold)
		return "", nil
	}
	verb := map[string]string{"graceful": "graceful", "restart": "restart"}[op]
	if verb == "" {
		return "", fmt.Errorf("unknown operation %q", op)
	}
	out, err := exec.Command(apacheBin, "-f", a.conf, "-k", verb).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("apache2 -k %s: %v: %s", verb, err, out)
	}
	time.Sleep(1500 * time.Millisecond) // -k returns once the signal is sent
	return "", nil
}

func (a *apache) stop() {
	a.seen = append(a.seen, e2e.Descendants(a.cmd.Process.Pid)...)
	killTree(a.cmd.Process.Pid, 10*time.Second)
	killSeen(a.seen, apacheBin)
}

func (a *apache) logTail() string {
	return tail(filepath.Join(a.dir, "error.log"), 5) + " | " + tail(filepath.Join(a.dir, "stderr.log"), 3)
}

// ---------------------------------------------------------------- nginx

var nginxOps = []operation{
	baseline,
	{name: "reload", desc: "`nginx -s reload` (2 worker processes, keepalive_requests 1000000)"},
}

// nginxServer runs Debian's nginx in the foreground (daemon off) as our
// child, on its own config and prefix.
type nginxServer struct {
	dir, conf, address string
	cmd                *exec.Cmd
	seen               []int
}

func nginxKind() kind {
	return kind{name: "nginx", ops: nginxOps, make: func(dir, op string, conc int, _ bool) server { return &nginxServer{dir: dir} }}
}

func (n *nginxServer) addr() string { return n.address }

func (n *nginxServer) start() error {
	if err := writeDocRoot(n.dir); err != nil {
		return err
	}
	var err error
	if n.address, err = freeAddr(); err != nil {
		return err
	}
	n.conf = filepath.Join(n.dir, "nginx.conf")
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 2;
user www-data;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log notice;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp-body;
    proxy_temp_path %[1]s/tmp-proxy;
    fastcgi_temp_path %[1]s/tmp-fastcgi;
    uwsgi_temp_path %[1]s/tmp-uwsgi;
    scgi_temp_path %[1]s/tmp-scgi;
    keepalive_timeout 5s;
    keepalive_requests 1000000;
    server {
        listen %[2]s;
        root %[1]s/public;
    }
}
`, n.dir, n.address)
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(n.dir, "stderr.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	n.cmd = exec.Command("nginx", "-p", n.dir, "-c", n.conf)
	n.cmd.Stdout, n.cmd.Stderr = out, out
	if err := n.cmd.Start(); err != nil {
		return err
	}
	go n.cmd.Wait()
	if err := waitServing(n.address, 20*time.Second); err != nil {
		return fmt.Errorf("%v; %s", err, n.logTail())
	}
	n.seen = e2e.Descendants(n.cmd.Process.Pid)
	return nil
}

func (n *nginxServer) do(op string) (string, error) {
	n.seen = append(n.seen, e2e.Descendants(n.cmd.Process.Pid)...)
	if op == baseline.name {
		time.Sleep(hold)
		return "", nil
	}
	if op != "reload" {
		return "", fmt.Errorf("unknown operation %q", op)
	}
	out, err := exec.Command("nginx", "-p", n.dir, "-c", n.conf, "-s", "reload").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nginx -s reload: %v: %s", err, out)
	}
	time.Sleep(1500 * time.Millisecond)
	return "", nil
}

func (n *nginxServer) stop() {
	n.seen = append(n.seen, e2e.Descendants(n.cmd.Process.Pid)...)
	killTree(n.cmd.Process.Pid, 10*time.Second)
	killSeen(n.seen, "nginx")
}

func (n *nginxServer) logTail() string {
	return tail(filepath.Join(n.dir, "error.log"), 5) + " | " + tail(filepath.Join(n.dir, "stderr.log"), 3)
}

// apacheBase is the start of every Apache configuration the suites write:
// the server in dir, on addr, with the event MPM, run as www-data, its pid
// file, runtime files and error log in dir.
func apacheBase(dir, addr string) string {
	return fmt.Sprintf(`ServerRoot %[1]s
ServerName 127.0.0.1
Listen %[2]s
LoadModule mpm_event_module %[3]s/mod_mpm_event.so
LoadModule authz_core_module %[3]s/mod_authz_core.so
User www-data
Group www-data
PidFile %[1]s/httpd.pid
DefaultRuntimeDir %[1]s
Mutex file:%[1]s default
ErrorLog %[1]s/error.log
LogLevel notice
`, dir, addr, apacheModules)
}
