// Package host launches and talks to phased's plugin processes: MPMs and
// hook plugins, spoken to over hashicorp/go-plugin's gRPC.
//
// A plugin is a separate process, so a crash in it cannot take the master
// down. Launch starts one with the parent-death signal set (a killed master
// leaves no plugin behind), as the children's user when the master drops
// privileges, in a clean environment, with its unix socket in a folder the
// master owns; it negotiates a protocol version (1 and 2, see Versions) and
// relays the plugin's log records into the error log at their own level,
// tagged with the plugin's name. Every error names the plugin.
package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/phasedhq/phased/internal/pluginrpc"
	"github.com/phasedhq/phased/sdk/hook"
	"github.com/phasedhq/phased/sdk/mpm"
)

// DefaultStartTimeout bounds a plugin's handshake.
const DefaultStartTimeout = 10 * time.Second

// stopBound bounds a graceful stop in Kill: go-plugin's own graceful stop
// waits for the plugin's answer without a deadline, so a wedged plugin (a
// stopped process, a runtime that never schedules the gRPC server) would
// hold Kill, and the master's event loop with it, forever.
const stopBound = 2 * time.Second

// Options says how to launch one plugin.
type Options struct {
	// Name identifies the plugin in logs and errors ("mpm worker", the
	// hook's name).
	Name string
	// Kind is KindMPM or KindHook.
	Kind string
	// Argv is the command; Argv[0] is the plugin's path.
	Argv []string
	// Env is the plugin's whole environment; nil means a minimal one (PATH,
	// HOME, LANG, TZ from the master's).
	Env []string
	// Dir is the working directory; "" means the master's.
	Dir string
	// Log receives the plugin's records and go-plugin's own.
	Log *slog.Logger
	// Level is the least severe level relayed (and asked of the plugin).
	Level slog.Level
	// Credential, when set, runs the plugin as another user.
	Credential *syscall.Credential
	// SocketDir is where the plugin makes its unix socket: Launch makes a
	// folder of the plugin's own in it (owned by Credential's user), which
	// Kill removes. "" means os.TempDir().
	SocketDir string
	// StartTimeout bounds the handshake; zero means DefaultStartTimeout.
	StartTimeout time.Duration
}

// Plugin is a running plugin.
type Plugin struct {
	name     string
	sockDir  string // the plugin's socket folder, removed by Kill
	client   *goplugin.Client
	cmd      *exec.Cmd
	log      *slog.Logger
	relay    *relayState
	raw      any
	protocol int
}

// Launch starts the plugin and dispenses its interface. On error nothing is
// left running.
func Launch(o Options) (*Plugin, error) {
	if len(o.Argv) == 0 {
		return nil, fmt.Errorf("plugin %s: no command", o.Name)
	}
	env := o.Env
	if env == nil {
		env = minimalEnv()
	}
	env = append(env, pluginrpc.LogLevelEnv+"="+pluginrpc.ToHclog(o.Level).String())
	// go-plugin's own socket folder setting reaches the plugin only with a
	// custom runner: the plugin makes its socket where this variable says,
	// in a folder of its own that Kill removes, so that a plugin that dies
	// leaves nothing behind in the temporary directory.
	sockDir, err := os.MkdirTemp(o.SocketDir, "") // short: a unix socket path has 108 bytes
	if err != nil {
		return nil, fmt.Errorf("plugin %s: socket folder: %w", o.Name, err)
	}
	if c := o.Credential; c != nil {
		if err := os.Chown(sockDir, int(c.Uid), int(c.Gid)); err != nil {
			os.RemoveAll(sockDir)
			return nil, fmt.Errorf("plugin %s: socket folder: %w", o.Name, err)
		}
	}
	env = append(env, goplugin.EnvUnixSocketDir+"="+sockDir)
	cmd := exec.Command(o.Argv[0], o.Argv[1:]...)
	cmd.Env = env
	cmd.Dir = o.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: o.Credential}
	timeout := o.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	relay := newSlogAdapter(o.Log.With("plugin", o.Name), o.Level)
	cfg := &goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: PluginSets(),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           relay,
		SkipHostEnv:      true,
		StartTimeout:     timeout,
		Managed:          false,
	}
	client := goplugin.NewClient(cfg)
	rpc, err := client.Client()
	if err != nil {
		relay.st.stopping.Store(true) // the error says what went wrong
		if cmd.Process != nil {
			// Its process group (Setpgid): a script that never shook hands
			// may have started programs that hold its stderr, which
			// go-plugin's Kill waits for.
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		client.Kill()
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("plugin %s (%s): %w", o.Name, o.Argv[0], explain(err))
	}
	relay.st.started.Store(true)
	raw, err := rpc.Dispense(o.Kind)
	if err != nil {
		relay.st.stopping.Store(true)
		client.Kill()
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("plugin %s (%s): it does not serve a %s plugin: %w", o.Name, o.Argv[0], o.Kind, err)
	}
	return &Plugin{name: o.Name, sockDir: sockDir, client: client, cmd: cmd, log: o.Log, relay: relay.st, raw: raw, protocol: client.NegotiatedVersion()}, nil
}

// explain turns go-plugin's handshake errors into what an operator can act on.
func explain(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(strings.ToLower(msg), "incompatible api version"):
		return fmt.Errorf("incompatible protocol version: %s (phased speaks %v)", msg, Versions())
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Errorf("did not complete the handshake in time (%w)", err)
	case strings.Contains(msg, "exited before we could connect"), strings.Contains(msg, "Unrecognized remote plugin message"):
		return fmt.Errorf("not a phased plugin, or it failed at start (wrong magic cookie, a crash, or output on stdout): %w", err)
	}
	return err
}

func minimalEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "TZ", "TMPDIR", "GORACE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return p.name }

// Protocol returns the negotiated protocol version.
func (p *Plugin) Protocol() int { return p.protocol }

// PID returns the plugin process's pid, or 0.
func (p *Plugin) PID() int {
	if p.cmd.Process != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// Exited reports whether the plugin process has ended.
func (p *Plugin) Exited() bool { return p.client.Exited() }

// Kill ends the plugin: gracefully, then forcibly. A plugin that has not
// exited after a short bound (stopBound) is killed with SIGKILL, so a wedged
// plugin cannot hold the caller. When Kill returns the process has exited
// and Exited reports true. It is safe to call twice.
func (p *Plugin) Kill() {
	p.relay.stopping.Store(true) // its exit is no news
	defer os.RemoveAll(p.sockDir)
	done := make(chan struct{})
	go func() {
		p.client.Kill()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(stopBound):
	}
	p.log.Warn("plugin did not stop in time; killing it", "plugin", p.name, "pid", p.PID(), "after", stopBound.String())
	// os.Process signals through a pidfd: never another process that got
	// the pid after the plugin was reaped.
	p.cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(stopBound):
		p.log.Error("plugin still not reaped after SIGKILL", "plugin", p.name, "pid", p.PID())
	}
}

// ErrWrongKind is returned by MPM and Hook for a plugin of the other kind.
var ErrWrongKind = errors.New("plugin is of another kind")

// MPM returns the plugin's MPM interface.
func (p *Plugin) MPM() (mpm.MPM, error) {
	m, ok := p.raw.(mpm.MPM)
	if !ok {
		return nil, fmt.Errorf("plugin %s: %w", p.name, ErrWrongKind)
	}
	return m, nil
}

// Hook returns the plugin's hook interface.
func (p *Plugin) Hook() (hook.Client, error) {
	h, ok := p.raw.(hook.Client)
	if !ok {
		return nil, fmt.Errorf("plugin %s: %w", p.name, ErrWrongKind)
	}
	return h, nil
}
