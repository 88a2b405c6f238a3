// Package rolling runs a rolling deploy of phased behind a real load
// balancer: three phased instances on loopback ports behind Debian's
// HAProxy, which health-checks their readiness endpoint (option httpchk
// GET /readyz, inter 200ms, fall 2, rise 2) and speaks the PROXY protocol
// v2 to them (send-proxy-v2, check-send-proxy) from the source address
// 127.0.0.3, which is the instances' only trusted proxy. The steps are
// what a deploy does: each instance in turn stopped gracefully (SIGTERM
// with sigterm: graceful-stop, as Kubernetes sends it) and started again on
// a new configuration, one instance upgraded in place (phased -k upgrade),
// and one killed (SIGKILL to its master and children at once, as an
// out-of-memory kill or a kubelet's last resort) and started again.
//
// The end-to-end test (internal/e2e/cluster) and the long form
// (go run ./bench/reliability -cluster, in make soak) drive the same
// steps under load and judge them: a routine step loses nothing, and
// HAProxy's own counters for it (connection and response errors, retries,
// redispatches) stay at zero, so no retry hides a loss; the kill loses at
// most KillBound.
package rolling

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/phasedhq/phased/internal/procfs"
)

// ProxySource is the address HAProxy connects to the instances from; they
// trust PROXY headers from it alone. Load generators use another one, so
// an access log line with this address would be HAProxy's, not a client's.
const ProxySource = "127.0.0.3"

// Options configures a Cluster.
type Options struct {
	// Bin is the phased binary. Required.
	Bin string
	// Dir is an empty folder the cluster works in. Required.
	Dir string
	// HAProxy is the haproxy binary; "" means "haproxy" on PATH.
	HAProxy string
	// DrainDelay is each instance's health.drain_delay; 0 means 1s, over
	// twice HAProxy's detection time (fall 2 x inter 200ms).
	DrainDelay time.Duration
	// Env is the environment of the processes started, nil for this
	// process's.
	Env []string
	// Logf, when set, hears what the cluster does.
	Logf func(format string, args ...any)
}

// Instance is one phased master behind HAProxy.
type Instance struct {
	Name string
	Addr string
	Dir  string

	mu      sync.Mutex
	pid     int // the master
	version int // the configuration's, one more per start
	exited  chan struct{}
	exitErr error
}

// Cluster is HAProxy and three phased instances.
type Cluster struct {
	o Options
	// Front is HAProxy's frontend address, where the load goes.
	Front     string
	Instances []*Instance
	haproxy   *exec.Cmd
	sock      string
}

// Start starts three instances and HAProxy, and returns when HAProxy sees
// them all up.
func Start(o Options) (c *Cluster, err error) {
	if o.HAProxy == "" {
		o.HAProxy = "haproxy"
	}
	if o.DrainDelay == 0 {
		o.DrainDelay = time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	c = &Cluster{o: o, sock: filepath.Join(o.Dir, "haproxy.sock")}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	c.Front = "127.0.0.1:" + ports[0]
	for i, name := range []string{"a", "b", "c"} {
		in := &Instance{Name: name, Addr: "127.0.0.1:" + ports[i+1], Dir: filepath.Join(o.Dir, name)}
		for _, sub := range []string{"public", "logs", "run"} {
			if err := os.MkdirAll(filepath.Join(in.Dir, sub), 0o755); err != nil {
				return nil, err
			}
		}
		if err := os.WriteFile(filepath.Join(in.Dir, "public/hello.txt"), []byte("hello\n"), 0o644); err != nil {
			return nil, err
		}
		c.Instances = append(c.Instances, in)
		if err := c.start(in); err != nil {
			return nil, err
		}
	}
	if err := c.startHAProxy(); err != nil {
		return nil, err
	}
	for _, in := range c.Instances {
		if err := c.waitState(in, "UP", 20*time.Second); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// config is instance in's configuration, version v: the MPM alternates
// between worker and event, so each start runs a configuration the last
// one did not.
func (c *Cluster) config(in *Instance, v int) string {
	mpm := "{name: worker, start_servers: 2, threads_per_child: 25}"
	if v%2 == 0 {
		mpm = "{name: event, start_servers: 2, threads_per_child: 25}"
	}
	return fmt.Sprintf(`# %s, configuration version %d
listen: [{address: %q, proxy_protocol: true}]
pid_file: run/phased.pid
document_root: public
sigterm: graceful-stop
graceful_shutdown_timeout: 10s
trusted_proxies: [%s/32]
health: {drain_delay: %s, allow: [127.0.0.0/8]}
error_log: {path: logs/error.log, format: json, level: info}
access_log: {path: logs/access.log}
mpm: %s
`, in.Name, v, in.Addr, ProxySource, c.o.DrainDelay, mpm)
}

// start writes in's next configuration and starts its master on it,
// returning once it serves.
func (c *Cluster) start(in *Instance) error {
	in.mu.Lock()
	in.version++
	v := in.version
	in.mu.Unlock()
	conf := filepath.Join(in.Dir, "phased.yaml")
	if err := os.WriteFile(conf, []byte(c.config(in, v)), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(c.o.Bin, "-f", conf)
	cmd.Dir, cmd.Env = in.Dir, c.o.Env
	out, err := os.OpenFile(filepath.Join(in.Dir, "logs/master.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	in.mu.Lock()
	in.pid, in.exited = cmd.Process.Pid, exited
	in.mu.Unlock()
	go func() {
		err := cmd.Wait()
		in.mu.Lock()
		in.exitErr = err
		in.mu.Unlock()
		close(exited)
	}()
	c.o.Logf("%s: started (pid %d, configuration version %d)", in.Name, cmd.Process.Pid, v)
	return waitFor(20*time.Second, func() (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("%s exited at start; see %s", in.Name, filepath.Join(in.Dir, "logs"))
		default:
		}
		b, _ := os.ReadFile(filepath.Join(in.Dir, "logs/error.log"))
		return strings.Count(string(b), "resuming normal operations") >= v, nil
	})
}

// PID is in's master.
func (in *Instance) PID() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.pid
}

func (c *Cluster) startHAProxy() error {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  stats socket %s mode 600 level admin
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 10s
  retries 3
  option redispatch
frontend fe
  bind %s
  default_backend be
backend be
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 200ms fall 2 rise 2 send-proxy-v2 check-send-proxy source %s
`, c.sock, c.Front, ProxySource)
	for _, in := range c.Instances {
		fmt.Fprintf(&b, "  server %s %s check\n", in.Name, in.Addr)
	}
	cfg := filepath.Join(c.o.Dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(c.o.Dir, "haproxy.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(c.o.HAProxy, "-f", cfg, "-db") // -db: in the foreground
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = c.o.Dir, c.o.Env, out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting haproxy: %w", err)
	}
	c.haproxy = cmd
	go cmd.Wait()
	return waitFor(10*time.Second, func() (bool, error) {
		_, err := c.Stats()
		return err == nil, nil
	})
}

// ServerStats are HAProxy's figures for one server (its "show stat" row).
type ServerStats struct {
	Status string // UP, DOWN, ...
	// Counters since HAProxy started: connection errors, response errors,
	// retries, redispatches, 5xx answers, sessions aborted by the server.
	ConnErrors, RespErrors, Retries, Redispatches, HTTP5xx, ServerAborts int
	// Sessions is every session this server took.
	Sessions int
}

// Stats returns HAProxy's figures for each instance, by name.
func (c *Cluster) Stats() (map[string]ServerStats, error) {
	conn, err := net.DialTimeout("unix", c.sock, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("show stat\n")); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(conn)
	var cols map[string]int
	out := map[string]ServerStats{}
	for sc.Scan() {
		line := sc.Text()
		if h, ok := strings.CutPrefix(line, "# "); ok {
			cols = map[string]int{}
			for i, name := range strings.Split(h, ",") {
				cols[name] = i
			}
			continue
		}
		f := strings.Split(line, ",")
		if cols == nil || len(f) < len(cols) || f[cols["pxname"]] != "be" || f[cols["svname"]] == "BACKEND" {
			continue
		}
		n := func(col string) int { v, _ := strconv.Atoi(f[cols[col]]); return v }
		out[f[cols["svname"]]] = ServerStats{Status: f[cols["status"]], ConnErrors: n("econ"), RespErrors: n("eresp"),
			Retries: n("wretr"), Redispatches: n("wredis"), HTTP5xx: n("hrsp_5xx"), ServerAborts: n("srv_abrt"), Sessions: n("stot")}
	}
	if len(out) == 0 {
		return nil, errors.New("haproxy's stats list no server")
	}
	return out, sc.Err()
}

// waitState waits until HAProxy sees in in state (UP, DOWN).
func (c *Cluster) waitState(in *Instance, state string, within time.Duration) error {
	return waitFor(within, func() (bool, error) {
		st, err := c.Stats()
		return err == nil && strings.HasPrefix(st[in.Name].Status, state), nil
	})
}

// Step is one step of a deploy.
type Step struct {
	Name string
	// Hard steps may lose the requests in flight; routine ones nothing.
	Hard bool
	// Run does the step and returns when the cluster is whole again (the
	// instance back up in HAProxy), with a note on what it saw.
	Run func() (note string, err error)
}

// Steps are the deploy's steps, in order: each instance stopped gracefully
// and started on a new configuration, then a upgraded in place, then b
// killed and started again.
func (c *Cluster) Steps() []Step {
	var steps []Step
	for _, in := range c.Instances {
		steps = append(steps, Step{Name: "graceful stop (SIGTERM), start on a new config: " + in.Name, Run: func() (string, error) { return c.restart(in) }})
	}
	a, b := c.Instances[0], c.Instances[1]
	steps = append(steps,
		Step{Name: "binary upgrade (-k upgrade): " + a.Name, Run: func() (string, error) { return c.upgrade(a) }},
		Step{Name: "SIGKILL (master and children), start again: " + b.Name, Hard: true, Run: func() (string, error) { return c.kill(b) }})
	return steps
}

// restart stops in gracefully with SIGTERM and starts it again on its next
// configuration. HAProxy must see it go down during the drain delay, before
// it stops accepting.
func (c *Cluster) restart(in *Instance) (string, error) {
	start := time.Now()
	if err := syscall.Kill(in.PID(), syscall.SIGTERM); err != nil {
		return "", err
	}
	if err := c.waitState(in, "DOWN", c.o.DrainDelay); err != nil {
		return "", fmt.Errorf("HAProxy did not mark %s down within the drain delay (%s)", in.Name, c.o.DrainDelay)
	}
	down := time.Since(start)
	in.mu.Lock()
	exited := in.exited
	in.mu.Unlock()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		return "", fmt.Errorf("%s did not stop within 20s", in.Name)
	}
	in.mu.Lock()
	exitErr := in.exitErr
	in.mu.Unlock()
	if exitErr != nil {
		return "", fmt.Errorf("%s's graceful stop: %v", in.Name, exitErr)
	}
	stopped := time.Since(start)
	if err := c.start(in); err != nil {
		return "", err
	}
	if err := c.waitState(in, "UP", 10*time.Second); err != nil {
		return "", fmt.Errorf("HAProxy did not see %s up again", in.Name)
	}
	return fmt.Sprintf("down in HAProxy after %s, stopped after %s, up again after %s",
		down.Round(10*time.Millisecond), stopped.Round(10*time.Millisecond), time.Since(start).Round(10*time.Millisecond)), nil
}

// upgrade runs phased -k upgrade on in. HAProxy must see it up all along:
// the new master serves the same sockets, readiness never says 503.
func (c *Cluster) upgrade(in *Instance) (string, error) {
	old := in.PID()
	stop := make(chan struct{})
	var downs []string
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if st, err := c.Stats(); err == nil && !strings.HasPrefix(st[in.Name].Status, "UP") {
				downs = append(downs, st[in.Name].Status)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	cmd := exec.Command(c.o.Bin, "-f", filepath.Join(in.Dir, "phased.yaml"), "-k", "upgrade")
	cmd.Dir, cmd.Env = in.Dir, c.o.Env
	out, err := cmd.CombinedOutput()
	if err == nil {
		in.mu.Lock()
		exited := in.exited
		in.mu.Unlock()
		select {
		case <-exited: // the old master drained and left
		case <-time.After(20 * time.Second):
			err = fmt.Errorf("the old master %d did not exit", old)
		}
	}
	time.Sleep(500 * time.Millisecond) // a few more checks with the new master alone
	close(stop)
	wg.Wait()
	if err != nil {
		return "", fmt.Errorf("-k upgrade: %v: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(in.Dir, "run/phased.pid"))
	if err != nil {
		return "", err
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == old || !procfs.Alive(pid) {
		return "", fmt.Errorf("after the upgrade the pid file says %d (the old master was %d)", pid, old)
	}
	in.mu.Lock()
	in.pid, in.exited = pid, watchPID(pid)
	in.mu.Unlock()
	if len(downs) > 0 {
		return "", fmt.Errorf("HAProxy saw %s %v during the upgrade: readiness must stay 200", in.Name, downs)
	}
	return fmt.Sprintf("new master %d; HAProxy saw it up all along", pid), nil
}

// KillBound is the most requests the kill step may lose under conc
// concurrent requests: the one each has in flight at the kill, and one
// more each. The killed processes take a moment to exit, and the kernel
// accepts connections on the listening socket until the last of them is
// gone; a client whose request was lost sends its next at once, and
// HAProxy, which has not seen the instance down yet (two failed checks,
// 200 ms apart), may send it there, where it is reset with the rest (9
// lost of 8 in flight, twice in the end-to-end test). After the socket is
// gone a connection is refused, which HAProxy redispatches without a loss.
func KillBound(conc int) int { return 2 * conc }

// kill ends in's master and children at once with SIGKILL and starts it
// again.
func (c *Cluster) kill(in *Instance) (string, error) {
	// At once, as a cgroup's kill or an out-of-memory kill of the whole
	// tree: every process is stopped first, so none of them (a child the
	// loop has not reached yet) accepts and loses a request after the
	// others are gone, then all are killed.
	pids := append([]int{in.PID()}, procfs.Descendants(in.PID())...)
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGSTOP)
	}
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	in.mu.Lock()
	exited := in.exited
	in.mu.Unlock()
	<-exited
	for _, p := range pids {
		for deadline := time.Now().Add(5 * time.Second); procfs.Alive(p) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	c.waitState(in, "DOWN", 5*time.Second)
	// The killed master's pid file and control socket are stale: the new
	// master must start over them.
	if err := c.start(in); err != nil {
		return "", err
	}
	if err := c.waitState(in, "UP", 10*time.Second); err != nil {
		return "", fmt.Errorf("HAProxy did not see %s up again", in.Name)
	}
	return fmt.Sprintf("%d processes killed", len(pids)), nil
}

// AccessLogClients counts the access-log lines of every instance by client
// address (the first field).
func (c *Cluster) AccessLogClients() (map[string]int, error) {
	out := map[string]int{}
	for _, in := range c.Instances {
		f, err := os.Open(filepath.Join(in.Dir, "logs/access.log"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			host, _, _ := strings.Cut(sc.Text(), " ")
			out[host]++
		}
		f.Close()
	}
	return out, nil
}

// StopGracefully stops every instance with SIGTERM (their access logs
// flushed) and waits for them.
func (c *Cluster) StopGracefully() {
	for _, in := range c.Instances {
		if pid := in.PID(); pid > 1 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	for _, in := range c.Instances {
		in.mu.Lock()
		exited := in.exited
		in.mu.Unlock()
		if exited != nil {
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
			}
		}
	}
}

// Close ends HAProxy and every instance with everything they started, by
// pid.
func (c *Cluster) Close() {
	for _, in := range c.Instances {
		pid := in.PID()
		if pid < 2 {
			continue
		}
		pids := append([]int{pid}, procfs.Descendants(pid)...)
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	if c.haproxy != nil && c.haproxy.Process != nil {
		c.haproxy.Process.Kill()
	}
}

// watchPID returns a channel closed when pid (not this process's child)
// is gone.
func watchPID(pid int) chan struct{} {
	ch := make(chan struct{})
	go func() {
		for procfs.Alive(pid) {
			time.Sleep(20 * time.Millisecond)
		}
		close(ch)
	}()
	return ch
}

// waitFor polls f until it says done, fails, or within passes.
func waitFor(within time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done within %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePorts returns n free loopback ports.
func freePorts(n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		_, p, _ := net.SplitHostPort(l.Addr().String())
		out = append(out, p)
	}
	return out, nil
}
