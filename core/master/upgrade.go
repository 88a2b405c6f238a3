package master

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/phasedhq/phased/core/handover"
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
	// Tickets is the old master's TLS session ticket keys; nil makes new
	// ones (every client then makes a full handshake once).
	Tickets *os.File
}

// errUpgradeAsInit refuses a binary upgrade of a master that is PID 1.
var errUpgradeAsInit = errors.New("phased is PID 1 (a container's init): when the old master exits, the kernel ends every process of its PID namespace, the new master too; " +
	"replace the container instead (a new image, a rolling update)")

// startUpgrade re-executes the binary at this master's path with its
// listening sockets (core/handover), as nginx's and Unicorn's USR2 do. The
// new master runs its configuration passes and starts its children while
// this one serves; its report comes back as an event.
func (m *Master) startUpgrade() error {
	if os.Getpid() == 1 {
		return errUpgradeAsInit
	}
	children, _ := json.Marshal(m.status().Children)
	st := handover.State{PID: os.Getpid(), Started: m.started, Activated: m.opts.Activated != nil, Children: children}
	if cur, ok := m.sv.Current(); ok {
		st.Generation = cur.Num
	}
	up, err := handover.Start(m.exe, m.opts.Args, os.Environ(), m.lns.List(), handover.Segments{Counters: m.counters.File(), Tickets: m.tickets.File()}, st, m.opts.Stderr, func(err error) {
		m.events <- event{kind: evUpgrade, err: err}
	})
	if err != nil {
		return err
	}
	m.upgrade = up
	m.logNotice("binary upgrade: new master starting", "pid", up.PID(), "binary", m.exe)
	return nil
}

// handOver lets the new master of a binary upgrade have the control socket
// and the pid file, then sends it the go-ahead; this master drains.
func (m *Master) handOver() {
	if m.ctl != nil {
		m.ctl.Close() // waits for the requests in flight, whose replies went first
		m.ctl = nil
	}
	if m.pid != nil {
		m.pid.Release()
		m.pid = nil
	}
	if m.upgrade == nil {
		return
	}
	pid := m.upgrade.PID()
	// systemd follows the service to the new master before this one exits
	// (the unit needs NotifyAccess=all for the new master's own messages).
	m.notify(fmt.Sprintf("MAINPID=%d", pid))
	if err := m.upgrade.Proceed(); err != nil {
		m.log.Warn("binary upgrade: the go-ahead did not reach the new master", "pid", pid, "err", err)
	}
}

// takeOver is the new master's side of a binary upgrade, once its first
// generation serves: tell the old master, wait for its go-ahead, then take
// the pid file and the control socket it let go of.
func (m *Master) takeOver() error {
	if err := m.opts.Handover(); err != nil {
		return err
	}
	var err error
	for range 50 { // the old master releases the lock before its go-ahead; allow for a slow disk
		if m.pid, err = pidfile.Acquire(m.cfg.PidFile, os.Getpid(), m.log); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("taking over the pid file: %w", err)
	}
	if err := m.listenControl(); err != nil {
		return fmt.Errorf("taking over the control socket: %w", err)
	}
	m.logNotice("binary upgrade: took over from the old master", "pid", os.Getpid())
	return nil
}
