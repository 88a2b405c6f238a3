package handover

import (
	"fmt"
	"os"
	"strconv"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/phasedhq/phased/core/listen"
)

// Activated returns the listening sockets systemd passed to this process
// (LISTEN_PID naming it, LISTEN_FDS sockets from descriptor 3), each with
// the name LISTEN_FDNAMES gives it, or nil when there are none. The
// variables are removed, so that nothing phased starts sees them. A
// LISTEN_FDS that is not a positive number is an error.
func Activated() ([]*listen.Listener, error) {
	pid, n := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
	if pid == strconv.Itoa(os.Getpid()) && n != "" {
		if count, err := strconv.Atoi(n); err != nil || count < 1 {
			os.Unsetenv("LISTEN_PID")
			os.Unsetenv("LISTEN_FDS")
			os.Unsetenv("LISTEN_FDNAMES")
			return nil, fmt.Errorf("socket activation: LISTEN_FDS=%q", n)
		}
	}
	files := activation.Files(true)
	var out []*listen.Listener
	for i, f := range files {
		name := f.Name()
		if name == "LISTEN_FD_"+strconv.Itoa(3+i) {
			name = "" // systemd gave it no name
		}
		l, err := listen.Adopt("", f)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("socket activation: descriptor %d (%s): %w", 3+i, f.Name(), err)
		}
		l.Addr, l.Name = l.Bound.String(), name
		out = append(out, l)
	}
	return out, nil
}
