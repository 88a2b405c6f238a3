package master

import (
	"os"
	"time"

	"github.com/phasedhq/phased/core/supervisor"
)

// restartWatch is app.restart_file as the master last saw it.
type restartWatch struct {
	path  string    // "" until the first look: its state then is no change
	mtime time.Time // zero while the file does not exist
}

// watchRestartFile restarts the children gracefully when app.restart_file
// changed since the last look (a newer modification time, or the file
// appearing), as touching Passenger's tmp/restart.txt restarts an app. The
// file as it is when the master starts, or when the key names another
// file, is no change. A change seen while no restart may start (the first
// generation not serving yet, a restart or a stop under way) is acted on
// at a later look.
func (m *Master) watchRestartFile() {
	w := &m.restart
	path := m.cfg.App.RestartFile
	if path == "" {
		*w = restartWatch{}
		return
	}
	var mtime time.Time
	if fi, err := os.Stat(path); err == nil {
		mtime = fi.ModTime()
	}
	if w.path != path {
		*w = restartWatch{path: path, mtime: mtime}
		return
	}
	if mtime.IsZero() || mtime.Equal(w.mtime) {
		w.mtime = mtime
		return
	}
	if !m.serving || m.sv.Stopping() || !m.sv.CanRestart() {
		return
	}
	w.mtime = mtime
	m.logNotice("app.restart_file changed: restarting gracefully", "file", path)
	m.handle(supervisor.Command{Cmd: supervisor.CmdGraceful})
}
