package supervisor

import (
	"fmt"
	"log/slog"
)

// startUpgrade starts a binary upgrade: the executor re-executes the binary
// with the listening sockets (StartUpgrade) and reports the new master's
// outcome (UpgradeReported).
func (s *Supervisor) startUpgrade(req RequestID) {
	switch {
	case s.upgrade != nil:
		s.reply(req, false, "a binary upgrade is already in progress")
		return
	case s.pending != nil || s.recycle != nil:
		s.reply(req, false, "a restart or recycle is in progress; try again when it is done")
		return
	}
	s.upgrade = &upgrading{req: req}
	s.emit(StartUpgrade{})
}

// upgradeReported ends a binary upgrade: the new master serves, and this
// one hands over and drains; or it failed, and this one keeps serving.
func (s *Supervisor) upgradeReported(e UpgradeReported) {
	u := s.upgrade
	if u == nil {
		return
	}
	s.upgrade = nil
	if e.Err != nil {
		if !e.Started {
			s.reply(u.req, false, "binary upgrade: "+e.Err.Error()+"; this master keeps serving")
			return
		}
		s.emit(AbortUpgrade{})
		s.log(slog.LevelError, "binary upgrade failed; this master keeps serving", "err", e.Err)
		s.reply(u.req, false, "binary upgrade failed: "+e.Err.Error()+"; the old master keeps serving")
		return
	}
	// Answer first: the executor closes the control socket next, which
	// waits for the requests in flight, this one among them.
	s.reply(u.req, true, fmt.Sprintf("new master (pid %d) serving", e.PID))
	s.emit(HandOver{})
	s.upgraded = true
	s.log(notice, "binary upgrade: new master serving; this one drains its children and exits", "new_pid", e.PID)
	s.beginStop(true, 0)
}
