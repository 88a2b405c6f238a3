package master

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notify sends systemd a state change (sd_notify) when NOTIFY_SOCKET is
// set, as it is for a Type=notify unit: READY=1 once the first generation
// serves, RELOADING=1 while a graceful restart runs, STOPPING=1, WATCHDOG=1
// while the event loop is alive, and MAINPID= when a binary upgrade hands
// the service to a new master, so that systemd never takes the upgrade for
// the service's death.
func (m *Master) notify(state ...string) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	if _, err := daemon.SdNotify(false, strings.Join(state, "\n")); err != nil {
		m.log.Warn("systemd notification failed", "err", err, "state", strings.Join(state, " "))
	}
}

// watchdogInterval returns how often to send WATCHDOG=1 (half of
// WatchdogSec), or 0 when the unit has no watchdog.
func watchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0
	}
	return d / 2
}

func statusLine(m *Master) string {
	cur, _ := m.sv.Current()
	return fmt.Sprintf("STATUS=generation %d serving on %s", cur.Num, strings.Join(m.boundAddrs(), ", "))
}
