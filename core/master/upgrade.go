package master

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/phasedhq/phased/core/control"
	"github.com/phasedhq/phased/core/handover"
	"github.com/phasedhq/phased/core/logging"
	"github.com/phasedhq/phased/core/pidfile"
)

// Predecessor is what the old master of a binary upgrade hands to the new
// one: its generation (the new master's first is the next), when it
// started (the service's uptime goes on), its running totals (the
// counters /metrics and /server-status read, which therefore never reset
// on an upgrade), and its children, which it drains while the new master
// serves. The new master shows them in its status until they are gone.
type Predecessor struct {
	PID        int
	Generation int
	Started    time.Time
	Children   []ChildStatus
	// Counters is the old master's counters segment; nil starts new totals.
	Counters *os.File
}

// upgrading is a binary upgrade in progress, seen from the old master.
type upgrading struct {
	up    *handover.Upgrade
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
	children, _ := json.Marshal(m.status().Children)
	st := handover.State{PID: os.Getpid(), Generation: m.current.num, Started: m.started, Activated: m.opts.Activated != nil, Children: children}
	up, err := handover.Start(m.exe, m.opts.Args, os.Environ(), m.lns.List(), m.counters.File(), st, m.opts.Stderr, func(err error) {
		m.events <- event{kind: evUpgrade, err: err}
	})
	if err != nil {
		reply(control.Response{Error: fmt.Sprintf("binary upgrade: %v; this master keeps serving", err)})
		return
	}
	m.upgrade = &upgrading{up: up, reply: reply}
	m.log.Log(context.Background(), logging.LevelNotice, "binary upgrade: new master starting", "pid", up.PID(), "binary", m.exe)
}

// upgradeReported handles the new master's report: nil when it serves.
func (m *Master) upgradeReported(err error) {
	u := m.upgrade
	if u == nil {
		return
	}
	pid := u.up.PID()
	if err != nil {
		m.upgrade = nil
		u.up.Abort()
		m.log.Error("binary upgrade failed; this master keeps serving", "pid", pid, "err", err)
		u.reply(control.Response{Error: "binary upgrade failed: " + err.Error() + "; the old master keeps serving"})
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
	if err := u.up.Proceed(); err != nil {
		m.log.Warn("binary upgrade: the go-ahead did not reach the new master", "pid", pid, "err", err)
	}
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
