package master

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/phasedhq/phased/core/control"
	"github.com/phasedhq/phased/core/logging"
	"github.com/phasedhq/phased/core/pidfile"
)

// EnvUpgrade tells a master started by a binary upgrade which listening
// sockets it inherits: their addresses, comma-separated, as file
// descriptors 3, 4, ...; the next descriptor reports to the old master and
// the one after carries its go-ahead.
const EnvUpgrade = "PHASED_INTERNAL_UPGRADE"

// EnvUpgradeActivated tells the new master that the sockets it inherits
// came from systemd's socket activation: they stay its sockets, whatever the
// listen key says.
const EnvUpgradeActivated = "PHASED_INTERNAL_UPGRADE_ACTIVATED"

// EnvUpgradeState carries, as JSON, what the old master hands the new one
// besides its sockets (Predecessor without the counters, which come as the
// descriptor after the go-ahead pipe).
const EnvUpgradeState = "PHASED_INTERNAL_UPGRADE_STATE"

// Predecessor is what the old master of a binary upgrade hands to the new
// one: its generation (the new master's first is the next), when it
// started (the service's uptime goes on), its running totals (the
// counters /metrics and /server-status read, which therefore never reset
// on an upgrade), and its children, which it drains while the new master
// serves. The new master shows them in its status until they are gone.
type Predecessor struct {
	PID        int           `json:"pid"`
	Generation int           `json:"generation"`
	Started    int64         `json:"started"` // Unix seconds
	Children   []ChildStatus `json:"children"`
	// Counters is the old master's counters segment; nil starts new totals.
	Counters *os.File `json:"-"`
}

// upgrading is a binary upgrade in progress, seen from the old master.
type upgrading struct {
	cmd   *exec.Cmd
	goW   *os.File
	reply func(control.Response)
}

// startUpgrade re-executes the binary at this master's path with its
// listening sockets, as nginx's and Unicorn's USR2 do. The new master runs
// its configuration passes and starts its children while this one serves;
// once they are ready this master hands over the pid file and the control
// socket and drains its own children. There is no moment at which nobody
// accepts. If the new binary fails, it exits and this master keeps serving.
func (m *Master) startUpgrade(reply func(control.Response)) {
	switch {
	case m.stop != nil:
		reply(control.Response{Error: "phased is stopping"})
		return
	case m.upgrade != nil:
		reply(control.Response{Error: "a binary upgrade is already in progress"})
		return
	case m.pending != nil || m.recycle != nil:
		reply(control.Response{Error: "a restart or recycle is in progress; try again when it is done"})
		return
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		reply(control.Response{Error: err.Error()})
		return
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		readyW.Close()
		reply(control.Response{Error: err.Error()})
		return
	}
	cmd := exec.Command(m.exe, m.opts.Args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PHASED_INTERNAL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, EnvUpgrade+"="+strings.Join(m.lns.Addrs(), ","))
	if m.opts.Activated != nil {
		cmd.Env = append(cmd.Env, EnvUpgradeActivated+"=1")
	}
	state := Predecessor{PID: os.Getpid(), Generation: m.current.num, Started: m.started.Unix(), Children: m.status().Children}
	if b, err := json.Marshal(state); err == nil {
		cmd.Env = append(cmd.Env, EnvUpgradeState+"="+string(b))
	}
	cmd.ExtraFiles = append(m.lns.Files(), readyW, goR, m.counters.File())
	cmd.Stdout, cmd.Stderr = m.opts.Stderr, m.opts.Stderr
	// No parent-death signal: the new master outlives this one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	readyW.Close()
	goR.Close()
	if err != nil {
		readyR.Close()
		goW.Close()
		reply(control.Response{Error: fmt.Sprintf("binary upgrade: starting %s: %v; this master keeps serving", m.exe, err)})
		return
	}
	m.upgrade = &upgrading{cmd: cmd, goW: goW, reply: reply}
	m.log.Log(context.Background(), logging.LevelNotice, "binary upgrade: new master starting", "pid", cmd.Process.Pid, "binary", m.exe)
	go func() {
		line, _ := bufio.NewReader(readyR).ReadString('\n')
		readyR.Close()
		m.events <- event{kind: evUpgrade, msg: strings.TrimSpace(line)}
		cmd.Wait() // reap it if it fails; after a success it outlives us
	}()
}

// upgradeSaid handles the new master's report.
func (m *Master) upgradeSaid(msg string) {
	u := m.upgrade
	if u == nil {
		return
	}
	pid := u.cmd.Process.Pid
	if msg != "ready" {
		m.upgrade = nil
		u.goW.Close()
		u.cmd.Process.Kill()
		why := strings.TrimPrefix(msg, "error: ")
		if why == "" {
			why = "the new master exited before it was ready"
		}
		m.log.Error("binary upgrade failed; this master keeps serving", "pid", pid, "err", why)
		u.reply(control.Response{Error: "binary upgrade failed: " + why + "; the old master keeps serving"})
		return
	}
	// Hand over: the control socket and the pid file go to the new master,
	// which has been serving alongside us since its children were ready.
	// Answer first: closing the socket waits for the requests in flight,
	// this one among them.
	u.reply(control.Response{OK: true, Message: "new master (pid " + strconv.Itoa(pid) + ") serving"})
	if m.ctl != nil {
		m.ctl.Close()
		m.ctl = nil
	}
	if m.pid != nil {
		m.pid.Release()
		m.pid = nil
	}
	// systemd follows the service to the new master before this one exits
	// (the unit needs NotifyAccess=all for the new master's own messages).
	m.notify(fmt.Sprintf("MAINPID=%d", pid))
	fmt.Fprintln(u.goW, "go")
	u.goW.Close()
	m.upgraded = true
	m.log.Log(context.Background(), logging.LevelNotice, "binary upgrade: new master serving; this one drains its children and exits",
		"new_pid", pid)
	m.beginStop(true, nil)
}

// takeOver is the new master's side of a binary upgrade, once its first
// generation serves: tell the old master, wait for its go-ahead, then take
// the pid file and the control socket it let go of.
func (m *Master) takeOver() error {
	if err := m.opts.Handover(); err != nil {
		return fmt.Errorf("binary upgrade: %w", err)
	}
	var err error
	for range 50 { // the old master releases the lock before its go-ahead; allow for a slow disk
		if m.pid, err = pidfile.Acquire(m.cfg.PidFile, os.Getpid(), m.log); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("binary upgrade: taking over the pid file: %w", err)
	}
	if err := m.listenControl(); err != nil {
		return fmt.Errorf("binary upgrade: taking over the control socket: %w", err)
	}
	m.log.Log(context.Background(), logging.LevelNotice, "binary upgrade: took over from the old master", "pid", os.Getpid())
	return nil
}

// predecessorChildren lists the old master's children that are still
// there (a binary upgrade's new master shows them in its status), and
// forgets those that are gone.
func (m *Master) predecessorChildren() []ChildStatus {
	p := m.opts.Predecessor
	if p == nil {
		return nil
	}
	keep := p.Children[:0]
	for _, c := range p.Children {
		if processAlive(c.PID) {
			c.State = "draining (old master " + strconv.Itoa(p.PID) + ")"
			keep = append(keep, c)
		}
	}
	p.Children = keep
	return keep
}

// processAlive reports whether pid is a live process: not gone, and not a
// zombie waiting to be reaped (DESIGN.md: kill -0 succeeds on a zombie).
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	st := b[i+2]
	return st != 'Z' && st != 'X'
}
