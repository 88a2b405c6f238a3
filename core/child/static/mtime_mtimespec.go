//go:build darwin || ios || freebsd || netbsd

package static

import (
	"syscall"
	"time"
)

// mtime returns a stat result's modification time.
func mtime(st *syscall.Stat_t) time.Time { return time.Unix(st.Mtimespec.Unix()) }
