// Package cli is phased's command line: it parses flags, loads the
// configuration and hands over to the master, to a running master through its
// control socket, or to child mode.
//
//	phased [-f FILE] [-c key=value]...            start in the foreground
//	phased [-f FILE] -t                           check the configuration: "Syntax OK"
//	phased [-f FILE] -S                           print the effective configuration
//	phased [-f FILE] -k start|stop|graceful|restart|graceful-stop
//	phased [-f FILE] status [--json]
//	phased [-f FILE] health [--ready]
//	phased version (or phased --version)
//
// Exit codes: 0 success; 1 a configuration, start or command failure (the
// message names the file, key or address at fault); 2 a usage error.
package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/phasedhq/phased/core/child"
	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/core/control"
	"github.com/phasedhq/phased/core/handover"
	"github.com/phasedhq/phased/core/logging"
	"github.com/phasedhq/phased/core/master"
	"github.com/phasedhq/phased/phases"
	"github.com/phasedhq/phased/sdk/mpm"
)

// Version is phased's version, set at link time with
// -ldflags "-X github.com/phasedhq/phased/core/cli.Version=v1.2.3".
var Version = ""

// envReadyFD names the descriptor on which a master started by `-k start`
// reports that it serves ("ok") or why it could not start.
const envReadyFD = "PHASED_INTERNAL_READY_FD"

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type options struct {
	file      string
	overrides listFlag
	test      bool
	show      bool
	verb      string
	json      bool
	ready     bool
	version   bool
}

const usage = `usage: phased [-f FILE] [-c key=value]... [-t | -S | -k VERB]
       phased [-f FILE] status [--json]
       phased [-f FILE] health [--ready]
       phased version | phased --version

  -f FILE        configuration file (default: the embedded configuration)
  -c key=value   override one configuration key (dotted: mpm.start_servers=4); repeatable
  -t             check the configuration, its plugins, user and folders, and exit ("Syntax OK")
  -S             print the effective configuration
  -k VERB        start | stop | graceful | restart | graceful-stop | recycle | upgrade

  status         the running master's children, generations and scoreboard
  health         ask the running master's liveness endpoint (--ready: readiness)
                 from loopback, as a container's HEALTHCHECK; exit 0 on 200

Signals: TERM/INT stop, HUP/USR1 graceful restart, WINCH graceful stop,
USR2 binary upgrade.
`

// Main runs phased with args (without the program name) and returns the exit
// code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == child.Arg {
		return child.Main(stderr)
	}
	if len(args) > 0 && args[0] == master.PluginArg {
		return runPlugin(args[1:], stderr)
	}
	var o options
	fs := flag.NewFlagSet("phased", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.file, "f", "", "")
	fs.Var(&o.overrides, "c", "")
	fs.BoolVar(&o.test, "t", false, "")
	fs.BoolVar(&o.show, "S", false, "")
	fs.StringVar(&o.verb, "k", "", "")
	fs.BoolVar(&o.json, "json", false, "")
	fs.BoolVar(&o.ready, "ready", false, "")
	fs.BoolVar(&o.version, "version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "phased: %v\n%s", err, usage)
		return 2
	}
	rest := fs.Args()
	if len(rest) > 0 {
		// Flags may follow a subcommand: phased status --json -f x.yaml.
		if err := fs.Parse(rest[1:]); err != nil {
			fmt.Fprintf(stderr, "phased: %v\n%s", err, usage)
			return 2
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "phased: unexpected argument %q\n%s", fs.Arg(0), usage)
			return 2
		}
		rest = rest[:1]
	}
	switch {
	case o.version && len(rest) == 0, len(rest) == 1 && rest[0] == "version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case len(rest) == 1 && rest[0] == "status":
		return runStatus(o, stdout, stderr)
	case len(rest) == 1 && rest[0] == "health":
		return runHealth(o, stdout, stderr)
	case len(rest) > 0:
		fmt.Fprintf(stderr, "phased: unknown command %q\n%s", rest[0], usage)
		return 2
	}
	if o.test && o.show || (o.test || o.show) && o.verb != "" {
		fmt.Fprintf(stderr, "phased: -t, -S and -k do not go together\n%s", usage)
		return 2
	}
	cfg, err := load(o)
	if err != nil && (o.verb == "graceful" || o.verb == "restart") {
		// The master re-reads the file itself: let it fail the pass, so
		// that its error log says so, as for a SIGHUP, and answer.
		if sock, serr := config.ControlSocket(configOptions(o)); serr == nil {
			if resp, cerr := control.Call(sock, control.Request{Cmd: o.verb}, time.Minute); cerr == nil {
				if resp.OK { // the master's environment makes the file good
					fmt.Fprintf(stderr, "phased: %s: done; the configuration as this command reads it: %v\n", o.verb, err)
					return 0
				}
				fmt.Fprintf(stderr, "phased: %s: %s\n", o.verb, resp.Error)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "phased: %v\n", err)
		return 1
	}
	switch {
	case o.test:
		if err := dryRun(cfg, stderr); err != nil {
			fmt.Fprintf(stderr, "phased: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, "Syntax OK")
		return 0
	case o.show:
		b, err := cfg.YAML()
		if err == nil {
			var plan *phases.Plan
			if plan, err = master.NewPlan(cfg); err == nil {
				b = append(b, "\n# hook order, phase by phase (phased -S)\n"...)
				for _, line := range strings.SplitAfter(strings.TrimSuffix(plan.Describe(), "\n"), "\n") {
					b = append(b, "# "+line...)
				}
				b = append(b, '\n')
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "phased: %v\n", err)
			return 1
		}
		stdout.Write(b)
		return 0
	}
	switch o.verb {
	case "":
		return runMaster(o, args, cfg, stderr)
	case "start":
		return runStart(args, cfg, stdout, stderr)
	case "stop", "graceful", "restart", "graceful-stop", "recycle", "upgrade":
		return runVerb(o.verb, cfg, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "phased: unknown -k verb %q (start, stop, graceful, restart, graceful-stop, recycle, upgrade)\n", o.verb)
		return 2
	}
}

func load(o options) (*config.Config, error) {
	return config.Load(configOptions(o))
}

// configOptions is where o's configuration comes from.
func configOptions(o options) config.LoadOptions {
	return config.LoadOptions{File: o.file, Env: os.Environ(), Overrides: o.overrides}
}

func versionString() string {
	v := version()
	if v == "" {
		v = "(devel)"
	}
	return fmt.Sprintf("phased %s (%s %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// version is phased's version: Version when set at link time, else the
// module version Go's build information records (a pseudo-version for a
// build from a repository), else "" (a development build).
func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return ""
}

func runMaster(o options, args []string, cfg *config.Config, stderr io.Writer) int {
	opts := master.Options{
		Config:  cfg,
		Reload:  func() (*config.Config, error) { return load(o) },
		Args:    args,
		Version: version(),
	}
	if activated, err := handover.Activated(); err != nil {
		fmt.Fprintf(stderr, "phased: %v\n", err)
		return 1
	} else if activated != nil {
		opts.Activated = activated
	}
	if up, err := handover.Adopt(); err != nil {
		fmt.Fprintf(stderr, "phased: %v\n", err)
		return 1
	} else if up != nil {
		if err := adoptUpgrade(&opts, up); err != nil {
			fmt.Fprintf(stderr, "phased: %v\n", err)
			return 1
		}
	}
	if f, ok := stderr.(*os.File); ok {
		opts.Stderr = f
	}
	if fd, err := strconv.Atoi(os.Getenv(envReadyFD)); err == nil && fd > 2 {
		ready := os.NewFile(uintptr(fd), "ready")
		os.Unsetenv(envReadyFD)
		opts.Ready = func(err error) {
			if err != nil {
				fmt.Fprintf(ready, "error: %v\n", err)
			} else {
				fmt.Fprintln(ready, "ok")
			}
			ready.Close()
		}
	}
	if err := master.Run(opts); err != nil {
		fmt.Fprintf(stderr, "phased: %v\n", err)
		return 1
	}
	return 0
}

// runStart starts a master in the background, detached from the terminal,
// and waits until it serves or fails.
func runStart(args []string, cfg *config.Config, stdout, stderr io.Writer) int {
	if resp, err := control.Call(cfg.ControlSocket, control.Request{Cmd: "ping"}, 5*time.Second); err == nil && resp.OK {
		fmt.Fprintf(stderr, "phased: %s\n", resp.Message)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "phased: %v\n", err)
		return 1
	}
	var keep []string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "-k" || args[i] == "--k":
			i++
		case strings.HasPrefix(args[i], "-k=") || strings.HasPrefix(args[i], "--k="):
		default:
			keep = append(keep, args[i])
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "phased: %v\n", err)
		return 1
	}
	cmd := exec.Command(exe, keep...)
	cmd.Env = append(os.Environ(), envReadyFD+"=3")
	cmd.ExtraFiles = []*os.File{w}
	// A daemon keeps none of its caller's descriptors: `$(phased -k start)`
	// must return. Start errors come back through the ready pipe.
	if p := cfg.ErrorLog.Path; p == "stderr" || p == "stdout" {
		fmt.Fprintf(stderr, "phased: warning: error_log.path is %s; a background master's log is discarded (set error_log.path to a file)\n", p)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "phased: starting the master: %v\n", err)
		return 1
	}
	w.Close()
	pid := cmd.Process.Pid
	cmd.Process.Release()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == "ok":
		fmt.Fprintf(stdout, "phased (pid %d) started\n", pid)
		return 0
	case strings.HasPrefix(line, "error: "):
		fmt.Fprintf(stderr, "phased: %s\n", strings.TrimPrefix(line, "error: "))
	default:
		fmt.Fprintln(stderr, "phased: the master exited before it was ready")
	}
	return 1
}

func runVerb(verb string, cfg *config.Config, stdout, stderr io.Writer) int {
	// The master answers when the operation is done: a stop or a restart
	// can take a whole drain. Beyond that, something is wrong.
	resp, err := control.Call(cfg.ControlSocket, control.Request{Cmd: verb}, cfg.GracefulShutdownTimeout+30*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "phased: %v\n", err)
		return 1
	}
	if !resp.OK {
		fmt.Fprintf(stderr, "phased: %s: %s\n", verb, resp.Error)
		return 1
	}
	if resp.Message != "" {
		fmt.Fprintf(stdout, "phased: %s: %s\n", verb, resp.Message)
	}
	return 0
}

func runStatus(o options, stdout, stderr io.Writer) int {
	cfg, err := load(o)
	if err != nil {
		fmt.Fprintf(stderr, "phased: %v\n", err)
		return 1
	}
	resp, err := control.Call(cfg.ControlSocket, control.Request{Cmd: "status"}, 10*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "phased: %v\n", err)
		return 1
	}
	if !resp.OK {
		fmt.Fprintf(stderr, "phased: status: %s\n", resp.Error)
		return 1
	}
	if o.json {
		stdout.Write(resp.Data)
		fmt.Fprintln(stdout)
		return 0
	}
	var s master.Status
	if err := json.Unmarshal(resp.Data, &s); err != nil {
		fmt.Fprintf(stderr, "phased: status: %v\n", err)
		return 1
	}
	master.WriteStatus(stdout, s)
	return 0
}

// dryRun is `phased -t`: see master.DryRun.
func dryRun(cfg *config.Config, stderr io.Writer) error {
	level, err := logging.ParseLevel(cfg.ErrorLog.Level)
	if err != nil {
		return err
	}
	return master.DryRun(context.Background(), cfg, logging.New(stderr, level, cfg.ErrorLog.Format))
}

// runPlugin is phased in plugin mode: `--internal-plugin mpm worker` serves a
// built-in MPM to its master over go-plugin. It never returns while serving.
func runPlugin(args []string, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "mpm" || master.BuiltinMPM(args[1]) == nil {
		fmt.Fprintf(stderr, "phased: plugin mode: want \"mpm prefork|worker|event\", got %q\n", args)
		return 2
	}
	mpm.Serve(master.BuiltinMPM(args[1]))
	return 0
}

// adoptUpgrade sets opts up for a master started by a binary upgrade, from
// what the old master handed over.
func adoptUpgrade(opts *master.Options, up *handover.Adopted) error {
	opts.Inherited = up.Listeners
	if up.State.Activated {
		opts.Activated = opts.Inherited
	}
	p := &master.Predecessor{PID: up.State.PID, Generation: up.State.Generation, Started: up.State.Started, Counters: up.Counters, Tickets: up.Tickets}
	if len(up.State.Children) > 0 {
		if err := json.Unmarshal(up.State.Children, &p.Children); err != nil {
			err = fmt.Errorf("binary upgrade: the old master's children: %w", err)
			up.Fail(err)
			return err
		}
	}
	opts.Predecessor = p
	opts.Ready = func(err error) {
		if err != nil {
			up.Fail(err)
		}
	}
	opts.Handover = up.Handover
	return nil
}
