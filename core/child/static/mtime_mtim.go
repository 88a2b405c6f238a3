//go:build linux || openbsd || dragonfly || solaris || illumos || aix

package static

import (
	"syscall"
	"time"
)

// mtime returns a stat result's modification time.
func mtime(st *syscall.Stat_t) time.Time { return time.Unix(st.Mtim.Unix()) }
