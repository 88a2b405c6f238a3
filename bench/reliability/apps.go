package main

// The app suite (-apps): the same Rack app (examples/app-rack/config.ru)
// under Apache + Passenger and under phased (unicorn per child under
// prefork, puma per child under worker), loaded by ab -n N at concurrency 1
// and 5, with and without keep-alive, while app processes are recycled:
// Passenger's way (SIGUSR1 to one app process, passenger-config
// restart-app, PassengerMaxRequests) and phased's (max_memory_per_child,
// SIGUSR1 to one child, -k graceful, HUP); then the app servers' own
// rolling restarts, counted the same way (puma's phased restart, gunicorn's
// HUP with examples/app-python, unicorn's USR2 then QUIT). Table in
// bench/apps/RESULTS.md.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

var appsMode = flag.Bool("apps", false, "the app suite instead: the Rack app under Apache + Passenger, under phased (unicorn, puma) and the app servers' own rolling restarts, under ab -n (default 10000) at -conc 1,5 while app processes are recycled; table in bench/apps/RESULTS.md")

// appPath is what the load asks for: the Rack app's fixed-length answer
// ("ok\n"; its / names the pid, whose length varies, which ab counts as a
// failure).
const appPath = "/health"

// appPool is how many app processes each server runs: Passenger's pool,
// phased's prefork children, the app servers' workers.
const appPool = 6

// appCell runs one cell of the app suite: a fresh server, the load (ab -n
// limit at conc), the operation started o.before in; the load runs to its
// end, or, when o.after is set, o.after past the operation.
func appCell(k kind, op operation, cl client, ka bool, conc int, o options, judged bool, log io.Writer) cell {
	c := cell{server: k.name, op: op, client: cl.name(), keepAlive: ka, conc: conc}
	dir, err := os.MkdirTemp("", "phased-apps-")
	if err != nil {
		c.opErr, c.verdict = err, "FAIL: "+err.Error()
		return c
	}
	os.Chmod(dir, 0o755) // Passenger's and Apache's processes run as www-data
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	s := k.make(dir, op.name, conc, ka)
	if err := s.start(); err != nil {
		s.stop()
		c.opErr = fmt.Errorf("start: %v", err)
		c.verdict = "FAIL: " + c.opErr.Error()
		keep = o.keepFailed
		fmt.Fprintf(log, "   %s log (%s): %s\n", k.name, dir, s.logTail())
		return c
	}
	defer s.stop()
	res, stop := loadAround(s, cl, load{addr: s.addr(), path: appPath, conc: conc, keepAlive: ka, limit: o.limit, maxTime: o.maxTime}, op, o.before, &c)
	select {
	case c.Counts = <-res:
		// The load must cover the operation, or the cell proves nothing.
		if c.opErr == nil && judged {
			c.opErr = errors.New("the load ended before the operation did: raise -n")
		} else {
			c.Note = strings.TrimSpace(c.Note + " the load ended before the operation did")
		}
	default:
		if o.after > 0 { // time-bounded: the load goes on o.after, then stops
			select {
			case c.Counts = <-res:
			case <-time.After(o.after):
				close(stop)
				c.Counts = <-res
			}
		} else { // to its -n
			c.Counts = <-res
		}
	}
	if a, ok := s.(interface {
		afterLoad(op string) (string, error)
	}); ok && c.opErr == nil {
		note, err := a.afterLoad(op.name)
		c.opNote, c.opErr = strings.TrimSpace(c.opNote+" "+note), err
	}
	if judged {
		o.judgeAll = true
		c.verdict = judge(c, o)
	}
	if strings.HasPrefix(c.verdict, "FAIL") || c.Lost() > 0 {
		keep = o.keepFailed && judged
		fmt.Fprintf(log, "   %s log (%s): %s\n", k.name, dir, s.logTail())
	}
	return c
}

// moduleRoot is the folder of go.mod, from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = up
	}
}

// copyApp copies the files of an example into dir, readable by all.
func copyApp(root, example, dir string, files ...string) error {
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, "examples", example, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startLogged starts cmd in dir with its output in dir/name.log.
func startLogged(cmd *exec.Cmd, dir, name string) error {
	out, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}

// waitFor polls cond until it holds or within passed.
func waitFor(within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// pidsRunning returns the pids whose command line contains s.
func pidsRunning(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(b), s) {
			out = append(out, pid)
		}
	}
	return out
}

// ---------------------------------------------------------------- phased + app server

var phasedAppOps = []operation{
	baseline,
	{name: "recycle by memory", desc: "`max_memory_per_child: 1M` (the child and its app server's processes): every child recycled all along"},
	{name: "USR1 one child", desc: "SIGUSR1 to one serving child: it stops taking connections, finishes its requests, stops its app server (its replacement's app is up first)"},
	{name: "graceful", desc: "`phased -k graceful`: a new generation of children, each with its own app server"},
	{name: "HUP", desc: "`kill -HUP` to the master"},
}

// phasedApp is phased serving the Rack app: unicorn per child under
// prefork (one request at a time, Passenger's and unicorn's model), or
// puma per child under worker.
type phasedApp struct {
	phased
	root, appServer string
}

func phasedAppKind(bin, root, appServer string) kind {
	return kind{name: "phased + " + appServer, ops: phasedAppOps, make: func(dir, op string, conc int, ka bool) server {
		return &phasedApp{phased: phased{bin: bin, dir: dir, op: op, conc: conc, keepAlive: ka}, root: root, appServer: appServer}
	}}
}

func (p *phasedApp) config() string {
	extra := ""
	if p.op == "recycle by memory" {
		extra = "  max_memory_per_child: 1M\n"
	}
	// Room for 2 more children than serve: a child retired by memory is
	// replaced first, in a free slot, then drains (with no free slot it
	// would drain first, and a keep-alive client wait for a new child).
	mpm := fmt.Sprintf("mpm:\n  name: prefork\n  start_servers: %[1]d\n  min_spare_servers: %[2]d\n  max_spare_servers: %[1]d\n  max_request_workers: %[3]d\n%[4]s", appPool, appPool/2, appPool+2, extra)
	app := `app:
  type: http
  command: [unicorn, --config-file, unicorn.conf.rb, --listen, "{socket}", config.ru]
  health_check: /health
  stop_signal: QUIT
  stop_timeout: 30s
`
	if p.appServer == "puma" {
		mpm = fmt.Sprintf("mpm:\n  name: worker\n  start_servers: 2\n  threads_per_child: 3\n  min_spare_threads: 3\n  max_spare_threads: %[1]d\n  max_request_workers: %[2]d\n%[3]s", appPool, appPool+3, extra)
		app = `app:
  type: http
  command: [puma, --environment, production, --bind, "unix://{socket}", --threads, "{threads}:{threads}", config.ru]
  health_check: /health
  stop_signal: TERM
  stop_timeout: 30s
`
	}
	return fmt.Sprintf(`listen: [%q]
pid_file: run/phased.pid
graceful_shutdown_timeout: 30s
error_log: {path: logs/error.log, level: info, format: json}
access_log: {path: logs/access.log}
%s%s`, p.address, mpm, app)
}

func (p *phasedApp) start() error {
	for _, d := range []string{"logs", "run"} {
		os.MkdirAll(filepath.Join(p.dir, d), 0o755)
	}
	if err := copyApp(p.root, "app-rack", p.dir, "config.ru", "unicorn.conf.rb"); err != nil {
		return err
	}
	var err error
	if p.address, err = freeAddr(); err != nil {
		return err
	}
	return p.launch(p.config(), appPath, 60*time.Second)
}

func (p *phasedApp) do(op string) (string, error) {
	p.remember()
	defer p.remember()
	switch op {
	case baseline.name, "recycle by memory":
		return "", nil // recycling goes on all along the load
	case "graceful", "HUP":
		// Like phased's own, with more time: each new child starts an app
		// server, slowly on a loaded machine.
		n := p.count("graceful restart done")
		if op == "HUP" {
			syscall.Kill(p.master, syscall.SIGHUP)
		} else if _, err := p.ctl("-k", "graceful"); err != nil {
			return "", err
		}
		return "", p.waitCount("graceful restart done", n+1, 60*time.Second)
	case "USR1 one child":
		workers := e2e.Workers(p.master)
		if len(workers) == 0 {
			return "", errors.New("no serving child")
		}
		syscall.Kill(workers[0], syscall.SIGUSR1)
		return waitGone([]int{workers[0]}, 30*time.Second)
	default:
		return p.phased.do(op)
	}
}

func (p *phasedApp) afterLoad(op string) (string, error) {
	if op != "recycle by memory" {
		return "", nil
	}
	n := p.count(`"reason":"memory"`)
	if n == 0 {
		return "", errors.New("no child was recycled: the cell proves nothing")
	}
	return fmt.Sprintf("%d recycles", n), nil
}

func (p *phasedApp) stop() {
	p.phased.stop()
	killSeen(p.seen, "unicorn", "puma")
}

// ---------------------------------------------------------------- Apache + Passenger

var passengerOps = []operation{
	baseline,
	{name: "USR1 one app process", desc: "SIGUSR1 to one `Passenger RubyApp` process, as the operator of the source document did to recycle one"},
	{name: "restart-app", desc: "`passenger-config restart-app APP_DIR` (open-source Passenger: not rolling; the rolling restart is Enterprise's)"},
	{name: "max requests 500", desc: "`PassengerMaxRequests 500`: Passenger's own recycling, every app process replaced after 500 requests, all along"},
}

// passenger is Debian's Apache (event MPM) with Debian's mod_passenger,
// run in the foreground as our child on its own config, Passenger's
// instance registry in the cell's folder, the Rack app in a pool of
// appPool processes (PassengerMinInstances = PassengerMaxPoolSize).
type passenger struct {
	root, dir, conf, address, op string
	cmd                          *exec.Cmd
	seen                         []int
}

func passengerKind(root string) kind {
	return kind{name: "Apache + Passenger", ops: passengerOps, make: func(dir, op string, conc int, _ bool) server {
		return &passenger{root: root, dir: dir, op: op}
	}}
}

func (a *passenger) addr() string { return a.address }

func (a *passenger) appDir() string { return filepath.Join(a.dir, "app") }

func (a *passenger) start() error {
	for _, d := range []string{"app/public", "reg"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := copyApp(a.root, "app-rack", a.appDir(), "config.ru"); err != nil {
		return err
	}
	var err error
	if a.address, err = freeAddr(); err != nil {
		return err
	}
	extra := ""
	if a.op == "max requests 500" {
		extra = "PassengerMaxRequests 500\n"
	}
	a.conf = filepath.Join(a.dir, "httpd.conf")
	conf := apacheBase(a.dir, a.address) + fmt.Sprintf(`LoadModule passenger_module %[3]s/mod_passenger.so
PassengerRoot /usr/lib/ruby/vendor_ruby/phusion_passenger/locations.ini
PassengerDefaultRuby /usr/bin/ruby
PassengerInstanceRegistryDir %[1]s/reg
PassengerDisableSecurityUpdateCheck on
PassengerDisableAnonymousTelemetry on
PassengerDefaultUser www-data
PassengerDefaultGroup www-data
PassengerMaxPoolSize %[4]d
PassengerMinInstances %[4]d
PassengerAppRoot %[1]s/app
PassengerAppType rack
PassengerStartupFile config.ru
PassengerAppEnv production
%[5]sDocumentRoot %[1]s/app/public
<Directory />
    Require all granted
</Directory>
KeepAlive On
KeepAliveTimeout 5
MaxKeepAliveRequests 0
StartServers 2
ThreadsPerChild 25
MinSpareThreads 25
MaxSpareThreads 75
MaxRequestWorkers 150
`, a.dir, a.address, apacheModules, appPool, extra)
	if err := os.WriteFile(a.conf, []byte(conf), 0o644); err != nil {
		return err
	}
	a.cmd = exec.Command(apacheBin, "-f", a.conf, "-DFOREGROUND")
	// Passenger makes its spawn folders (passenger.spawn.*, owned by the
	// app user) in TMPDIR and leaves some behind when Apache is stopped:
	// give it one in the cell's folder, removed with it.
	tmp := filepath.Join(a.dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o777|os.ModeSticky); err != nil {
		return err
	}
	a.cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if err := startLogged(a.cmd, a.dir, "stderr"); err != nil {
		return err
	}
	if err := waitPath(a.address, appPath, 60*time.Second); err != nil {
		return fmt.Errorf("%v; %s", err, a.logTail())
	}
	// Passenger spawns the rest of its pool after the first request: wait
	// for all of it, so both servers start the load with every process up.
	if err := waitFor(60*time.Second, fmt.Sprintf("%d Passenger app processes", appPool), func() bool {
		return len(a.appProcesses()) >= appPool
	}); err != nil {
		return err
	}
	a.remember()
	return nil
}

func (a *passenger) appProcesses() []int { return pidsRunning("RubyApp: " + a.appDir() + " ") }

func (a *passenger) remember() { a.seen = append(a.seen, e2e.Descendants(a.cmd.Process.Pid)...) }

func (a *passenger) do(op string) (string, error) {
	a.remember()
	defer a.remember()
	switch op {
	case baseline.name, "max requests 500":
		return "", nil
	case "USR1 one app process":
		ps := a.appProcesses()
		if len(ps) == 0 {
			return "", errors.New("no Passenger app process")
		}
		syscall.Kill(ps[0], syscall.SIGUSR1)
		return waitGone(ps[:1], 30*time.Second)
	case "restart-app":
		cmd := exec.Command("passenger-config", "restart-app", a.appDir())
		cmd.Env = append(os.Environ(), "PASSENGER_INSTANCE_REGISTRY_DIR="+filepath.Join(a.dir, "reg"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("passenger-config restart-app: %v: %s", err, out)
		}
		return "", nil
	}
	return "", fmt.Errorf("unknown operation %q", op)
}

func (a *passenger) stop() {
	a.remember()
	killTree(a.cmd.Process.Pid, 15*time.Second)
	killSeen(a.seen, apacheBin, "Passenger")
}

func (a *passenger) logTail() string {
	return tail(filepath.Join(a.dir, "error.log"), 5) + " | " + tail(filepath.Join(a.dir, "stderr.log"), 3)
}

// ---------------------------------------------------------------- the app servers' own rolling restarts

// ownServer is an app server run on its own on a loopback port, with its
// own rolling restart: puma's phased restart (cluster mode, USR1),
// gunicorn's HUP, unicorn's USR2 then QUIT to the old master.
type ownServer struct {
	root, dir, address, name string
	cmd                      *exec.Cmd
	seen                     []int
}

var ownOps = map[string]operation{
	"puma":     {name: "phased restart (USR1)", desc: "puma in cluster mode (`-w 6 -t 1:1`): SIGUSR1 to its master, which replaces its workers one by one"},
	"gunicorn": {name: "HUP", desc: "gunicorn (`-w 6`, sync workers) with examples/app-python's WSGI app: SIGHUP to its master, which starts new workers and stops the old ones gracefully"},
	"unicorn":  {name: "USR2 then QUIT", desc: "unicorn (6 workers): SIGUSR2 to its master (a new master with new workers), then, once they are up, SIGQUIT to the old master"},
}

func ownKind(root, name string) kind {
	return kind{name: name + " alone", ops: []operation{baseline, ownOps[name]}, make: func(dir, op string, conc int, _ bool) server {
		return &ownServer{root: root, dir: dir, name: name}
	}}
}

func (s *ownServer) addr() string { return s.address }

func (s *ownServer) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "stderr.log"))
	return string(b)
}

func (s *ownServer) start() error {
	var err error
	if s.address, err = freeAddr(); err != nil {
		return err
	}
	n := strconv.Itoa(appPool)
	switch s.name {
	case "puma":
		if err := copyApp(s.root, "app-rack", s.dir, "config.ru"); err != nil {
			return err
		}
		s.cmd = exec.Command("puma", "--environment", "production", "-w", n, "-t", "1:1", "--bind", "tcp://"+s.address, "config.ru")
	case "gunicorn":
		if err := copyApp(s.root, "app-python", s.dir, "app.py"); err != nil {
			return err
		}
		s.cmd = exec.Command("gunicorn", "-w", n, "--bind", s.address, "--graceful-timeout", "30", "app:application")
	case "unicorn":
		if err := copyApp(s.root, "app-rack", s.dir, "config.ru"); err != nil {
			return err
		}
		conf := fmt.Sprintf("worker_processes %s\nlisten %q\npid %q\npreload_app false\ntimeout 60\n", n, s.address, filepath.Join(s.dir, "unicorn.pid"))
		if err := os.WriteFile(filepath.Join(s.dir, "unicorn.conf.rb"), []byte(conf), 0o644); err != nil {
			return err
		}
		s.cmd = exec.Command("unicorn", "--env", "production", "--config-file", "unicorn.conf.rb", "config.ru")
	}
	if err := startLogged(s.cmd, s.dir, "stderr"); err != nil {
		return err
	}
	if err := waitPath(s.address, appPath, 60*time.Second); err != nil {
		return fmt.Errorf("%v; %s", err, s.logTail())
	}
	if err := waitFor(60*time.Second, "every worker up", func() bool { return s.booted() >= appPool }); err != nil {
		return err
	}
	s.remember()
	return nil
}

// booted counts the workers the server's log says are up.
func (s *ownServer) booted() int {
	switch s.name {
	case "puma":
		return strings.Count(s.log(), ") booted")
	case "gunicorn":
		return strings.Count(s.log(), "Booting worker")
	default:
		return strings.Count(s.log(), " ready")
	}
}

func (s *ownServer) remember() {
	s.seen = append(s.seen, s.cmd.Process.Pid)
	s.seen = append(s.seen, e2e.Descendants(s.cmd.Process.Pid)...)
	if p := readPid(filepath.Join(s.dir, "unicorn.pid")); p > 0 {
		s.seen = append(s.seen, p)
		s.seen = append(s.seen, e2e.Descendants(p)...)
	}
}

func (s *ownServer) do(op string) (string, error) {
	s.remember()
	defer s.remember()
	if op == baseline.name {
		return "", nil
	}
	master := s.cmd.Process.Pid
	before := s.booted()
	switch s.name {
	case "puma":
		syscall.Kill(master, syscall.SIGUSR1)
		return "", waitFor(60*time.Second, "puma's workers replaced", func() bool {
			return strings.Count(s.log(), "phase: 1") >= appPool
		})
	case "gunicorn":
		syscall.Kill(master, syscall.SIGHUP)
		return "", waitFor(60*time.Second, "gunicorn's new workers", func() bool { return s.booted() >= before+appPool })
	case "unicorn":
		syscall.Kill(master, syscall.SIGUSR2)
		if err := waitFor(60*time.Second, "the new unicorn master's workers", func() bool {
			p := readPid(filepath.Join(s.dir, "unicorn.pid"))
			return p > 0 && p != master && s.booted() >= before+appPool
		}); err != nil {
			return "", err
		}
		s.remember()
		syscall.Kill(master, syscall.SIGQUIT)
		return waitGone([]int{master}, 60*time.Second)
	}
	return "", fmt.Errorf("unknown operation %q", op)
}

func (s *ownServer) stop() {
	s.remember()
	if p := readPid(filepath.Join(s.dir, "unicorn.pid")); p > 0 && p != s.cmd.Process.Pid {
		killTree(p, 15*time.Second)
	}
	killTree(s.cmd.Process.Pid, 15*time.Second)
	killSeen(s.seen, "puma", "gunicorn", "unicorn")
}

func (s *ownServer) logTail() string { return tail(filepath.Join(s.dir, "stderr.log"), 6) }

// ---------------------------------------------------------------- the run

// appKinds are the servers of the app suite, the ones judged first.
func appKinds(bin, root string) (judged, others []kind) {
	return []kind{phasedAppKind(bin, root, "unicorn"), phasedAppKind(bin, root, "puma")},
		[]kind{passengerKind(root), ownKind(root, "puma"), ownKind(root, "gunicorn"), ownKind(root, "unicorn")}
}

func runApps(bin, servers string, only []string, cls []client, kas []bool, concs []int, o options, results, cmdline string) int {
	root, err := moduleRoot()
	if err != nil {
		return fatal(err)
	}
	judgedKinds, otherKinds := appKinds(bin, root)
	want := split(servers)
	pick := func(ks []kind) []kind {
		var out []kind
		for _, k := range ks {
			short := strings.Fields(k.name)
			if len(want) == 0 || contains(want, k.name) || contains(want, short[0]) || contains(want, short[len(short)-1]) && short[0] != "phased" {
				out = append(out, k)
			}
		}
		return out
	}
	judgedKinds, otherKinds = pick(judgedKinds), pick(otherKinds)
	started := time.Now()
	var all []cell
	failed := 0
	for _, group := range []struct {
		kinds  []kind
		judged bool
	}{{judgedKinds, true}, {otherKinds, false}} {
		for _, k := range group.kinds {
			for _, op := range k.ops {
				if len(only) > 0 && !contains(only, op.name) {
					continue
				}
				for _, cl := range cls {
					for _, ka := range kas {
						for _, conc := range concs {
							c := appCell(k, op, cl, ka, conc, o, group.judged, os.Stderr)
							fmt.Fprintf(os.Stderr, "%-20s %-24s %-3s ka=%-5v c=%d %s\n", k.name, op.name, c.client, ka, conc, summary(c))
							if strings.HasPrefix(c.verdict, "FAIL") {
								failed++
							}
							all = append(all, c)
						}
					}
				}
			}
		}
	}
	kinds := append(judgedKinds, otherKinds...)
	var out strings.Builder
	for _, k := range kinds {
		writeTable(&out, k.name, all)
	}
	fmt.Print(out.String())
	fmt.Printf("%d cells in %s, %d phased cells failed\n", len(all), time.Since(started).Round(time.Second), failed)
	if results != "" {
		if err := writeAppResults(results, cmdline, o, all, kinds, time.Since(started), failed); err != nil {
			return fatal(err)
		}
		fmt.Println("wrote", results)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func writeAppResults(path, cmdline string, o options, all []cell, kinds []kind, took time.Duration, failed int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "## Apps under recycling: phased vs Apache + Passenger vs the app servers' own restarts\n\n")
	fmt.Fprintf(&b, "Run %s UTC, %d cells in %s, %d phased cells failed.\n\n", time.Now().UTC().Format("2006-01-02 15:04"), len(all), took.Round(time.Second), failed)
	fmt.Fprintf(&b, "Command: `%s` (from the module root, after `make build`; part of `make soak`)\n\n", cmdline)
	fmt.Fprintf(&b, "Machine: %s; Passenger %s; %s. Other jobs ran on this 2-core machine at the same time, so stalls include their load.\n\n", machine(), toolVersion("passenger-config", "--version"), toolVersion("puma", "--version"))
	fmt.Fprintf(&b, "The same Rack app (examples/app-rack/config.ru) in every server, %d app processes each; the load asks for `%s` (a fixed-length answer from the app). ", appPool, appPath)
	fmt.Fprintf(&b, "Each cell: a fresh server on a free 127.0.0.1 port; `ab -r -s 10 -n %d -c C [-k]`; the operation starts %s into the load; the load runs to its end. ", o.limit, o.before)
	b.WriteString("`failed` = requests with no response or a body of the wrong length (ab's categories, each request once); `non-2xx` = error answers (Passenger's 502 page); `longest stall` = ab's longest request. ")
	fmt.Fprintf(&b, "phased's cells are judged: no request lost, no stall over %s; the others are reported.\n\n", o.maxStall)
	writeOpsAndTables(&b, kinds, all)
	return writeSection(path, "soak", b.String())
}

// writeSection puts text in the file at path between the markers
// <!-- name:begin --> and <!-- name:end -->, in place of what was there,
// so that bench/apps/run.sh's figures and this suite's share one file.
func writeSection(path, name, text string) error {
	begin, end := "<!-- "+name+":begin -->\n", "<!-- "+name+":end -->\n"
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	if s == "" {
		s = "# Apps behind phased: results\n\n"
	}
	section := begin + text + "\n" + end
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + section + s[j+len(end):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + section
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

func toolVersion(bin string, args ...string) string {
	out, _ := exec.Command(bin, args...).CombinedOutput()
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}
