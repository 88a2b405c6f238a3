// Package reaper makes the master a good parent, whether it runs as PID 1
// in a container or under an init system: it becomes a child subreaper
// (PR_SET_CHILD_SUBREAPER), so that a process its children, plugins, hooks
// or apps leave behind is reparented to the master rather than to init;
// it reaps such orphans when they exit, so none stays a zombie; and when
// the master stops it ends the ones still running, so none is left behind.
//
// The master's own processes (children, plugins, hooks) are waited for by
// whoever started them (os/exec): the reaper must not take their exit
// status. It tells them apart by time: a zombie that nobody has reaped
// for a while (orphanAge) is one nobody waits for, since os/exec reaps its
// process the moment it exits.
package reaper

import (
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/phasedhq/phased/internal/procfs"
)

// orphanAge is how long a zombie must have waited before the reaper takes
// it: os/exec reaps the master's own processes at once.
const orphanAge = time.Second

// scanEvery is how often the reaper looks for zombies besides SIGCHLD.
const scanEvery = 2 * time.Second

// Reaper reaps the orphans reparented to this process.
type Reaper struct {
	log  *slog.Logger
	stop chan struct{}
	done chan struct{}
}

// Start makes this process a child subreaper and reaps orphans until Stop.
// Failing to become a subreaper is logged, not fatal: orphans then go to
// init, as they always did.
func Start(log *slog.Logger) *Reaper {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Warn("cannot become a child subreaper; orphaned processes go to init", "err", err)
	}
	r := &Reaper{log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

func (r *Reaper) run() {
	defer close(r.done)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	t := time.NewTicker(scanEvery)
	defer t.Stop()
	seen := map[int]time.Time{} // zombies and when they were first seen
	for {
		select {
		case <-r.stop:
			return
		case <-sigs:
		case <-t.C:
		}
		r.reap(seen, time.Now())
	}
}

// reap takes the zombies among this process's children that have waited
// for orphanAge, and forgets the ones that are gone.
func (r *Reaper) reap(seen map[int]time.Time, now time.Time) {
	zombies := map[int]bool{}
	for _, pid := range procfs.Children(os.Getpid()) {
		if procfs.Zombie(pid) {
			zombies[pid] = true
			if _, ok := seen[pid]; !ok {
				seen[pid] = now
			}
		}
	}
	for pid, since := range seen {
		if !zombies[pid] {
			delete(seen, pid) // reaped by its owner, or by us
			continue
		}
		if now.Sub(since) < orphanAge {
			continue
		}
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
			r.log.Debug("reaped an orphaned process", "pid", pid, "status", status(ws))
			delete(seen, pid)
		}
	}
}

// Stop stops reaping.
func (r *Reaper) Stop() {
	close(r.stop)
	<-r.done
}

// EndStrays ends every process still below this one, but those in keep:
// SIGTERM, a bound, then SIGKILL, and reaps its own children among them. The
// master calls it as it stops, after its children exited, so that nothing
// it (or its hooks and apps) started outlives it.
func EndStrays(log *slog.Logger, bound time.Duration, keep ...int) {
	strays := func() []int {
		var out []int
		for _, pid := range procfs.Descendants(os.Getpid()) {
			if !slices.Contains(keep, pid) && procfs.Alive(pid) {
				out = append(out, pid)
			}
		}
		return out
	}
	left := strays()
	if len(left) > 0 {
		log.Info("ending processes left behind", "pids", left)
		for _, pid := range left {
			unix.Kill(pid, unix.SIGTERM)
		}
		for deadline := time.Now().Add(bound); time.Now().Before(deadline) && len(strays()) > 0; time.Sleep(20 * time.Millisecond) {
			reapChildren(keep)
		}
		if left = strays(); len(left) > 0 {
			log.Warn("processes left behind did not stop; killing them", "pids", left)
			for _, pid := range left {
				unix.Kill(pid, unix.SIGKILL)
			}
			for deadline := time.Now().Add(bound); time.Now().Before(deadline) && len(strays()) > 0; time.Sleep(20 * time.Millisecond) {
				reapChildren(keep)
			}
		}
	}
	reapChildren(keep)
}

// EndGroup kills (SIGKILL) what is left of process group pgid below this
// process: an app server's processes that outlived the child that ran it,
// such as php-cgi's PHP processes once php-cgi itself was killed with its
// child. It acts only on a group that a live process below this one is in,
// so that the id cannot be a stranger's group, and none of keep (this
// process's own children, which lead groups of their own): a pgid that is
// one of them, or a group that holds one, is left alone. It returns the
// pids it found in the group.
func EndGroup(log *slog.Logger, pgid int, keep []int) []int {
	if pgid < 2 || pgid == os.Getpid() || pgid == unix.Getpgrp() || slices.Contains(keep, pgid) {
		return nil
	}
	// By the parent ids of every process in the group, not by the
	// children lists: a php-cgi's PHP processes are being reparented to
	// this process just as it looks, and the lists can miss them then.
	var members []int
	me := os.Getpid()
	for _, pid := range procfs.Pids() {
		if procfs.Pgid(pid) == pgid && procfs.Alive(pid) && procfs.Below(pid, me) {
			if slices.Contains(keep, pid) {
				return nil
			}
			members = append(members, pid)
		}
	}
	if len(members) == 0 {
		return nil
	}
	log.Warn("ending the app server's processes its child left behind", "app_pid", pgid, "pids", members)
	unix.Kill(-pgid, unix.SIGKILL)
	return members
}

// reapChildren reaps this process's zombie children but those in keep.
func reapChildren(keep []int) {
	for _, pid := range procfs.Children(os.Getpid()) {
		if !slices.Contains(keep, pid) && procfs.Zombie(pid) {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
	}
}

func status(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}
